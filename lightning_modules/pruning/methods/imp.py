"""Iterative magnitude pruning with weight rewinding (the lottery-ticket procedure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import Unpack, override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.options import SharedOptions, integer
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule


def round_steps(start: int, end: int, rounds: int) -> list[int]:
    """The steps that end a round of training: evenly spaced over [start, end]."""
    if rounds == 1:
        return [start]
    return [start + (end - start) * r // (rounds - 1) for r in range(rounds)]


def round_sparsity(completed: int, rounds: int, final: float) -> float:
    """Sparsity after `completed` of `rounds` rounds, each pruning the same share of what is
    left: 1 − (1 − s_final)^(r/R) (exactly s_final after the last)."""
    if completed >= rounds:
        return final
    return 1.0 - (1.0 - final) ** (completed / rounds)


@register
class IterativeMagnitudePruning(SparsePruning):
    """IMP with rewinding: Frankle, Dziugaite, Roy, Carbin, "Linear mode connectivity and the
    lottery ticket hypothesis", ICML 2020 (after Frankle & Carbin, ICLR 2019); for speech:
    Ding, Chen, Wang, "Audio lottery: speech recognition made ultra-lightweight, noise-robust,
    and transferable", ICLR 2022.

    `rounds` rounds of train → prune → rewind, ending at steps evenly spaced over the
    schedule's window (so within the same step budget as every other method): at the end of
    a round each tensor keeps its largest-magnitude weights at 1 − (1 − s)^(r/R), and every
    parameter of the model is rewound to its value at `rewind_step` (pruned weights stay
    zero; the optimizer's moments restart; the learning-rate schedule runs on). After the last
    round the sparse network trains to the end of the run.

    Args:
        rounds: prune-and-rewind rounds (R ≥ 1; they must fit in the window, one step apart).
        rewind_step: the step whose weights every round rewinds to (at most the schedule's
            start).
    """

    name = "imp"
    title = "IMP + rewinding"
    role = Role.BASELINE
    citation = (
        'Frankle, Dziugaite, Roy, Carbin, "Linear mode connectivity and the lottery ticket '
        'hypothesis", ICML 2020'
    )
    color = "#1f77b4"

    def __init__(
        self,
        schedule: SparsitySchedule,
        *,
        rounds: int = 4,
        rewind_step: int = 0,
        **shared: Unpack[SharedOptions],
    ) -> None:
        integer("rounds", rounds, minimum=1)
        integer("rewind_step", rewind_step)
        if rewind_step > schedule.start:
            raise ValueError(
                f"rewind_step {rewind_step} lies after the schedule start {schedule.start}: "
                "a round cannot rewind to weights it has not reached yet"
            )
        if rounds > 1 and schedule.end - schedule.start < rounds - 1:
            raise ValueError(
                f"rounds {rounds} cannot reach the target: the window [{schedule.start}, "
                f"{schedule.end}] holds fewer than {rounds} distinct round ends"
            )
        super().__init__(schedule, **shared)
        self.rounds = rounds
        self.rewind_step = rewind_step
        self.round_ends = round_steps(schedule.start, schedule.end, rounds)
        self.snapshot: dict[str, torch.Tensor] | None = None

    @override
    def is_update_step(self, step: int) -> bool:
        return step in self.round_ends

    @override
    def target_sparsity(self, step: int) -> float:
        completed = sum(end <= step for end in self.round_ends)
        if not completed:
            return self.schedule.initial
        return round_sparsity(completed, self.rounds, self.schedule.final)

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        return {name: self.select(name, self.weight(name).abs(), k) for name, k in kept.items()}

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.snapshot is None and not self.pruning_started and step >= self.rewind_step:
            if step > self.rewind_step:
                raise RuntimeError(
                    f"[{self.name}] the run is at step {step}, past rewind_step "
                    f"{self.rewind_step}, with no weights saved there to rewind to"
                )
            self.snapshot = {
                name: parameter.detach().clone() for name, parameter in pl_module.named_parameters()
            }
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    @override
    def before_step(self, pl_module: pl.LightningModule, step: int) -> None:
        if step != self.last_update_step or step not in self.round_ends:
            return
        assert self.snapshot is not None  # taken at rewind_step ≤ the first round's end
        with torch.no_grad():
            for name, parameter in pl_module.named_parameters():
                parameter.copy_(self.snapshot[name].to(parameter.device))
        self._apply_masks()
        for optimizer in pl_module.trainer.optimizers:
            optimizer.state.clear()
        if step == self.round_ends[-1]:
            self.snapshot = None  # no round is left to rewind

    @override
    def method_state(self) -> dict[str, Any]:
        snapshot = self.snapshot
        return {"snapshot": None if snapshot is None else {n: t.cpu() for n, t in snapshot.items()}}

    @override
    def load_method_state(self, state: Mapping[str, Any]) -> None:
        self.snapshot = state["snapshot"]

    @override
    def method_metrics(self) -> dict[str, float]:
        return {"round": float(sum(end <= self.last_update_step for end in self.round_ends))}
