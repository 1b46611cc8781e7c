"""Benchmark: sweep trials per hour with 1 and with 2 local workers on the tiny preset.

Runs `csp sweep run` as a user would (subprocesses, journal storage, W&B offline) on the tiny
corpus and grid: a warm-up study trains the dense model, then two identical studies run the
same number of trials with `--workers 1` and `--workers 2`. Writes
benchmarks/results/sweep_throughput.json with trials per hour for each and `ratio`
(2 workers / 1 worker), measured in one run on this machine.

    python benchmarks/sweep_throughput.py [--trials 12]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from experiments.records import write_json
from lightning_modules.data.synth import render_corpus

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "sweep_throughput.json"


def spec(name: str, trials: int) -> dict:
    return {
        "name": name,
        "grid": str(REPO / "experiments" / "grids" / "tiny.yaml"),
        "method": "csp",
        "sparsity": 0.5,
        "space": {
            "pruning.options.sparsity_weight": {"low": 0.01, "high": 100, "log": True},
            "pruning.options.reconstruction_weight": {"low": 0.01, "high": 100, "log": True},
        },
        "trials": trials,
        "early_stopping": {"kind": "none"},  # every trial runs its whole budget
    }


def csp(home: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "cli", *args]
    subprocess.run(command, cwd=home, env=env, check=True, stdout=subprocess.DEVNULL)


def timed_study(home: Path, corpus: Path, name: str, trials: int, workers: int) -> float:
    path = home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec(name, trials)), encoding="utf-8")
    csp(home, "sweep", "create", str(path), "--corpus", str(corpus))
    started = time.perf_counter()
    csp(home, "sweep", "run", name, "--trials", str(trials), "--workers", str(workers))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)  # start-up amortized
    args = parser.parse_args()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    home = REPO / "runs" / f"benchmark-sweep-{stamp}"
    home.mkdir(parents=True)
    corpus = render_corpus(REPO / "data" / "tiny", size="tiny", seed=0)
    timed_study(home, corpus, "warmup", 1, 1)  # trains the dense model, not measured
    wall = {k: timed_study(home, corpus, f"w{k}", args.trials, k) for k in (1, 2)}
    per_hour = {k: args.trials / seconds * 3600 for k, seconds in wall.items()}
    result = {
        "date": stamp,
        "cpu_count": os.cpu_count(),
        "trials": args.trials,
        "grid": "tiny",
        "wall_s": {f"workers_{k}": v for k, v in wall.items()},
        "trials_per_hour": {f"workers_{k}": v for k, v in per_hour.items()},
        "ratio": per_hour[2] / per_hour[1],
    }
    write_json(RESULT, result)
    print(yaml.safe_dump(result, sort_keys=False))


if __name__ == "__main__":
    main()
