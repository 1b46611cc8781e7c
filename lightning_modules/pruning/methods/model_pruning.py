"""Lightning's own `ModelPruning`, run on our prunable set with an absolute target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelPruning
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear as _AttentionOutput
from typing_extensions import Unpack, override

from lightning_modules.pruning.base import PREFIX, log_metrics, sparsity_metrics
from lightning_modules.pruning.options import Shared, SharedOptions, check_schedule
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.targets import PrunableTensor, coverage_report, discover_tensors


@register
class LightningModelPruning(ModelPruning):
    """The peer users already have: `lightning.pytorch.callbacks.ModelPruning` with per-tensor
    L1 unstructured pruning, left as Lightning ships it except for two things it cannot do
    alone. It is given our prunable tensors by name (on its own it skips `nn.LSTM` weights),
    and its `amount` is computed so that each tensor reaches the schedule's absolute target
    (Lightning applies `amount` to what is left).

    Torch's pruning multiplies by the mask, which leaves -0.0 where a weight was negative; the
    weights it saves and leaves behind get +0.0 there, the exact zero every other method
    writes, so that packing and size accounting see them as zeros.

    It prunes at the end of each training epoch, its own clock. A run with this method has
    epochs of `epoch_steps` (the schedule's `every`: Lightning's `limit_train_batches`, set by
    the trainer builder), so it updates its masks as often as the methods on the step clock
    instead of once per pass over the corpus. Everything else is Lightning's default, among
    them `use_lottery_ticket_hypothesis=True`: at every pruning the kept weights are reset to
    their values at the start of the run (the dense model's). It keeps no state: after a
    resume its masks are rebuilt at the next epoch end from the weights (Lightning's
    behaviour, kept on purpose).
    """

    name = "model_pruning"
    title = "Lightning ModelPruning"
    role = Role.PEER
    citation = (
        "lightning.pytorch.callbacks.ModelPruning (Lightning 2.6), L1 unstructured per tensor at "
        "each epoch end (epochs of one schedule interval); Lightning's defaults otherwise, "
        "use_lottery_ticket_hypothesis=True among them: every pruning resets the kept weights "
        "to their values at the start of the run"
    )
    color = "#9467bd"

    def __init__(self, schedule: SparsitySchedule, **shared: Unpack[SharedOptions]) -> None:
        options = Shared(**shared)
        check_schedule(schedule)
        self.pattern = options.sparsity_pattern
        if self.pattern.structured:
            raise ValueError(
                f"model_pruning runs Lightning's L1 unstructured pruning as it ships; pattern "
                f"{options.pattern!r} needs one of the SparsePruning methods (gmp, csp, ...)"
            )
        super().__init__(
            pruning_fn="l1_unstructured",
            amount=self.relative_amount,
            use_global_unstructured=False,
            make_pruning_permanent=True,
            verbose=0,
        )
        self.schedule = schedule
        self.include = options.include
        self.exclude = options.exclude
        self.seed = options.seed
        self.tensors: list[PrunableTensor] = []
        self._trainer: pl.Trainer | None = None

    @property
    def epoch_steps(self) -> int:
        """Optimizer steps per training epoch this method's runs need: one pruning interval."""
        return self.schedule.every

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        self.tensors = discover_tensors(pl_module, self.include, self.exclude)
        for tensor in self.tensors:
            if isinstance(tensor.module, _AttentionOutput):
                why = "nn.MultiheadAttention reads its out_proj weight without calling the module"
            elif "." in tensor.attribute:
                why = "a weight-normed weight is computed from it outside the module's call"
            else:
                continue
            raise ValueError(
                f"Lightning's ModelPruning cannot prune {tensor.name}: {why}, so torch's pruning "
                "hook never runs; add it to `exclude`"
            )
        self.coverage = coverage_report(pl_module, self.tensors)
        super().setup(trainer, pl_module, stage)

    @override
    def filter_parameters_to_prune(
        self, parameters_to_prune: Sequence[tuple[torch.nn.Module, str]] = ()
    ) -> list[tuple[torch.nn.Module, str]]:
        """Lightning's seam for choosing what it prunes: our prunable set, LSTMs included."""
        return [t.owner for t in self.tensors]

    @override
    def make_pruning_permanent(self, module: torch.nn.Module) -> None:
        super().make_pruning_permanent(module)
        for tensor in self.tensors:
            positive_zeros(tensor.parameter.data)

    @override
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        for tensor in self.tensors:
            positive_zeros(checkpoint["state_dict"][tensor.name])

    def current_sparsity(self) -> float:
        """Share of the prunable set masked so far (0 before the first pruning)."""
        masks = [
            getattr(module, f"{leaf}_mask", None)
            for module, leaf in map(PrunableTensor.owner.fget, self.tensors)
        ]
        if all(mask is None for mask in masks):
            return 0.0
        pruned = sum(int((mask == 0).sum()) for mask in masks if mask is not None)
        return pruned / sum(t.numel for t in self.tensors)

    def relative_amount(self, epoch: int) -> float:
        """What Lightning must prune of what is left to reach the absolute target now."""
        target = self.schedule.target(self._trainer.global_step)
        current = self.current_sparsity()
        return max(0.0, (target - current) / (1.0 - current))

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        target = self.schedule.target(trainer.global_step)
        log_metrics(
            trainer,
            {f"{PREFIX}/target_sparsity": target, **sparsity_metrics(self.tensors, target)},
        )


@torch.no_grad()
def positive_zeros(weight: torch.Tensor) -> None:
    """Turn -0.0 entries into +0.0 in place."""
    weight.masked_fill_(weight == 0, 0.0)
