"""Calibration spread over training steps: the input statistics a refresh at a known step
needs, gathered one calibration batch per optimizer step over the steps just before it.

CSP's activation sensing recalibrates at every mask update. Running all its calibration
batches at the update would make that one step several steps long; spreading them keeps every
step close to an ordinary one, at the price of statistics gathered on weights up to
`batches` − 1 steps old. The batches are the same seeded training batches at every refresh.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_modules.pruning.calibration import (
    InputStatistics,
    calibration_batches,
    check_calibration_batches,
    collect_input_statistics,
)
from lightning_modules.pruning.targets import PrunableTensor


class SpreadCalibration:
    """Input statistics for the refresh at `refresh_step`, batch j gathered at step
    `refresh_step − batches + j` (and every batch still missing at the refresh itself).

    Args:
        batches: calibration batches per refresh (`calibration_batches`).
        seed: chooses the batches (the datamodule's seeded calibration set).
    """

    def __init__(self, batches: int, seed: int) -> None:
        self.batches = check_calibration_batches(batches)
        self.seed = seed
        self.statistics: dict[str, InputStatistics] = {}
        self.collected = 0
        self.refresh_step: int | None = None
        self.history: list[tuple[int, float]] = []
        """(global step, seconds) of every gathering, for the overhead benchmark."""
        self._batches: list[Any] | None = None

    def advance(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        tensors: Sequence[PrunableTensor],
        step: int,
        refresh_step: int,
    ) -> None:
        """Gather what is due at `step` for the refresh at `refresh_step`."""
        if refresh_step != self.refresh_step:
            self.statistics, self.collected, self.refresh_step = {}, 0, refresh_step
        if step >= refresh_step:
            due = self.batches
        else:
            due = max(0, step - (refresh_step - self.batches) + 1)
        if due <= self.collected:
            return
        started = time.perf_counter()
        if self._batches is None:
            self._batches = calibration_batches(trainer, pl_module, self.batches, self.seed)
        collect_input_statistics(
            pl_module, tensors, self._batches[self.collected : due], into=self.statistics
        )
        self.collected = due
        self.history.append((step, time.perf_counter() - started))

    def hessians(self, refresh_step: int, device: torch.device) -> dict[str, torch.Tensor]:
        """XᵀX / n per tensor, (groups, d, d) in float32, complete for `refresh_step`."""
        if self.refresh_step != refresh_step or self.collected < self.batches:
            raise RuntimeError(
                f"calibration for step {refresh_step} is incomplete: {self.collected} of "
                f"{self.batches} batches gathered for step {self.refresh_step}"
            )
        return {
            name: statistics.hessian().to(device, torch.float32)
            for name, statistics in self.statistics.items()
        }

    def metrics(self) -> dict[str, float]:
        return {
            "calibration_batches": float(self.batches),
            "calibration_wall_s": sum(seconds for _, seconds in self.history),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "refresh_step": self.refresh_step,
            "collected": self.collected,
            "statistics": {
                name: {"gram": s.gram, "count": s.count} for name, s in self.statistics.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.refresh_step = state["refresh_step"]
        self.collected = int(state["collected"])
        self.statistics = {}
        for name, saved in state["statistics"].items():
            gram = saved["gram"]
            statistics = InputStatistics(gram.shape[0], gram.shape[1])
            statistics.gram, statistics.count = gram.to(torch.float64), int(saved["count"])
            self.statistics[name] = statistics
