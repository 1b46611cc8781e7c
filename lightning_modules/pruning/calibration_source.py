"""Where a data-aware method's calibration batches come from, and the forward that runs them.

Batches, in this order: the `data` a user passes to the method (a DataLoader or any iterable
of batches); a datamodule's `calibration_batches(count, seed)` (ours draws seeded batches from
the training split); the trainer's own training loader (`fit(train_dataloaders=...)`, a
DataModule's or the module's `train_dataloader`). A loader is read from a fresh iterator
under a seeded random state, so a shuffled loader gives the same batches for the same seed at
every calibration and after a resume.

The forward: the user's `forward(module, batch)` if given; else the module's
`calibration_step(batch)` if it defines one; else its `training_step(batch, 0)` with logging,
backward passes and optimizer and scheduler steps made inert, so a module that optimizes
manually calibrates as well (its closures still run: they hold the forward).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_modules.pruning.calibration import CalibrationError

CalibrationForward = Callable[[pl.LightningModule, Any], Any]
"""What runs one calibration batch (already on the module's device) through the model."""

HOW_TO_PROVIDE = (
    "pass `calibration_data=` (a DataLoader or a list of batches) to the method, fit with "
    "`train_dataloaders=` or a DataModule, or give the module a `train_dataloader`"
)


@dataclass
class CalibrationSource:
    """A method's calibration batches and forward (see the module docstring).

    Args:
        data: batches to calibrate on, instead of the trainer's training data.
        forward: `forward(module, batch)` instead of the default forward.
    """

    data: Iterable[Any] | None = None
    forward: CalibrationForward | None = None

    def __post_init__(self) -> None:
        if self.data is not None and not isinstance(self.data, Iterable):
            raise TypeError(
                f"calibration_data must be a DataLoader or an iterable of batches, got "
                f"{type(self.data).__name__}"
            )
        if isinstance(self.data, Sized) and len(self.data) == 0:
            raise CalibrationError("calibration_data is empty: give at least one batch")
        if self.forward is not None and not callable(self.forward):
            raise TypeError(f"calibration_forward must be callable, got {self.forward!r}")

    def origin(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        """Where the batches will come from; an error saying what to provide when nowhere
        (checked at train start, before any step)."""
        if self.data is not None:
            return self.data
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "calibration_batches"):
            return datamodule
        loader = trainer.train_dataloader
        if loader is None:
            loader = _declared_loader(datamodule) or _declared_loader(pl_module)
        if loader is None:
            raise CalibrationError(f"calibration needs training batches: {HOW_TO_PROVIDE}")
        if isinstance(loader, Mapping | list | tuple):
            raise CalibrationError(
                f"the trainer has {len(loader)} training loaders: calibration needs one; "
                f"{HOW_TO_PROVIDE}"
            )
        return loader

    def batches(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, count: int, seed: int
    ) -> list[Any]:
        """`count` batches, the same for a given `seed` whatever the training position."""
        origin = self.origin(trainer, pl_module)
        if hasattr(origin, "calibration_batches"):
            batches = list(origin.calibration_batches(count, seed))
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                batches = list(itertools.islice(iter(origin), count))
        if not batches:
            raise CalibrationError(f"the calibration source gave no batches: {HOW_TO_PROVIDE}")
        return batches

    def runner(self, pl_module: pl.LightningModule) -> Callable[[Any], Any]:
        """Runs one batch as it comes from the source: moved to the module's device, then
        through the forward."""

        def run(batch: Any) -> Any:
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            if self.forward is not None:
                return self.forward(pl_module, batch)
            return default_forward(pl_module, batch)

        return run


def _declared_loader(owner: Any) -> Any:
    """`owner.train_dataloader()` when the owner really defines one (Lightning's hooks
    raise when not overridden)."""
    if owner is None:
        return None
    hook = getattr(type(owner), "train_dataloader", None)
    if hook is None or hook in (
        pl.LightningModule.train_dataloader,
        pl.LightningDataModule.train_dataloader,
    ):
        return None
    return owner.train_dataloader()


def default_forward(pl_module: pl.LightningModule, batch: Any) -> Any:
    """`calibration_step(batch)` when the module has one, else `training_step(batch, 0)`
    run inertly (`inert_training`)."""
    step = getattr(pl_module, "calibration_step", None)
    if step is not None:
        return step(batch)
    with inert_training(pl_module):
        return pl_module.training_step(batch, 0)


class _Inert:
    """An optimizer or scheduler as `training_step` sees it during calibration: `step`
    runs a closure if given (it holds the forward) and changes nothing; the rest reads
    through."""

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped

    def step(self, closure: Callable[[], Any] | None = None, *args: Any, **kwargs: Any) -> Any:
        return closure() if callable(closure) else None

    def zero_grad(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def _inert_all(found: Any) -> Any:
    if isinstance(found, list | tuple):
        return [_Inert(item) for item in found]
    return None if found is None else _Inert(found)


@contextlib.contextmanager
def inert_training(pl_module: pl.LightningModule) -> Iterator[None]:
    """Within: the module's logging, `manual_backward`, gradient clipping, optimizer toggling
    and the optimizers' and schedulers' steps do nothing, so its `training_step` is a
    forward only (under `torch.no_grad`, a backward would fail)."""
    optimizers, schedulers = pl_module.optimizers(), pl_module.lr_schedulers()

    def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    replaced = {
        "log": nothing,
        "log_dict": nothing,
        "manual_backward": nothing,
        "clip_gradients": nothing,
        "toggle_optimizer": nothing,
        "untoggle_optimizer": nothing,
        "optimizers": lambda *args, **kwargs: _inert_all(optimizers),
        "lr_schedulers": lambda *args, **kwargs: _inert_all(schedulers),
    }
    before = {name: pl_module.__dict__.get(name, _ABSENT) for name in replaced}
    pl_module.__dict__.update(replaced)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is _ABSENT:
                del pl_module.__dict__[name]
            else:
                pl_module.__dict__[name] = value


_ABSENT = object()


def batch_size(batch: Any) -> int:
    """Examples in a batch: the first dimension of its first tensor, in a tuple, list, dict
    or dataclass as deep as it lies (0 when it holds none)."""
    if isinstance(batch, torch.Tensor):
        return 1 if batch.ndim == 0 else batch.shape[0]
    if isinstance(batch, Mapping):
        items: Iterable[Any] = batch.values()
    elif isinstance(batch, list | tuple):
        items = batch
    elif is_dataclass(batch) and not isinstance(batch, type):
        items = (getattr(batch, field.name) for field in fields(batch))
    else:
        return 0
    return next((size for item in items if (size := batch_size(item))), 0)
