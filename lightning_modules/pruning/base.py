"""`SparsePruning`: the Lightning callback every pruning method of this project builds on.

It owns the mechanics, so that every method gets the same guarantees and a comparison between
methods is fair:

- discovery of the prunable tensors at fit start, with a coverage report;
- the schedule clock (optimizer steps) and when masks are updated;
- hard masks: pruned entries have zero gradient before every optimizer step and are set to
  exactly zero after it, whatever the optimizer (Adam's moments cannot revive them), with
  gradient accumulation, mixed precision and gradient clipping;
- state: masks, schedule position and the method's own state go through `state_dict`, so a
  resumed run continues with the same masks;
- DDP: a checksum of the masks is compared across ranks at every update and logged;
- logging through the trainer's loggers: target and realized sparsity, per tensor and overall.

A method implements `compute_masks` (which entries to keep, given how many), usually by
scoring entries and letting `select` turn the scores into a mask of the run's sparsity pattern
(`sparsity_patterns`: unstructured, N:M, blocks). It may measure before it in
`prepare_update`, add gradient terms in `adjust_gradients` and state in `method_state`.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import Unpack, override

from lightning_modules.pruning.accounting import sparsity_summary
from lightning_modules.pruning.masks import apply_mask, mask_checksum, mask_gradient
from lightning_modules.pruning.options import (
    Shared,
    SharedOptions,
    check_pattern_reaches,
    check_schedule,
)
from lightning_modules.pruning.schedules import SparsitySchedule, kept_count
from lightning_modules.pruning.sparsity_patterns import SparsityPattern
from lightning_modules.pruning.targets import (
    PrunableTensor,
    coverage_report,
    discover_tensors,
    format_coverage,
)

LAG_MARGIN = 0.05
"""How far below its target a tensor may stay after an update before a warning says so."""
PREFIX = "pruning"
"""Namespace of the logged metrics, e.g. `pruning/sparsity`."""


def pruning_state_key(method_name: str) -> str:
    """The key of a pruning callback's state in a checkpoint's `callbacks` mapping."""
    return f"SparsePruning[{method_name}]"


def is_pruning_state_key(key: object) -> bool:
    """Whether a checkpoint's callback state is a `SparsePruning` one (it holds the masks)."""
    return isinstance(key, str) and key.startswith("SparsePruning[") and key.endswith("]")


class MaskMismatchError(RuntimeError):
    """Masks differ between DDP ranks, or a checkpoint's masks do not fit the model."""


class SparsePruning(Callback, ABC):
    """Base of the pruning callbacks: shared masks, schedule, state and logging.

    Args:
        schedule: target sparsity over optimizer steps (absolute, per tensor).
        **shared: `include`, `exclude`, `seed` and `pattern` (`options.Shared`).
    """

    name = "base"
    schedule_kind: str | None = None
    """Set by a method that always prunes on one kind of schedule (one-shot)."""
    follows_schedule = True
    """False for a method whose updates follow no per-step target (Narang's threshold): its
    updates are not checked for lag, only its end against the target."""

    def __init__(self, schedule: SparsitySchedule, **shared: Unpack[SharedOptions]) -> None:
        options = Shared(**shared)
        self.pattern: SparsityPattern = options.sparsity_pattern
        check_schedule(schedule)
        if self.schedule_kind is not None:
            schedule = dataclasses.replace(schedule, kind=self.schedule_kind)
        check_pattern_reaches(self.pattern, schedule.final)
        self.schedule = schedule
        self.include = options.include
        self.exclude = options.exclude
        self.seed = options.seed
        self.tensors: list[PrunableTensor] = []
        self.masks: dict[str, torch.Tensor] = {}
        self.last_update_step = -1
        self.coverage: dict[str, Any] = {}
        self.summary: dict[str, tuple[float, float]] = {}
        """Tensor name → (target, realized sparsity) at the end of the last fit."""
        self._by_name: dict[str, PrunableTensor] = {}
        self._seen_step: int | None = None
        self._lag_warned = False

    # ---- what a method implements -------------------------------------------------------

    @abstractmethod
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        """New masks at update `step`, keeping `kept[name]` entries of each tensor.

        A tensor left out of the result keeps its mask (it waits). Called on every rank with
        identical weights, so a method must choose deterministically.
        """

    def prepare_update(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """Called before `compute_masks` at every update (optional): measure what the choice
        needs, e.g. calibration statistics."""

    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed at `step`: the schedule's update steps, unless a
        method prunes on its own clock (IMP's rounds)."""
        return self.schedule.is_update_step(step)

    def adjust_gradients(self, pl_module: pl.LightningModule, step: int) -> None:
        """Add method-specific terms to the gradients before the optimizer step (optional)."""

    def before_step(self, pl_module: pl.LightningModule, step: int) -> None:
        """Called once per optimizer step before its first batch, after any mask update."""

    def method_state(self) -> dict[str, Any]:
        return {}

    def load_method_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `method_state` returned."""

    def method_metrics(self) -> dict[str, float]:
        """Method-specific quantities logged with every mask update."""
        return {}

    def target_sparsity(self, step: int) -> float:
        """The sparsity each tensor is pruned to at update `step`: the schedule's."""
        return self.schedule.target(step)

    @property
    def state_key(self) -> str:
        """The masks and schedule position are saved under this key (the audit reads it)."""
        return pruning_state_key(self.name)

    # ---- helpers for methods ------------------------------------------------------------

    def weight(self, name: str) -> torch.Tensor:
        return self._by_name[name].parameter

    def select(self, name: str, scores: torch.Tensor, k: int) -> torch.Tensor:
        """The mask of tensor `name` keeping its `k` highest `scores` in the run's pattern;
        entries pruned before stay pruned."""
        previous = self.masks[name]
        return self.pattern.select(scores.to(previous.device), k, previous)

    @property
    def pruning_started(self) -> bool:
        return self.last_update_step >= 0

    # ---- Lightning hooks ----------------------------------------------------------------

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._lag_warned = False
        self.tensors = discover_tensors(pl_module, self.include, self.exclude)
        self._by_name = {tensor.name: tensor for tensor in self.tensors}
        self.coverage = coverage_report(pl_module, self.tensors)
        if not self.masks:
            self.masks = {
                t.name: torch.ones_like(t.parameter, dtype=torch.bool) for t in self.tensors
            }
        rank_zero_info(f"[{self.name}] {format_coverage(self.coverage)}")

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        missing = set(self._by_name) ^ set(self.masks)
        if missing:
            raise MaskMismatchError(
                f"[{self.name}] the saved masks do not fit the model's prunable tensors: "
                f"{sorted(missing)[:5]}"
            )
        for tensor in self.tensors:
            mask = self.masks[tensor.name]
            if mask.shape != tensor.parameter.shape:
                raise MaskMismatchError(
                    f"[{self.name}] saved mask of {tensor.name} has shape {tuple(mask.shape)}, "
                    f"the model's tensor {tuple(tensor.parameter.shape)}"
                )
            self.masks[tensor.name] = mask.to(tensor.parameter.device)
        if self.pruning_started:
            self._apply_masks()
        log_metrics(trainer, {f"{PREFIX}/prunable_share": self.coverage["prunable_share"]})

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        steps = trainer.estimated_stepping_batches
        if math.isfinite(steps) and self.schedule.last_update >= steps:
            reached = self.target_sparsity(int(steps) - 1)
            warn_departure(
                f"[{self.name}] the schedule's last update is at step "
                f"{self.schedule.last_update}, but this fit stops after {int(steps)} steps: "
                f"sparsity will end near {reached:.2f}, not the target {self.schedule.final:.2f} "
                "(raise max_steps, or end the schedule earlier)",
            )

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._seen_step:
            return  # a later micro-batch of the same optimizer step
        self._seen_step = step
        if self._update_due(step):
            self._update(trainer, pl_module, step)
        self.before_step(pl_module, step)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self.adjust_gradients(pl_module, trainer.global_step)
        if self.pruning_started:
            for tensor in self.tensors:
                mask_gradient(tensor.parameter, self.masks[tensor.name])

    @override
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.pruning_started:
            self._apply_masks()

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The summary: each tensor's target against its realized sparsity, logged, printed
        and kept in `summary`; a tensor left short of the target by more than `LAG_MARGIN`
        is warned about."""
        target = self.target_sparsity(max(trainer.global_step - 1, 0))
        if not self.pruning_started:
            target = 0.0
        realized = sparsity_summary({t.name: t.parameter for t in self.tensors})["per_tensor"]
        self.summary = {name: (target, value) for name, value in realized.items()}
        log_metrics(trainer, self.sparsity_metrics(target))
        rank_zero_info(format_summary(self.name, self.summary))
        short = [name for name, value in realized.items() if target - value > LAG_MARGIN]
        if short:
            warn_departure(
                f"[{self.name}] {len(short)} tensor(s) ended more than {LAG_MARGIN} below the "
                f"target {target:.2f}: {short[0]} at {realized[short[0]]:.2f}",
            )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "last_update_step": self.last_update_step,
            "checksum": mask_checksum(self.masks) if self.masks else 0,
            "pattern": self.pattern.spec,
            "method": self.method_state(),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("pattern", "unstructured")
        if saved != self.pattern.spec:
            raise MaskMismatchError(
                f"[{self.name}] the checkpoint's masks have pattern {saved!r}, this run "
                f"{self.pattern.spec!r}"
            )
        self.masks = dict(state_dict["masks"])
        self.last_update_step = int(state_dict["last_update_step"])
        self.load_method_state(state_dict["method"])

    # ---- mechanics ----------------------------------------------------------------------

    def _update_due(self, step: int) -> bool:
        if step <= self.last_update_step:
            return False
        if self.is_update_step(step):
            return True
        # a run that begins inside the window without having pruned yet catches up at once
        return self.schedule.start <= step and not self.pruning_started

    def _update(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        target = self.target_sparsity(step)
        kept = {t.name: kept_count(t.numel, target) for t in self.tensors}
        self.prepare_update(trainer, pl_module, step)
        with torch.no_grad():
            self.masks.update(self.compute_masks(step, kept))
        self.last_update_step = step
        self._apply_masks()
        checksum = self._verify_across_ranks(trainer, pl_module)
        lagging = self._check_lag(step, target)
        metrics = {
            f"{PREFIX}/lagging_tensors": float(lagging),
            f"{PREFIX}/target_sparsity": target,
            f"{PREFIX}/mask_checksum": float(checksum),
            **self.sparsity_metrics(target),
            **{f"{self.name}/{key}": value for key, value in self.method_metrics().items()},
        }
        log_metrics(trainer, metrics)

    def _check_lag(self, step: int, target: float) -> int:
        """How many tensors keep fewer zeros than the target by more than `LAG_MARGIN` after
        an update, with a warning the first time in a fit (CSP's "when" rule holds tensors
        back; nothing else would say so without a logger)."""
        if not self.follows_schedule:
            return 0
        sparsity = {name: 1 - float(mask.float().mean()) for name, mask in self.masks.items()}
        lagging = [name for name, value in sparsity.items() if target - value > LAG_MARGIN]
        if lagging and not self._lag_warned:
            self._lag_warned = True
            warn_departure(
                f"[{self.name}] at step {step}, {len(lagging)} of {len(sparsity)} tensors lag "
                f"the schedule's {target:.2f} by more than {LAG_MARGIN} ({lagging[0]} at "
                f"{sparsity[lagging[0]]:.2f}); `{PREFIX}/lagging_tensors` counts them at every "
                "update"
            )
        return len(lagging)

    def _apply_masks(self) -> None:
        for tensor in self.tensors:
            apply_mask(tensor.parameter.data, self.masks[tensor.name])

    def _verify_across_ranks(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
        checksum = mask_checksum(self.masks)
        if trainer.world_size > 1:
            local = torch.tensor([checksum], dtype=torch.int64, device=pl_module.device)
            gathered = trainer.strategy.all_gather(local).flatten().tolist()
            if len(set(gathered)) > 1:
                raise MaskMismatchError(
                    f"[{self.name}] masks differ across DDP ranks (checksums {gathered}) at "
                    f"step {trainer.global_step}"
                )
        return checksum

    def sparsity_metrics(self, target: float | None = None) -> dict[str, float]:
        return sparsity_metrics(self.tensors, target)


def sparsity_metrics(
    tensors: Sequence[PrunableTensor], target: float | None = None
) -> dict[str, float]:
    """Realized sparsity (exact zeros in the weights), per tensor and over the set, with the
    target next to it."""
    summary = sparsity_summary({t.name: t.parameter for t in tensors})
    metrics = {f"{PREFIX}/sparsity": summary["sparsity"]}
    for name, value in summary["per_tensor"].items():
        metrics[f"{PREFIX}/sparsity/{name}"] = value
        if target is not None:
            metrics[f"{PREFIX}/target/{name}"] = target
    return metrics


class PruningTargetWarning(UserWarning):
    """A run that will not reach, or does not follow, its target sparsity."""


def warn_departure(message: str) -> None:
    """A departure from the target, as a Python warning on rank 0 (Lightning's logging shows
    it too)."""
    rank_zero_warn(message, category=PruningTargetWarning)


def format_summary(method: str, summary: Mapping[str, tuple[float, float]]) -> str:
    """Target against realized sparsity per tensor, the lines printed at train end."""
    lines = [f"[{method}] sparsity at train end: target, realized"]
    lines += [
        f"  {name:<60} {target:6.3f} {value:8.3f}" for name, (target, value) in summary.items()
    ]
    return "\n".join(lines)


def log_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Log at the current optimizer step, to every logger (W&B, CSV, JSONL) on rank 0.

    Mask updates happen at schedule steps, not at the trainer's logging interval, so they go
    to the loggers directly rather than through `LightningModule.log`.
    """
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
