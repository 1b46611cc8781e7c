"""CSP: compressed-sensing-based sparse pruning as a Lightning callback."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule, kept_count
from lightning_modules.pruning.sensing import (
    RECOVERY_KINDS,
    SENSING_KINDS,
    Projection,
    RecoveryKind,
    SensingKind,
    from_blocks,
    hard_threshold,
    measurement_count,
    recover,
    sensing_matrix,
    to_blocks,
)


def _non_negative(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


@register
class CompressedSensingPruning(SparsePruning):
    """CSP, after Zhen, Nguyen, Chang, Mouchtaris, Rastrow, "Sparsification via compressed
    sensing for automatic speech recognition", arXiv 2102.04932 (2021).

    Sparse pruning as a dual problem, sparsity inducing plus compression-error reduction, with
    the compressed-sensing process inside training. The paper gives the idea; the algorithm
    below is this project's definition of it (docs/csp.md):

    - at each schedule update every tensor is cut into blocks, measured with a seeded sensing
      matrix Φ and recovered with k non-zeros by IHT (or ISTA); the support of the recovery is
      **which** weights survive, the relative compression error e = ‖W − Ŵ‖/‖W‖ decides
      **when**: the tensor is cut only if e ≤ `error_threshold`, and at the latest at the end;
    - with a structured `pattern` (N:M, blocks) the hard thresholding of the recovery
      projects onto the pattern, so the support, and so the mask, keeps it;
    - between updates two gradient terms push the weights the next cut removes toward zero
      (`sparsity_weight` · ‖W ⊙ (1 − M_next)‖₁ / N) and the kept weights toward their
      reconstruction (`reconstruction_weight` · ‖W − Ŵ‖² / N).

    Args:
        sparsity_weight: λ_s of the sparsity-inducing term.
        reconstruction_weight: λ_r of the compression-error term.
        sensing: `gaussian`, `rademacher` or `identity` (no compression: Ŵ = H_k(W)).
        sensing_ratio: ρ = m / n, measurements per block entry, in (0, 1].
        block_size: n, entries per sensed block.
        recovery: `iht` or `ista`.
        recovery_iterations: iterations of the recovery, warm-started at H_k(W).
        error_threshold: ε of the "when" rule; `math.inf` cuts on schedule.
        regularization_start: first step of the gradient terms (default: the schedule start).
    """

    name = "csp"
    title = "CSP"
    role = Role.PROPOSED
    citation = (
        'Zhen, Nguyen, Chang, Mouchtaris, Rastrow, "Sparsification via compressed sensing for '
        'automatic speech recognition", arXiv 2102.04932 (2021)'
    )
    color = "#d62728"

    def __init__(
        self,
        schedule: SparsitySchedule,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        seed: int = 0,
        pattern: str = "unstructured",
        sparsity_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        sensing: SensingKind = "gaussian",
        sensing_ratio: float = 0.5,
        block_size: int = 64,
        recovery: RecoveryKind = "iht",
        recovery_iterations: int = 10,
        error_threshold: float = 0.5,
        regularization_start: int | None = None,
    ) -> None:
        super().__init__(schedule, include, exclude, seed, pattern)
        self.sparsity_weight = _non_negative("sparsity_weight", sparsity_weight)
        self.reconstruction_weight = _non_negative("reconstruction_weight", reconstruction_weight)
        if sensing not in SENSING_KINDS:
            raise ValueError(f"sensing must be one of {SENSING_KINDS}, got {sensing!r}")
        if not isinstance(sensing_ratio, int | float) or not 0.0 < sensing_ratio <= 1.0:
            raise ValueError(f"sensing_ratio must lie in (0, 1], got {sensing_ratio!r}")
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
            raise ValueError(f"block_size must be an integer ≥ 1, got {block_size!r}")
        if recovery not in RECOVERY_KINDS:
            raise ValueError(f"recovery must be one of {RECOVERY_KINDS}, got {recovery!r}")
        if not isinstance(recovery_iterations, int) or recovery_iterations < 0:
            raise ValueError(
                f"recovery_iterations must be an integer ≥ 0, got {recovery_iterations!r}"
            )
        if not isinstance(error_threshold, int | float) or not error_threshold > 0:
            raise ValueError(f"error_threshold must be > 0 (inf allowed), got {error_threshold!r}")
        if regularization_start is None:
            regularization_start = schedule.start
        if not isinstance(regularization_start, int) or not (
            0 <= regularization_start <= schedule.last_update
        ):
            raise ValueError(
                f"regularization_start must be an integer in [0, {schedule.last_update}], "
                f"got {regularization_start!r}"
            )
        self.sensing = sensing
        self.sensing_ratio = 1.0 if sensing == "identity" else float(sensing_ratio)
        self.block_size = block_size
        self.recovery = recovery
        self.recovery_iterations = recovery_iterations
        self.error_threshold = float(error_threshold)
        self.regularization_start = regularization_start
        self.errors: dict[str, float] = {}
        self.waiting: list[str] = []
        self.next_masks: dict[str, torch.Tensor] = {}
        self.reconstructions: dict[str, torch.Tensor] = {}
        self._phi: dict[str, torch.Tensor] = {}
        self._pending_values: dict[str, torch.Tensor] = {}

    # ---- the compressed-sensing step ----------------------------------------------------

    def phi(self, name: str, device: torch.device) -> torch.Tensor:
        """Φ of tensor `name` (cached; regenerated from the seed, never saved)."""
        if name not in self._phi:
            rows = measurement_count(self.block_size, self.sensing_ratio, self.sensing)
            self._phi[name] = sensing_matrix(self.sensing, rows, self.block_size, self.seed, name)
        return self._phi[name].to(device)

    def sense(self, name: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Measure tensor `name` and recover it with `k` non-zeros among its kept entries.

        Returns the sparse reconstruction Ŵ (shaped like the weight) and its support.
        """
        weight = self.weight(name).detach().float()
        phi = self.phi(name, weight.device)
        blocks = to_blocks(weight, self.block_size)
        allowed = to_blocks(self.masks[name], self.block_size)  # padding is never allowed
        estimate, support = recover(
            blocks @ phi.T, phi, k, allowed, blocks, self.recovery_iterations, self.recovery,
            self.projection(weight),
        )  # fmt: skip
        return from_blocks(estimate, weight), from_blocks(support, weight)

    def projection(self, like: torch.Tensor) -> Projection:
        """H_k of the recovery: plain top-k, or the run's pattern on the tensor's own shape."""
        if not self.pattern.structured:
            return hard_threshold

        def project(values: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
            kept = self.pattern.select(
                from_blocks(values.abs(), like), k, from_blocks(allowed, like)
            )
            return to_blocks(kept, self.block_size)

        return project

    @staticmethod
    def compression_error(weight: torch.Tensor, reconstruction: torch.Tensor) -> float:
        """e = ‖W − Ŵ‖_F / ‖W‖_F (0 for an all-zero tensor)."""
        weight = weight.detach().float()
        norm = weight.norm()
        return float((weight - reconstruction).norm() / norm) if norm > 0 else 0.0

    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        final_cut = step >= self.schedule.last_update
        masks, self.errors, self.waiting = {}, {}, []
        for name, k in kept.items():
            reconstruction, support = self.sense(name, k)
            self.errors[name] = self.compression_error(self.weight(name), reconstruction)
            if self.errors[name] <= self.error_threshold or final_cut:
                masks[name] = support
            else:
                self.waiting.append(name)
        return masks

    # ---- the dual training terms ----------------------------------------------------------

    def _next_update(self, step: int) -> int | None:
        """The schedule step whose cut the gradient terms prepare after `step`."""
        schedule = self.schedule
        if step < schedule.start:
            return schedule.start
        if step >= schedule.last_update:
            return None
        return min(
            schedule.start + ((step - schedule.start) // schedule.every + 1) * schedule.every,
            schedule.end,
        )

    def _regularizing(self, step: int) -> bool:
        return self.regularization_start <= step < self.schedule.last_update

    def before_step(self, pl_module: pl.LightningModule, step: int) -> None:
        """Refresh M_next and Ŵ for the next cut: after every update, and every `every` steps
        while regularizing before the first update."""
        if not self._regularizing(step) or (
            self.sparsity_weight == self.reconstruction_weight == 0
        ):
            return
        refresh = step == self.last_update_step or not self.next_masks
        refresh |= (
            step < self.schedule.start
            and (step - self.regularization_start) % self.schedule.every == 0
        )
        if not refresh:
            return
        target = self.schedule.target(self._next_update(step))
        with torch.no_grad():
            for tensor in self.tensors:
                reconstruction, support = self.sense(tensor.name, kept_count(tensor.numel, target))
                self.next_masks[tensor.name] = support
                self.reconstructions[tensor.name] = reconstruction.to(tensor.parameter.dtype)

    def adjust_gradients(self, pl_module: pl.LightningModule, step: int) -> None:
        """Add the two terms' gradients in place, without temporaries the size of the model
        where possible; their values are computed only on the trainer's logging steps."""
        if not self._regularizing(step) or not self.next_masks:
            return
        trainer = pl_module.trainer
        log_now = step % max(trainer.log_every_n_steps, 1) == 0
        sparsity_term = reconstruction_term = 0.0
        with torch.no_grad():
            for tensor in self.tensors:
                weight, name = tensor.parameter, tensor.name
                if weight.grad is None:
                    continue
                scale = 1.0 / tensor.numel
                doomed = ~self.next_masks[name]
                if self.sparsity_weight:
                    signs = weight.sign().mul_(doomed)
                    weight.grad.add_(signs, alpha=self.sparsity_weight * scale)
                    if log_now:
                        sparsity_term += (
                            self.sparsity_weight * scale * float((weight * signs).sum())
                        )
                if self.reconstruction_weight:
                    alpha = 2.0 * self.reconstruction_weight * scale
                    weight.grad.add_(weight, alpha=alpha).sub_(
                        self.reconstructions[name], alpha=alpha
                    )
                    if log_now:
                        difference = weight - self.reconstructions[name]
                        reconstruction_term += (
                            self.reconstruction_weight * scale * float(difference.square().sum())
                        )
        if log_now:
            pl_module.log("csp/sparsity_term", sparsity_term, on_step=True, on_epoch=False)
            pl_module.log(
                "csp/reconstruction_term", reconstruction_term, on_step=True, on_epoch=False
            )

    # ---- logging and state --------------------------------------------------------------

    def method_metrics(self) -> dict[str, float]:
        metrics = {f"error/{name}": error for name, error in self.errors.items()}
        if self.errors:
            metrics["error_mean"] = sum(self.errors.values()) / len(self.errors)
        metrics["waiting_tensors"] = float(len(self.waiting))
        return metrics

    def method_state(self) -> dict[str, Any]:
        return {
            "next_masks": {name: mask.cpu() for name, mask in self.next_masks.items()},
            "reconstruction_values": {
                name: self.reconstructions[name][mask].cpu()
                for name, mask in self.next_masks.items()
            },
            "errors": dict(self.errors),
            "waiting": list(self.waiting),
        }

    def load_method_state(self, state: Mapping[str, Any]) -> None:
        self.errors = dict(state["errors"])
        self.waiting = list(state["waiting"])
        self.next_masks = dict(state["next_masks"])
        self._pending_values = dict(state["reconstruction_values"])

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        for name, values in self._pending_values.items():
            weight = self.weight(name)
            mask = self.next_masks[name].to(weight.device)
            self.next_masks[name] = mask
            reconstruction = torch.zeros_like(weight)
            reconstruction[mask] = values.to(weight.device, weight.dtype)
            self.reconstructions[name] = reconstruction
        self._pending_values = {}
