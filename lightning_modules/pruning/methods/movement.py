"""Movement pruning (Sanh, Wolf & Rush 2020): keep the weights moving away from zero."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import Unpack, override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.options import SharedOptions
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule


@register
class MovementPruning(SparsePruning):
    """Movement pruning: Sanh, Wolf, Rush, "Movement pruning: adaptive sparsity by
    fine-tuning", NeurIPS 2020.

    Every optimizer step adds −W ⊙ ∂L/∂W to a score per weight (the first-order importance of
    the paper's hard movement pruning: a weight scores high when training pushes it away from
    zero); at every update of the schedule (cubic by default) each tensor keeps its highest
    scores. Scores accumulate from the run's first step; pruned weights stay pruned.
    """

    name = "movement"
    title = "Movement"
    role = Role.BASELINE
    citation = (
        'Sanh, Wolf, Rush, "Movement pruning: adaptive sparsity by fine-tuning", NeurIPS 2020'
    )
    color = "#e377c2"

    def __init__(self, schedule: SparsitySchedule, **shared: Unpack[SharedOptions]) -> None:
        super().__init__(schedule, **shared)
        self.scores: dict[str, torch.Tensor] = {}

    @override
    def adjust_gradients(self, pl_module: pl.LightningModule, step: int) -> None:
        """Accumulate the movement scores from this step's (unscaled, accumulated) gradients."""
        with torch.no_grad():
            for tensor in self.tensors:
                parameter = tensor.parameter
                if parameter.grad is None:
                    continue
                score = self.scores.get(tensor.name)
                if score is None:
                    score = torch.zeros_like(parameter, dtype=torch.float32)
                score = score.to(parameter.device) - (parameter.detach() * parameter.grad).float()
                self.scores[tensor.name] = score

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        return {
            name: self.select(name, self.scores.get(name, torch.zeros_like(self.weight(name))), k)
            for name, k in kept.items()
        }

    @override
    def method_state(self) -> dict[str, Any]:
        return {"scores": {name: score.cpu() for name, score in self.scores.items()}}

    @override
    def load_method_state(self, state: Mapping[str, Any]) -> None:
        self.scores = dict(state["scores"])
