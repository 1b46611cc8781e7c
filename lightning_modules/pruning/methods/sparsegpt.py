"""SparseGPT: one-shot pruning with layer-wise OBS reconstruction (Frantar & Alistarh 2023)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from typing_extensions import Unpack, override

from lightning_modules.pruning.calibration import InputStatistics
from lightning_modules.pruning.data_aware import DataAwarePruning
from lightning_modules.pruning.options import SharedOptions, integer
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.sparsity_patterns import (
    SparsityPattern,
    Unstructured,
    as_rows,
)


def proportional_shares(total: int, sizes: Sequence[int]) -> list[int]:
    """`total` split over parts of `sizes` in proportion, as integers summing to `total`
    (cumulative floors, so no part gets more than its size when `total` ≤ Σ sizes)."""
    whole = sum(sizes)
    if whole == 0:
        return [0] * len(sizes)
    shares, before, running = [], 0, 0
    for size in sizes:
        running += size
        upto = total * running // whole
        shares.append(upto - before)
        before = upto
    return shares


def sparsegpt_prune(
    rows: torch.Tensor,
    hessian: torch.Tensor,
    prune: int,
    alive: torch.Tensor,
    block_size: int = 128,
    dampening: float = 0.01,
    pattern: SparsityPattern | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune `prune` more entries of `rows` (outputs × d) among the `alive` ones and update
    the rest to reconstruct the layer's output on inputs with second moment `hessian` (d × d).

    Frantar & Alistarh's algorithm: the upper Cholesky factor of H⁻¹ gives, column by column,
    the OBS update of the columns not yet processed; within each block of columns the entries
    with the smallest w² / [H⁻¹]²_jj are pruned (adaptive mask selection), and each block's
    errors update the later columns at once. Within a block the kept entries follow `pattern`
    (N:M groups and blocks must not straddle column blocks). Returns (new rows, kept mask),
    float64.
    """
    pattern = pattern or Unstructured()
    weight = rows.detach().to(torch.float64).clone()
    alive = alive.clone()
    hessian = hessian.to(torch.float64).clone()
    width = weight.shape[1]
    dead = hessian.diagonal() == 0  # never-seen inputs: their weights do nothing
    hessian[dead, dead] = 1.0
    weight[:, dead] = 0.0
    hessian += dampening * hessian.diagonal().mean() * torch.eye(width, dtype=torch.float64)
    inverse = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hessian)))
    inverse = inverse.transpose(0, 1)  # upper factor U with H⁻¹ = Uᵀ U
    starts = list(range(0, width, block_size))
    blocks = [(i, min(i + block_size, width)) for i in starts]
    shares = proportional_shares(prune, [int(alive[:, a:b].sum()) for a, b in blocks])
    for (first, last), share in zip(blocks, shares, strict=True):
        block = weight[:, first:last].clone()
        block_inverse = inverse[first:last, first:last]
        scores = block**2 / block_inverse.diagonal()[None] ** 2
        block_alive = alive[:, first:last]
        keep = pattern.select(scores, int(block_alive.sum()) - share, block_alive)
        errors = torch.zeros_like(block)
        for column in range(last - first):
            values = block[:, column]
            quantized = values * keep[:, column]
            error = (values - quantized) / block_inverse[column, column]
            block[:, column:] -= error[:, None] * block_inverse[column, column:][None]
            block[:, column] = quantized
            errors[:, column] = error
        weight[:, first:last] = block
        weight[:, last:] -= errors @ inverse[first:last, last:]
        alive[:, first:last] = keep
    return weight, alive


@register
class SparseGPTPruning(DataAwarePruning):
    """SparseGPT: Frantar & Alistarh, "SparseGPT: massive language models can be accurately
    pruned in one-shot", ICML 2023.

    Layer by layer, with H = XᵀX of the calibration inputs (for an LSTM: the layer input for
    `weight_ih`, the previous hidden state for `weight_hh`), the weights are pruned column
    block by column block and the kept ones updated to reconstruct the layer's output (OBS).
    One-shot at the schedule's start, then fine-tuning like the others (or gradual).

    Args:
        block_size: columns pruned and updated together (the lazy batch of the paper).
        dampening: λ as a share of mean(diag H) added to H's diagonal.
    """

    name = "sparsegpt"
    title = "SparseGPT"
    role = Role.BASELINE
    citation = (
        'Frantar & Alistarh, "SparseGPT: massive language models can be accurately pruned in '
        'one-shot", ICML 2023'
    )
    color = "#17becf"

    def __init__(
        self,
        schedule: SparsitySchedule,
        *,
        calibration_batches: int = 8,
        gradual: bool = False,
        block_size: int = 128,
        dampening: float = 0.01,
        **shared: Unpack[SharedOptions],
    ) -> None:
        integer("block_size", block_size, minimum=1)
        if not isinstance(dampening, int | float) or not 0 < dampening < 1:
            raise ValueError(f"dampening must lie in (0, 1), got {dampening!r}")
        super().__init__(
            schedule, calibration_batches=calibration_batches, gradual=gradual, **shared
        )
        columns = self.pattern.tile[1]
        if block_size % columns:
            raise ValueError(
                f"block_size {block_size} must be a multiple of pattern {self.pattern.spec!r}'s "
                f"{columns} inputs, so that no group straddles two column blocks"
            )
        self.block_size = block_size
        self.dampening = float(dampening)

    @override
    @torch.no_grad()
    def choose(
        self, weight: torch.Tensor, statistics: InputStatistics, k: int, previous: torch.Tensor
    ) -> torch.Tensor:
        rows, alive = as_rows(weight), as_rows(previous).cpu()
        per_group = rows.shape[0] // statistics.groups
        if statistics.groups > 1 and per_group % self.pattern.tile[0]:
            raise ValueError(
                f"pattern {self.pattern} needs row groups in multiples of {self.pattern.tile[0]}; "
                f"a weight of shape {tuple(weight.shape)} has {statistics.groups} groups of "
                f"{per_group} rows"
            )
        spans = [slice(g * per_group, (g + 1) * per_group) for g in range(statistics.groups)]
        prune = int(alive.sum()) - k
        shares = proportional_shares(prune, [int(alive[span].sum()) for span in spans])
        hessians = statistics.hessian()
        updated, kept = torch.empty(rows.shape, dtype=torch.float64), torch.empty_like(alive)
        for group, (span, share) in enumerate(zip(spans, shares, strict=True)):
            updated[span], kept[span] = sparsegpt_prune(
                rows[span].cpu(), hessians[group], share, alive[span], self.block_size,
                self.dampening, self.pattern,
            )  # fmt: skip
        weight.copy_(updated.view_as(weight).to(weight.dtype))
        return kept.view_as(weight).to(weight.device)
