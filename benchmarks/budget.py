"""Benchmark: this machine's compute budget, measured before an experiment is sized.

Seconds per training step for model sizes between the tiny and small presets, with 1 and 2
threads, under the default grid's dense recipe (characters, 40 ms encoder steps, CTC 0.5,
speed perturbation, 45 s batches); and seconds per decoded test utterance of a trained model
(the main job's dense model, `--model`), greedy and with the grid's decoding (beam 4 and the
character LM). Writes benchmarks/results/budget.json, keeping the record it replaces
(`previous`) and each step time's ratio to it (`slower`: the machine's speed); docs/budget.md
sizes the default grid from it.

    python benchmarks/budget.py --corpus data/small [--model runs/.../dense/checkpoints/last.ckpt]

Each (size, threads) pair trains in its own process (`--one`), so its thread count is set
before torch starts its pools; the step time is the mean over the steps after the 10th
(start-up and the first batches left out), batches shuffled as in training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from experiments.provenance import git_commit, machine

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "budget.json"
STEPS = 40
SIZES: dict[str, dict[str, Any]] = {  # label → model section
    "tiny (0.25 M)": {"preset": "tiny", "overrides": {}},
    "2 × 128 (1.0 M)": {
        "preset": "small",
        "overrides": {"encoder_layers": 2, "encoder_hidden": 128, "predictor_hidden": 128,
                      "joiner_dim": 128},
    },
    "3 × 160 (2.1 M)": {
        "preset": "small",
        "overrides": {"encoder_layers": 3, "encoder_hidden": 160, "predictor_hidden": 160,
                      "joiner_dim": 160},
    },
    "small (4.9 M)": {"preset": "small", "overrides": {}},
}  # fmt: skip
RECIPE = {"stack": 4, "ctc_weight": 0.5, "freq_masks": 0, "time_masks": 0,
          "speed_factors": [0.9, 1.0, 1.1]}  # fmt: skip


class StepClock(pl.Callback):
    """Wall time at the end of every training batch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.times.append(time.perf_counter())


def one(size: str, corpus: Path, steps: int) -> dict[str, Any]:
    """Train `steps` steps of one size in this process (no validation, nothing saved): the
    seconds per step after the first 10, and the parameter count."""
    from experiments.config import ExperimentConfig
    from experiments.train import build_module, build_tokenizer, load_corpus
    from lightning_modules.data.datamodule import SpeechDataModule

    model = SIZES[size]
    config = ExperimentConfig.model_validate(
        {
            "name": "budget",
            "corpus": {"kind": "synth", "size": "small", "seed": 0, "dir": str(corpus)},
            "model": {"preset": model["preset"], "overrides": {**RECIPE, **model["overrides"]}},
            "data": {"max_batch_seconds": 45},
            "trainer": {"max_steps": steps},
        }
    )
    utterances = load_corpus(config)
    pl.seed_everything(0)
    module = build_module(config, build_tokenizer(config, utterances))
    data = SpeechDataModule(utterances, module.tokenizer, config.data.max_batch_seconds, 0, seed=0)
    clock = StepClock()
    trainer = pl.Trainer(
        max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, callbacks=[clock], accelerator="cpu",
        gradient_clip_val=config.trainer.gradient_clip_val,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    first = 10
    step_s = (clock.times[-1] - clock.times[first - 1]) / (len(clock.times) - first)
    return {"step_s": step_s, "params": sum(p.numel() for p in module.parameters())}


def decoding_cost(model: Path, corpus: Path) -> dict[str, Any]:
    """Seconds per test utterance, greedy and with the default grid's decoding."""
    from experiments.config import DecodingSection
    from experiments.evaluate import evaluate

    measured = {}
    for name, decoding in {
        "greedy": DecodingSection(),
        "beam 4 + LM": DecodingSection(beam=4, lm_weight=0.2, length_bonus=0.4),
    }.items():
        started = time.perf_counter()
        summary = evaluate(model, corpus, "test", decoding, progress=False)
        wall = time.perf_counter() - started
        utterances = summary["utterances"]
        measured[name] = {"utterances": utterances, "wall_s": wall,
                          "s_per_utterance": wall / utterances, "wer": summary["wer"]}  # fmt: skip
    return measured


def with_previous(record: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The record this run replaces, without its own `previous`, and each (size, threads)
    step time's ratio to it (`slower`): the machine's speed, compared on one recipe."""
    before = {(row["size"], row["threads"]): row["step_s"] for row in previous["training_step"]}
    for row in record["training_step"]:
        if (row["size"], row["threads"]) in before:
            row["slower"] = row["step_s"] / before[row["size"], row["threads"]]
    return {key: value for key, value in previous.items() if key != "previous"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.corpus, args.steps)))
        return
    steps = []
    for size in SIZES:
        for threads in (2, 1):
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "disabled"}
            done = subprocess.run(
                [sys.executable, __file__, "--corpus", str(args.corpus), "--steps",
                 str(args.steps), "--one", size],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            steps.append({"size": size, "threads": threads, **measured})
            print(f"{size}, {threads} thread(s): {measured['step_s']:.3f} s per step")
    record: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "cpu_count": os.cpu_count(),
        "machine": machine(),
        "commit": git_commit(),
        "steps_timed": args.steps,
        "training_step": steps,
    }
    if args.model is not None:
        record["decoding"] = decoding_cost(args.model, args.corpus)
        record["decoding_model"] = str(args.model)
        print(json.dumps(record["decoding"], indent=1))
    if RESULT.is_file():
        record["previous"] = with_previous(record, json.loads(RESULT.read_text(encoding="utf-8")))
    RESULT.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
