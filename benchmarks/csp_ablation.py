"""Benchmark: the ablation of CSP's parts (experiments/grids/ablation.yaml).

Runs the ablation grid (full CSP as the main job runs it, each sensing kind, λs = 0, λr = 0,
ε = ∞; three seeds) and writes benchmarks/results/csp_ablation.json (each variant's test WER
per seed, mean ± std, and its pairing against full CSP: the seed-by-seed differences and the
paired bootstrap over test utterances pooled over seeds; the dense model's greedy and
configured test WER) and benchmarks/results/csp_ablation.md (the ablation table as the report
shows it). The grid shares the default grid's dense model: with --root, the one of a main-job
folder (`benchmarks/reproduce_default.py --prepare --root DIR`), else one trained in a fresh
folder (rendering not timed). Goal: ≤ 60 minutes; the dense model's greedy test WER ≤ 0.35.

    python benchmarks/csp_ablation.py [--grid ablation] [--root DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import time
from pathlib import Path

from analysis.experiment import load_experiment
from analysis.pairings import ablation_comparison
from analysis.report import write_report
from analysis.table_formats import to_markdown
from analysis.tables import ablation_table
from analysis.verdicts import verdict
from experiments.files import read_yaml
from experiments.records import write_json
from experiments.reproduce import grid_path, load_grid, run_grid
from experiments.train import load_corpus
from sweeps.grid_study import run_grid_study

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
GOAL = {"wall_s_max": 3600, "dense_test_wer_greedy_max": 0.35}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="ablation")
    parser.add_argument("--root", type=Path, default=None, help="a prepared main-job folder")
    parser.add_argument("--workers", type=int, default=1, help="cells trained at once")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = grid_path(args.grid)
    root, corpus = REPO / "runs" / f"benchmark-ablation-{stamp}" / "grid", None
    if args.root is not None:  # the main job's corpus and dense model, as it names them
        root = args.root.resolve()
        corpus = {**read_yaml(path, "grid file")["dense"]["corpus"], "dir": str(root / "corpus")}
    grid = load_grid(path, root, corpus)
    load_corpus(grid.dense)  # rendering the corpus is not part of the measured time
    started = time.perf_counter()
    if args.workers == 1:
        summary = run_grid(grid)
    else:
        summary = run_grid_study(grid, args.workers, str(root / f"{args.grid}.journal"), corpus)
    wall_s = time.perf_counter() - started
    table = ablation_table(load_experiment(grid.root))
    if table is None:
        raise SystemExit(f"{args.grid}: the grid has no variants of CSP to compare")
    pairings = ablation_comparison(table)
    figures = write_report([grid.root], grid.root / "report").parent / "figures"
    for stem, name in (
        ("ablation", "csp_ablation"),
        ("dev_wer_trajectories", "csp_ablation-dev_wer_trajectories"),
    ):
        if (figures / f"{grid.spec.name}-{stem}.png").is_file():
            shutil.copyfile(figures / f"{grid.spec.name}-{stem}.png", RESULTS / f"{name}.png")
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
            "verdict": verdict(pairing),
        }
        for pairing in pairings
    ]
    write_json(
        RESULTS / "csp_ablation.json",
        {
            "grid": args.grid,
            "wall_s": wall_s,
            "workers": args.workers,
            "goal": GOAL,
            "goal_met": {
                "wall_s": wall_s <= GOAL["wall_s_max"],
                "dense_test_wer_greedy": (summary.dense.test_wer_greedy or 1.0)
                <= GOAL["dense_test_wer_greedy_max"],
            },
            "dense_test_wer": summary.dense.test_wer,
            "dense_test_wer_greedy": summary.dense.test_wer_greedy,
            "dense_dev_wer": summary.dense.dev_wer,
            "dense_real_wer": summary.dense.real_wer,
            "variants": variants,
            "comparisons": comparisons,
            "cpu_count": os.cpu_count(),
            "date": stamp,
        },
    )
    print(f"wrote {RESULTS / 'csp_ablation.json'} (wall {wall_s:.0f} s)")


if __name__ == "__main__":
    main()
