"""`DataAwarePruning`: the base of the methods that choose masks from calibration statistics
(Wanda, SparseGPT), and `Calibration`, the record of what they measured."""

from __future__ import annotations

import dataclasses
import time
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import Unpack, override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.calibration import InputStatistics, collect_input_statistics
from lightning_modules.pruning.calibration_source import (
    CalibrationForward,
    CalibrationSource,
    batch_size,
)
from lightning_modules.pruning.options import SharedOptions, flag, integer
from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.targets import PrunableTensor


@dataclass
class Calibration:
    """A data-aware method's calibration: its batches and forward (`source`), and what it
    measured, logged with its mask updates."""

    batches: int
    seed: int
    source: CalibrationSource = field(default_factory=CalibrationSource)
    examples: int = 0
    wall_s: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)
    """(global step, seconds) of every calibration, for the overhead benchmark."""

    def run(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        tensors: Sequence[PrunableTensor],
    ) -> dict[str, InputStatistics]:
        started = time.perf_counter()
        batches = self.source.batches(trainer, pl_module, self.batches, self.seed)
        statistics = collect_input_statistics(
            pl_module, tensors, batches, self.source.runner(pl_module)
        )
        self.examples = sum(batch_size(batch) for batch in batches)
        seconds = time.perf_counter() - started
        self.wall_s += seconds
        self.history.append((trainer.global_step, seconds))
        return statistics

    def metrics(self) -> dict[str, float]:
        return {
            "calibration_batches": float(self.batches),
            "calibration_examples": float(self.examples),
            "calibration_wall_s": self.wall_s,
        }


class DataAwarePruning(SparsePruning):
    """Base of the methods that choose from calibration statistics (Wanda, SparseGPT).

    One-shot at the schedule's start by default; with `gradual`, at every update of the
    schedule, recalibrated each time on the same batches (the weights and the inputs they see
    have moved). A method implements `choose` for one tensor.

    Args:
        calibration_batches: batches the statistics are collected on (seeded by `seed`;
            recorded as `<method>/calibration_*` with every update).
        gradual: prune on the schedule instead of once at its start.
        calibration_data: where the batches come from, instead of the trainer's training data
            (a DataLoader or any iterable of batches; `calibration_source`).
        calibration_forward: `forward(module, batch)` that runs a batch, instead of the
            module's `calibration_step`, else its `training_step` run inertly.
    """

    code_options = ("calibration_data", "calibration_forward")
    """Options only Python code passes (objects), never a config file."""

    def __init__(
        self,
        schedule: SparsitySchedule,
        *,
        calibration_batches: int = 8,
        gradual: bool = False,
        calibration_data: Iterable[Any] | None = None,
        calibration_forward: CalibrationForward | None = None,
        **shared: Unpack[SharedOptions],
    ) -> None:
        integer("calibration_batches", calibration_batches, minimum=1)
        if not flag("gradual", gradual):
            schedule = dataclasses.replace(schedule, kind="one_shot")
        super().__init__(schedule, **shared)
        self.gradual = gradual
        source = CalibrationSource(calibration_data, calibration_forward)
        self.calibration = Calibration(calibration_batches, self.seed, source)
        self.statistics: dict[str, InputStatistics] = {}

    @abstractmethod
    def choose(
        self, weight: torch.Tensor, statistics: InputStatistics, k: int, previous: torch.Tensor
    ) -> torch.Tensor:
        """The mask keeping `k` entries of `weight` (it may also update `weight` in place)."""

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.calibration.source.origin(trainer, pl_module)  # fails here, before any step

    @override
    def prepare_update(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        self.statistics = self.calibration.run(trainer, pl_module, self.tensors)

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        masks = {
            name: self.choose(self.weight(name), self.statistics[name], k, self.masks[name])
            for name, k in kept.items()
        }
        self.statistics = {}  # Hessians are d × d per tensor: not kept between updates
        return masks

    @override
    def method_metrics(self) -> dict[str, float]:
        return self.calibration.metrics()
