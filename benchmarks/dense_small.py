"""Benchmark: the small preset trained on the small corpus on this machine's CPU.

Writes benchmarks/results/dense_small.json with `train_wall_s`, `dev_wer` and `test_wer`
(fractions, test on held-out voices and sentences) and `params`.
Goal (issue 2): test WER <= 0.20 within 30 minutes of training on a 2-core CPU.

    python benchmarks/dense_small.py [--set key=value ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

import torch

from experiments.config import load_config
from experiments.records import write_json
from experiments.train import train

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "dense_small.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    config = load_config(REPO / "experiments" / "configs" / "dense_small.yaml", args.overrides)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    result = train(config, REPO / "runs" / f"benchmark-dense_small-{stamp}")
    write_json(
        RESULT,
        {
            "train_wall_s": result.train_wall_s,
            "dev_wer": result.dev_wer,
            "test_wer": result.test_wer,
            "params": result.params,
            "steps": result.steps,
            "hours": result.hours,
            "overrides": args.overrides,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "goal": {"test_wer_max": 0.20, "train_wall_s_max": 1800},
            "date": stamp,
        },
    )
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
