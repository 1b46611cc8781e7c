"""Calibration spread over training steps: the input statistics a refresh at a known step
needs, observed on the training forward passes of the steps just before it.

CSP's activation sensing recalibrates at every mask update. Separate calibration passes
would cost more than a training step each (a forward in eval mode, and the LSTMs run again
to expose their hidden states); instead, forward hooks watch the training batches of the
`batches` steps before the refresh, so the only cost is the Gram products. The price:
statistics of weights up to `batches` − 1 steps old, from training batches (dropout and
SpecAugment included: the inputs the layers are trained on). A refresh with no steps before
it in its window (the first update at step 0, a run resumed at its update step) gathers
what is missing from seeded calibration batches. Under DDP the ranks' sums are added, so
every rank senses on the same statistics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_modules.pruning.calibration import (
    InputStatistics,
    _Collector,
    collect_input_statistics,
)
from lightning_modules.pruning.calibration_source import CalibrationSource
from lightning_modules.pruning.options import integer
from lightning_modules.pruning.targets import PrunableTensor


class SpreadCalibration:
    """Input statistics for the refresh at `refresh_step`, observed on the training batch
    of each step `refresh_step − batches + j` (j < `batches`), completed from seeded
    calibration batches at the refresh when steps were missed.

    Args:
        batches: training batches per refresh (`calibration_batches`).
        seed: chooses the fallback calibration batches (the datamodule's seeded set).
        source: where the fallback batches come from and the forward that runs them.
    """

    def __init__(self, batches: int, seed: int, source: CalibrationSource) -> None:
        self.batches = integer("calibration_batches", batches, minimum=1)
        self.seed = seed
        self.source = source
        self.statistics: dict[str, InputStatistics] = {}
        self.collected = 0
        self.refresh_step: int | None = None
        self.history: list[tuple[int, float]] = []
        """(global step, seconds) of every gathering: the hooks' time when watching a training
        forward, the whole pass for seeded batches."""
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._observing: tuple[int, _Collector] | None = None  # (step, its hooks)

    def _reset_for(self, refresh_step: int) -> None:
        if refresh_step != self.refresh_step:
            self.statistics, self.collected, self.refresh_step = {}, 0, refresh_step

    def observe(
        self,
        model: torch.nn.Module,
        tensors: Sequence[PrunableTensor],
        step: int,
        refresh_step: int,
    ) -> None:
        """Watch this step's training forward if it is one of the refresh's steps."""
        self._reset_for(refresh_step)
        if not refresh_step - self.batches <= step < refresh_step or self.collected >= self.batches:
            return
        collector = _Collector(model, tensors, self.statistics)
        self._handles = collector.attach()
        self._observing = (step, collector)

    def stop_observing(self) -> None:
        """After the step's forward: detach the hooks and count the batch."""
        if self._observing is None:
            return
        for handle in self._handles:
            handle.remove()
        step, collector = self._observing
        self._handles, self._observing = [], None
        self.collected += 1
        self.history.append((step, collector.seconds))

    def complete(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        tensors: Sequence[PrunableTensor],
        refresh_step: int,
    ) -> None:
        """At the refresh: gather the batches its steps did not provide."""
        self._reset_for(refresh_step)
        if self.collected >= self.batches:
            return
        started = time.perf_counter()
        batches = self.source.batches(trainer, pl_module, self.batches, self.seed)
        run = self.source.runner(pl_module)
        collect_input_statistics(
            pl_module, tensors, batches[self.collected :], run, into=self.statistics
        )
        self.collected = self.batches
        self.history.append((trainer.global_step, time.perf_counter() - started))

    def hessians(self, trainer: pl.Trainer, refresh_step: int) -> dict[str, torch.Tensor]:
        """XᵀX / n per tensor, (groups, d, d) in float32 on the module's device, summed over
        the DDP ranks, complete for `refresh_step`."""
        if self.refresh_step != refresh_step or self.collected < self.batches:
            raise RuntimeError(
                f"calibration for step {refresh_step} is incomplete: {self.collected} of "
                f"{self.batches} batches gathered for step {self.refresh_step}"
            )
        device = trainer.lightning_module.device
        strategy = trainer.strategy
        hessians = {}
        for name, statistics in self.statistics.items():
            gram = statistics.gram.to(device)
            count = torch.tensor(float(statistics.count), dtype=torch.float64, device=device)
            if trainer.world_size > 1:
                gram = strategy.reduce(gram, reduce_op="sum")
                count = strategy.reduce(count, reduce_op="sum")
            hessians[name] = (gram / count.clamp_min(1)).to(torch.float32)
        return hessians

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
