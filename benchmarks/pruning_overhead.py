"""Benchmark: training-step time of pruning methods relative to dense training, in one run.

Trains the small preset on the small corpus for the same steps, with the same batches in the
same order, dense (first and last) and with every registered method (default settings, the
pruning window over the measured steps), and writes the mean step time of each divided by
dense's to benchmarks/results/pruning_overhead.json, with the median of the step-by-step
ratios. The data-aware methods (Wanda, SparseGPT) spend most of their update on calibration:
it is left out of their step times and reported on its own (`calibration_wall_s`).
Goal (issue 3): CSP ≤ 1.10× dense, GMP ≤ 1.03×.

    python benchmarks/pruning_overhead.py [--steps 60] [--every 10]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from experiments.records import write_json
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.data.datamodule import SpeechDataModule
from lightning_modules.data.manifest import read_manifest
from lightning_modules.data.synth import render_corpus
from lightning_modules.data.tokenizer import CharTokenizer
from lightning_modules.data.validation import validate_corpus
from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.schedules import SparsitySchedule

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


def time_steps(
    data: SpeechDataModule, steps: int, epoch: int, method: pl.Callback | None
) -> list[float]:
    """Per-step times of `steps` steps; epochs of `epoch` batches, so Lightning's ModelPruning
    (which prunes at epoch ends) updates as often as the others. Calibration time is taken
    out of the steps it fell in."""
    pl.seed_everything(0, verbose=False)
    module = RNNTSpeechRecognizer(model=model_config("small").model_dump(), max_steps=steps)
    timer = StepTimer()
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
    trainer.fit(module, datamodule=data)
    times = timer.times[WARMUP:]
    calibration = getattr(method, "calibration", None)
    for step, seconds in calibration.history if calibration else []:
        index = step - 1 - WARMUP  # timer.times[i] is the step that ended at batch i + 1
        if 0 <= index < len(times):
            times[index] -= seconds
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "small")
    args = parser.parse_args()
    manifest = render_corpus(args.corpus, size="small", seed=0)
    data = SpeechDataModule(
        validate_corpus(read_manifest(manifest)), CharTokenizer(), max_batch_seconds=90
    )
    schedule = SparsitySchedule(final=0.8, start=0, end=args.steps - 1, every=args.every)

    # dense runs first and last, so a drift of the machine's speed during the run is averaged
    first_dense = time_steps(data, args.steps, args.every, None)
    times: dict[str, list[float]] = {}
    calibration: dict[str, float] = {}
    for name, cls in METHODS.items():
        method = cls(schedule)
        times[name] = time_steps(data, args.steps, args.every, method)
        if hasattr(method, "calibration"):
            calibration[name] = method.calibration.wall_s
    last_dense = time_steps(data, args.steps, args.every, None)
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
        "mean_step_s": {name: statistics.mean(values) for name, values in times.items()},
        "calibration_wall_s": calibration,
        "calibration_batches": {
            name: METHODS[name](schedule).calibration.batches for name in calibration
        },
        "dense_drift": statistics.mean(last_dense) / statistics.mean(first_dense),
        "steps": args.steps,
        "measured_steps": len(times["dense"]),
        "schedule": {"final": 0.8, "start": 0, "end": args.steps - 1, "every": args.every},
        "goal": {"csp": 1.10, "gmp": 1.03},
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
    }
    write_json(RESULT, result)
    print(result["ratio_to_dense"])


if __name__ == "__main__":
    main()
