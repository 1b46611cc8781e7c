"""Magnitude pruning baselines: gradual (GMP, Zhu & Gupta 2017) and one-shot."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from typing_extensions import override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.registry import Role, register


@register
class GradualMagnitudePruning(SparsePruning):
    """GMP: Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for
    model compression", arXiv 1710.01878 (2017).

    At every update of the schedule (cubic by default) each tensor keeps its largest-magnitude
    weights at the target sparsity; pruned weights stay pruned (masks only grow).
    """

    name = "gmp"
    title = "GMP"
    role = Role.BASELINE
    citation = (
        'Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model '
        'compression", arXiv 1710.01878 (2017)'
    )
    color = "#ff7f0e"

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        return {name: self.select(name, self.weight(name).abs(), k) for name, k in kept.items()}


@register
class OneShotMagnitudePruning(GradualMagnitudePruning):
    """One-shot magnitude pruning: at the schedule's start every tensor keeps its
    largest-magnitude weights at the final sparsity, then training fine-tunes with the masks
    fixed. The classic baseline of Han et al., "Learning both weights and connections for
    efficient neural networks", NeurIPS 2015, without its iterations.
    """

    name = "oneshot"
    title = "One-shot magnitude"
    role = Role.BASELINE
    citation = (
        'Han, Pool, Tran, Dally, "Learning both weights and connections for efficient neural '
        'networks", NeurIPS 2015 (one pruning step)'
    )
    color = "#8c564b"
    schedule_kind = "one_shot"
