"""Threshold pruning of RNNs: Narang et al. 2017."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from typing_extensions import Unpack, override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.options import SharedOptions
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule


@register
class NarangPruning(SparsePruning):
    """Narang, Elsen, Diamos, Sengupta, "Exploring sparsity in recurrent neural networks",
    ICLR 2017.

    Every `schedule.every` steps in [start, end], weights with |w| below a per-tensor threshold
    ε(t) are masked (cumulatively). ε rises in two linear phases: with slope θ from start to
    the ramp step, and slope φ = 1.5θ from the ramp to the end, where
    θ = 2·q·freq / (2·(ramp − start) + 3·(end − ramp)), so that ε(end) = q, the quantile of
    |W| at the final sparsity taken at start. The threshold sets how many weights are kept,
    the largest magnitudes in the run's pattern which. Ours, not the paper's: since weights
    keep moving (and shrink under weight decay) while ε rises, a fixed ε overshoots the target
    (measured on an RNN-T: 0.60 for 2:4 at target 0.5, 0.91 for 4x4 at 0.8) and pattern
    rounding adds to it at every update; so the count never falls below the target's, and
    the last update of the window keeps exactly the target's count: the realized sparsity is
    the target under every pattern.

    Args:
        ramp_fraction: where the ramp step lies in the window, as a fraction of end − start.
    """

    name = "narang"
    title = "Narang"
    role = Role.BASELINE
    citation = (
        'Narang, Elsen, Diamos, Sengupta, "Exploring sparsity in recurrent neural networks", '
        "ICLR 2017"
    )
    color = "#2ca02c"
    follows_schedule = False  # its threshold, not the schedule, sets each update's count

    def __init__(
        self,
        schedule: SparsitySchedule,
        *,
        ramp_fraction: float = 0.5,
        **shared: Unpack[SharedOptions],
    ) -> None:
        if schedule.kind == "one_shot":
            raise ValueError("Narang pruning needs a window: use a linear or cubic schedule")
        if not 0.0 < ramp_fraction < 1.0:
            raise ValueError(f"ramp_fraction must lie in (0, 1), got {ramp_fraction!r}")
        super().__init__(schedule, **shared)
        self.ramp_fraction = ramp_fraction
        self.quantiles: dict[str, float] = {}

    @property
    def ramp(self) -> float:
        return self.schedule.start + self.ramp_fraction * (self.schedule.end - self.schedule.start)

    def threshold(self, name: str, step: int) -> float:
        """ε(step) of tensor `name` (0 before start, q from the end on)."""
        start, end, freq = self.schedule.start, self.schedule.end, self.schedule.every
        theta = 2 * self.quantiles[name] * freq / (2 * (self.ramp - start) + 3 * (end - self.ramp))
        step = min(max(step, start), end)
        phase_one = min(step, self.ramp) - start
        phase_two = max(step - self.ramp, 0.0)
        return (theta * phase_one + 1.5 * theta * phase_two) / freq

    @override
    def target_sparsity(self, step: int) -> float:
        """Narang's threshold follows no sparsity schedule; its aim is the final sparsity."""
        return self.schedule.final

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        if not self.quantiles:
            for name in kept:
                magnitudes = self.weight(name).detach().abs().flatten().float()
                rank = math.floor(self.schedule.final * magnitudes.numel())
                self.quantiles[name] = float(magnitudes.kthvalue(rank).values) if rank else 0.0
        masks = {}
        for name in kept:
            magnitudes = self.weight(name).abs()
            above = int((self.masks[name] & (magnitudes >= self.threshold(name, step))).sum())
            # Never below the target's count, and exactly it from the end of the window on.
            count = kept[name] if step >= self.schedule.end else max(above, kept[name])
            masks[name] = self.select(name, magnitudes, count)
        return masks

    @override
    def method_metrics(self) -> dict[str, float]:
        return {
            f"threshold/{name}": self.threshold(name, self.last_update_step)
            for name in self.quantiles
        }

    @override
    def method_state(self) -> dict[str, Any]:
        return {"quantiles": dict(self.quantiles)}

    @override
    def load_method_state(self, state: Mapping[str, Any]) -> None:
        self.quantiles = dict(state["quantiles"])
