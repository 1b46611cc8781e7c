"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter 2023)."""

from __future__ import annotations

import torch
from typing_extensions import override

from lightning_modules.pruning.calibration import InputStatistics
from lightning_modules.pruning.data_aware import DataAwarePruning
from lightning_modules.pruning.masks import row_top_k_mask
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.sparsity_patterns import as_rows


def wanda_scores(weight: torch.Tensor, statistics: InputStatistics) -> torch.Tensor:
    """|W_ij| · ‖X_j‖₂ for the (outputs, inputs) view of `weight`, each row with the input
    norms of its group."""
    rows = as_rows(weight)
    norms = statistics.input_norms().to(rows.device, torch.float32)
    norms = norms.repeat_interleave(rows.shape[0] // statistics.groups, dim=0)
    return rows.detach().abs().float() * norms


@register
class WandaPruning(DataAwarePruning):
    """Wanda: Sun, Liu, Bair, Kolter, "A simple and effective pruning approach for large
    language models", ICLR 2024 (arXiv 2306.11695, 2023).

    Each weight is scored |W_ij|·‖X_j‖₂, with ‖X_j‖₂ the norm of input feature j over the
    calibration batches (for an LSTM: the layer input for `weight_ih`, the previous hidden
    state for `weight_hh`), and every output row keeps the same share of its highest scores
    (with a structured pattern its groups compare instead: N:M is the paper's N:M variant).
    No weight update: one-shot at the schedule's start, then fine-tuning like the others
    (or gradual, recalibrated at each update).
    """

    name = "wanda"
    title = "Wanda"
    role = Role.BASELINE
    citation = (
        'Sun, Liu, Bair, Kolter, "A simple and effective pruning approach for large language '
        'models", ICLR 2024'
    )
    color = "#bcbd22"

    @override
    def choose(
        self, weight: torch.Tensor, statistics: InputStatistics, k: int, previous: torch.Tensor
    ) -> torch.Tensor:
        scores = wanda_scores(weight, statistics)
        if self.pattern.structured:  # N:M groups or blocks are the comparison groups
            return self.pattern.select(scores, k, as_rows(previous)).view_as(weight)
        return row_top_k_mask(scores, k, as_rows(previous)).view_as(weight)
