"""Benchmark: the main job (`csp reproduce`, the default grid) from scratch on this machine.

Runs the whole default grid (dense model, then every method at every sparsity) in a fresh
runs folder, reusing only the rendered corpus, and writes benchmarks/results/reproduce_default.json
with `wall_s`, `dense_test_wer` and one entry per cell. Goal (issue 4): under 20 minutes on a
2-core CPU.

    python benchmarks/reproduce_default.py [--grid default]
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

from analysis.experiment import load_experiment
from analysis.table_formats import to_markdown
from analysis.tables import main_table
from experiments.records import write_json
from experiments.reproduce import grid_path, load_grid, run_grid
from experiments.train import load_corpus

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "reproduce_default.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    grid = load_grid(grid_path(args.grid), REPO / "runs" / f"benchmark-reproduce-{stamp}")
    load_corpus(grid.dense)  # rendering the corpus is not part of the measured time
    started = time.perf_counter()
    summary = run_grid(grid)
    wall_s = time.perf_counter() - started
    print(to_markdown(main_table(load_experiment(grid.root)), []))
    cells = [
        {
            "method": cell["method"],
            "target_sparsity": cell["target_sparsity"],
            "seed": cell["seed"],
            "status": cell["status"],
            **{
                key: cell.get(key)
                for key in (
                    "test_wer",
                    "dev_wer",
                    "realized_sparsity",
                    "packed_bytes",
                    "train_wall_s",
                )
            },
        }
        for cell in summary["cells"]
    ]
    write_json(
        RESULT,
        {
            "grid": args.grid,
            "wall_s": wall_s,
            "dense_test_wer": summary["dense"]["test_wer"],
            "dense_dev_wer": summary["dense"]["dev_wer"],
            "dense_train_wall_s": summary["dense"]["train_wall_s"],
            "cells": cells,
            "goal": {"wall_s_max": 1200},
            "cpu_count": os.cpu_count(),
            "date": stamp,
        },
    )
    print(f"wrote {RESULT} (wall {wall_s:.0f} s)")


if __name__ == "__main__":
    main()
