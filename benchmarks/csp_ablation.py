"""Benchmark: the ablation of CSP's parts (experiments/grids/ablation.yaml) from scratch.

Runs the ablation grid (full CSP, each sensing kind, λs = 0, λr = 0, ε = ∞; three seeds) in
a fresh runs folder, its dense model included, and writes benchmarks/results/csp_ablation.json
(each variant's test WER per seed, mean ± std, and its pairing against full CSP: the
seed-by-seed differences and the paired bootstrap over test utterances pooled over seeds)
and benchmarks/results/csp_ablation.md (the ablation table as the report shows it).

    python benchmarks/csp_ablation.py [--grid ablation]
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

from analysis.experiment import load_experiment
from analysis.table_formats import to_markdown
from analysis.tables import ablation_comparison, ablation_table
from experiments.records import write_json
from experiments.reproduce import grid_path, load_grid, run_grid
from experiments.train import load_corpus

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="ablation")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    grid = load_grid(grid_path(args.grid), REPO / "runs" / f"benchmark-ablation-{stamp}" / "grid")
    load_corpus(grid.dense)  # rendering the corpus is not part of the measured time
    started = time.perf_counter()
    summary = run_grid(grid)
    wall_s = time.perf_counter() - started
    table = ablation_table(load_experiment(grid.root))
    if table is None:
        raise SystemExit(f"{args.grid}: the grid has no variants of CSP to compare")
    pairings = ablation_comparison(table)
    markdown = to_markdown(table, pairings)
    (RESULTS / "csp_ablation.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    variants = {
        row.label: {
            "name": row.name,
            **{
                f"{sparsity:g}": {
                    "seeds": [run.seed for run in entry.complete],
                    "test_wer": [run.result.test_wer for run in entry.complete],
                    "mean": entry.wer_mean,
                    "std": entry.wer_std,
                }
                for sparsity, entry in row.entries.items()
            },
        }
        for row in table.rows
    }
    comparisons = [
        {
            "variant": pairing.system,
            "against": pairing.baseline,
            "target_sparsity": pairing.sparsity,
            "seeds": pairing.seeds,
            "differences": pairing.differences,
            "mean": pairing.mean,
            "std": pairing.std,
            "bootstrap": None if pairing.bootstrap is None else pairing.bootstrap.as_dict(),
            "verdict": pairing.verdict,
        }
        for pairing in pairings
    ]
    write_json(
        RESULTS / "csp_ablation.json",
        {
            "grid": args.grid,
            "wall_s": wall_s,
            "dense_test_wer": summary["dense"]["test_wer"],
            "dense_dev_wer": summary["dense"]["dev_wer"],
            "dense_real_wer": summary["dense"].get("real_wer"),
            "variants": variants,
            "comparisons": comparisons,
            "cpu_count": os.cpu_count(),
            "date": stamp,
        },
    )
    print(f"wrote {RESULTS / 'csp_ablation.json'} (wall {wall_s:.0f} s)")


if __name__ == "__main__":
    main()
