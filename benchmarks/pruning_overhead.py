"""Benchmark: training-step time of pruning methods relative to dense training, in one run.

Trains a grid's dense recipe (default: the main job's, `experiments/grids/default.yaml`: the
small preset with its overrides, its batch size and speed perturbation) on its corpus for the
same steps, with the same batches in the same order, dense (first and last) and with every
registered method (default settings, the pruning window over the measured steps) and CSP with
each sensing kind, and writes the mean step time of each divided by dense's to
benchmarks/results/pruning_overhead.json, with the median of the step-by-step ratios and the
update steps' own time (`update_steps`). The machine's speed drifts between runs by more than
the effects measured (methods that add nothing measurable read 0.85-1.1x), so each method's own
work is also clocked inside its run: the seconds spent in its callback hooks and the forward
hooks it attaches, per step, over dense's mean step (`hook_ratio`: 1 + that share).

CSP's cost is all in its mean: sensing, previews and activation sensing's calibration (spread
over the steps before each update) stay in the steps they fell in. The one-shot data-aware
baselines (Wanda, SparseGPT) calibrate once, at their single cut, on batches of their own:
that is left out of their step times and reported on its own (`calibration_wall_s`).
Goal (issues 3, 13): CSP with every sensing kind ≤ 1.10× dense in mean, GMP ≤ 1.03×.

    python benchmarks/pruning_overhead.py [--grid default] [--steps 60] [--every 10]
        [--methods csp,gmp]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from experiments.config import ExperimentConfig
from experiments.records import write_json
from experiments.reproduce import grid_path, load_grid
from experiments.train import build_module, load_corpus
from lightning_modules.data.datamodule import SpeechDataModule
from lightning_modules.data.tokenizer import CharTokenizer
from lightning_modules.pruning import calibration as calibration_module
from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.methods.csp import CompressedSensingPruning
from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.sensing import SENSING_KINDS

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "pruning_overhead.json"
WARMUP = 3
"""Steps left out of the mean: allocator and thread-pool warm-up."""


class StepTimer(pl.Callback):
    """Wall time of each full training step, hooks of every other callback included."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


TIMED_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
    "on_train_epoch_end",
)


class HookClock:
    """Wall time spent inside one callback's own hooks (and the forward hooks that it attaches
    to the model: activation sensing's statistics), by global step. Measured inside the run,
    it does not drift with the machine's speed between runs, as whole-step ratios do."""

    def __init__(self, method: pl.Callback) -> None:
        self.seconds: dict[int, float] = {}
        self.step = 0
        for name in TIMED_HOOKS:
            setattr(method, name, self._timed(getattr(method, name)))

    def _timed(self, hook: Callable) -> Callable:
        def timed(trainer: pl.Trainer, *args: Any, **kwargs: Any) -> Any:
            self.step = trainer.global_step
            with self.measure():
                return hook(trainer, *args, **kwargs)

        return timed

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[self.step] = self.seconds.get(self.step, 0.0) + elapsed


@contextlib.contextmanager
def forward_hooks_timed(clock: HookClock) -> Iterator[None]:
    """Count the calibration forward hooks' time in `clock` while the block runs."""
    original = calibration_module._Collector._hook

    def timed(collector: Any, *args: Any, **kwargs: Any) -> None:
        with clock.measure():
            original(collector, *args, **kwargs)

    calibration_module._Collector._hook = timed
    try:
        yield
    finally:
        calibration_module._Collector._hook = original


def variants(schedule: SparsitySchedule) -> dict[str, Callable[[], pl.Callback]]:
    """Every registered method with its defaults, and CSP with each other sensing kind."""
    made: dict[str, Callable[[], pl.Callback]] = {
        name: functools.partial(cls, schedule) for name, cls in METHODS.items()
    }
    for kind in SENSING_KINDS:
        if kind != CompressedSensingPruning(schedule).sensing:
            made[f"csp-{kind}"] = functools.partial(
                CompressedSensingPruning, schedule, sensing=kind
            )
    return made


def time_steps(
    recipe: ExperimentConfig,
    data: SpeechDataModule,
    steps: int,
    epoch: int,
    method: pl.Callback | None,
) -> tuple[list[float], float]:
    """Per-step times of `steps` steps, and the method's own hook seconds per measured step;
    epochs of `epoch` batches, so Lightning's ModelPruning (which prunes at epoch ends)
    updates as often as the others. A one-shot baseline's calibration is taken out of both;
    CSP's stays in."""
    pl.seed_everything(0, verbose=False)
    module = build_module(recipe, CharTokenizer().spec())
    timer = StepTimer()
    clock = HookClock(method) if method else None
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        limit_train_batches=epoch,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[*([method] if method else []), timer],
        use_distributed_sampler=False,
    )
    with forward_hooks_timed(clock) if clock else contextlib.nullcontext():
        trainer.fit(module, datamodule=data)
    times = timer.times[WARMUP:]
    hooks = sum(s for step, s in clock.seconds.items() if step > WARMUP) if clock else 0.0
    calibration = getattr(method, "calibration", None)
    if isinstance(method, CompressedSensingPruning):
        calibration = None
    for step, seconds in calibration.history if calibration else []:
        index = step - 1 - WARMUP  # timer.times[i] is the step that ended at batch i + 1
        if 0 <= index < len(times):
            times[index] -= seconds
            hooks -= seconds
    return times, hooks / len(times)


def update_cost(times: list[float], dense: list[float], index: list[int]) -> dict[str, float]:
    """Mean time of the mask-update steps, dense's at the same steps, and their ratio."""
    update = statistics.mean(times[i] for i in index)
    baseline = statistics.mean(dense[i] for i in index)
    return {"mean_s": update, "dense_s": baseline, "ratio": update / baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default", help="the grid whose dense recipe runs")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--methods", help="comma-separated subset of the variants (default: all)")
    args = parser.parse_args()
    dense = load_grid(grid_path(args.grid), REPO / "runs").dense
    trainer = dense.trainer.model_copy(update={"max_steps": args.steps})
    recipe = dense.model_copy(update={"trainer": trainer})
    if recipe.tokenizer.kind != "char":
        parser.error(f"grid {args.grid}: the benchmark trains characters, the grid word pieces")
    data = SpeechDataModule(
        load_corpus(recipe), CharTokenizer(), max_batch_seconds=recipe.data.max_batch_seconds
    )
    schedule = SparsitySchedule(final=0.8, start=0, end=args.steps - 1, every=args.every)
    chosen = variants(schedule)
    if args.methods:
        unknown = sorted(set(args.methods.split(",")) - set(chosen))
        if unknown:
            parser.error(f"unknown --methods {unknown}; choose from {sorted(chosen)}")
        chosen = {name: chosen[name] for name in args.methods.split(",")}
    # timer.times[j] (warm-up dropped) is global step j + WARMUP + 1
    update_index = [
        s - WARMUP - 1 for s in range(args.steps) if schedule.is_update_step(s) and s > WARMUP
    ]

    # dense runs first and last, so a drift of the machine's speed during the run is averaged
    first_dense, _ = time_steps(recipe, data, args.steps, args.every, None)
    times: dict[str, list[float]] = {}
    hook_s: dict[str, float] = {}
    calibration: dict[str, float] = {}
    for name, make in chosen.items():
        method = make()
        times[name], hook_s[name] = time_steps(recipe, data, args.steps, args.every, method)
        if hasattr(method, "calibration") and not isinstance(method, CompressedSensingPruning):
            calibration[name] = method.calibration.wall_s
        print(f"{name}: mean step {statistics.mean(times[name]):.3f} s", flush=True)
    last_dense, _ = time_steps(recipe, data, args.steps, args.every, None)
    times["dense"] = [(a + b) / 2 for a, b in zip(first_dense, last_dense, strict=True)]
    dense = statistics.mean(times["dense"])
    result: dict[str, Any] = {
        "ratio_to_dense": {
            name: statistics.mean(values) / dense
            for name, values in times.items()
            if name != "dense"
        },
        "paired_median_ratio": {
            name: statistics.median(t / d for t, d in zip(values, times["dense"], strict=True))
            for name, values in times.items()
            if name != "dense"
        },
        "hook_ratio": {name: (dense + seconds) / dense for name, seconds in hook_s.items()},
        "hook_s_per_step": hook_s,
        "mean_step_s": {name: statistics.mean(values) for name, values in times.items()},
        "update_steps": {
            name: update_cost(values, times["dense"], update_index)
            for name, values in times.items()
            if name != "dense"
        },
        "calibration_wall_s": calibration,
        "calibration_batches": {name: chosen[name]().calibration.batches for name in calibration},
        "dense_drift": statistics.mean(last_dense) / statistics.mean(first_dense),
        "recipe": f"grid {args.grid}'s dense: {recipe.model.model_dump(mode='json')}, "
        f"{recipe.data.max_batch_seconds} s batches",
        "steps": args.steps,
        "measured_steps": len(times["dense"]),
        "schedule": {"final": 0.8, "start": 0, "end": args.steps - 1, "every": args.every},
        "goal": {**{name: 1.10 for name in times if name.startswith("csp")}, "gmp": 1.03},
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
    }
    write_json(RESULT, result)
    print(result["ratio_to_dense"])


if __name__ == "__main__":
    main()
