"""Trial early stopping: report dev WER to Optuna at each validation, stop when it says so.

Optuna calls this "pruning"; our docs say early stopping, to keep it apart from weight
pruning. Unlike optuna-integration's Lightning callback, values are reported by training
step (validation here runs every N steps, not per epoch), any storage works, and under DDP
only rank 0 talks to the storage and broadcasts the decision to the other ranks.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import optuna
from lightning.pytorch.trainer.states import TrainerFn

MONITOR = "dev_wer"


class TrialEarlyStopping(pl.Callback):
    """Reports `dev_wer` to an Optuna trial; stops training when the trial's pruner says so.

    Args:
        trial: the trial this run is (None on ranks other than 0, which only follow).
    """

    def __init__(self, trial: optuna.trial.Trial | None) -> None:
        self.trial = trial
        self.stopped_at_step: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING  # not the final validate()
        if trainer.sanity_checking or not fitting or self.stopped_at_step is not None:
            return
        stop = False
        if trainer.is_global_zero and self.trial is not None:
            value = trainer.callback_metrics.get(MONITOR)
            if value is None:
                raise RuntimeError(f"early stopping: the run logs no {MONITOR!r}")
            self.trial.report(float(value), step=trainer.global_step)
            stop = self.trial.should_prune()
        stop = bool(trainer.strategy.broadcast(stop, src=0))
        if stop:
            self.stopped_at_step = trainer.global_step
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"stopped_at_step": self.stopped_at_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stopped_at_step = state_dict["stopped_at_step"]
