"""Benchmark: the comparison as a function of budget (experiments/grids/budget.yaml).

Runs the budget grid (CSP, GMP, SparseGPT and Wanda with their tuned entries, from the main
job's dense model, at s = 0.9 with cells of 100, 400 and 1,600 steps; the grid file says which
methods and seeds each budget holds, and the dense control at each budget and seed) in parts,
then writes benchmarks/results/budget_curve.json, the tables (budget_curve.md) and the figure
(budget_curve.png: test WER against log steps and against training wall time). Per method ×
budget × seed: test WER with the configured decoding and greedy, realized sparsity from the
saved weights, the settled flag, training wall time and the change against the dense control of
the same budget; per budget the paired bootstrap of CSP against each method. Each part is timed
and recorded with its command (`parts`), and every part re-writes the record, so a session that
ends between parts keeps what ended.

    python benchmarks/budget_curve.py --budget 100 --budget 400   # part 1
    python benchmarks/budget_curve.py --budget 1600               # part 2
    python benchmarks/budget_curve.py                             # re-analyse, train nothing
    python benchmarks/budget_curve.py --readme                    # the record into README.md

The dense model is the main job's (`runs/default/dense`, trained there first if missing:
training is deterministic, so a new machine gets the same weights).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from analysis.budget import (
    BudgetCurve,
    budget_curves,
    budget_grids,
    budget_records,
    ended_budgets,
)
from analysis.detail_tables import grid_markdown
from analysis.experiment import load_experiment
from analysis.report import write_report
from analysis.verdicts import bootstrap_text, verdict_word
from experiments.files import parse_or_write_readme
from experiments.provenance import git_commit, machine
from experiments.records import GridResults, read_grid_results, write_json
from experiments.reproduce import grid_path, load_grid, start_grid, summarize_grid
from sweeps.grid_study import run_grid_study

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "budget_curve.json"
FIGURE = RESULT.with_suffix(".png")
TABLES = RESULT.with_suffix(".md")
PARTS = "parts.json"
"""In the grid's folder: each part's budgets, command, workers, wall time and commit."""


def settled_flags(results: GridResults | None) -> dict[str, bool | None]:
    """Cell folder name → whether its fine-tuning settled (results.json)."""
    if results is None:
        return {}
    return {
        Path(cell.run_dir).name: None if cell.settled is None else cell.settled["settled"]
        for cell in results.cells
    }


def verdicts(curve: BudgetCurve) -> list[dict[str, Any]]:
    """CSP against each method at each budget: the paired bootstrap and its verdict."""
    found = []
    for budget, pairings in curve.pairings.items():
        for pairing in pairings:
            if pairing.baseline is None:
                continue
            result = pairing.bootstrap
            found.append(
                {
                    "budget": budget,
                    "system": pairing.system,
                    "compared_with": pairing.baseline,
                    "seeds": pairing.seeds,
                    "differences_by_seed": pairing.differences,
                    "bootstrap_difference": result.difference if result else None,
                    "bootstrap_low": result.low if result else None,
                    "bootstrap_high": result.high if result else None,
                    "p": result.p if result else None,
                    "verdict": verdict_word(pairing),
                    "text": bootstrap_text(result) if result else pairing.bootstrap_note,
                }
            )
    return found


def curve_record(curve: BudgetCurve, settled: dict[str, bool | None]) -> dict[str, Any]:
    runs = budget_records(curve)
    directories = {
        (line.label, budget, run.seed): run.directory.name
        for line in [curve.control, *curve.lines]
        for budget, entry in line.points.items()
        for run in entry.runs
    }
    for run in runs:
        run["settled"] = settled.get(directories[run["label"], run["budget"], run["seed"]])
    controls = {
        str(budget): {
            "test_wer_mean": entry.wer_mean,
            "test_wer_std": entry.wer_std,
            "test_wer_greedy_mean": entry.mean_of("test_wer_greedy"),
            "seeds": len(entry.complete),
            "train_wall_s_mean": entry.mean_of("train_wall_s"),
        }
        for budget, entry in curve.control.points.items()
    }
    means = {
        line.label: {
            str(budget): {
                "test_wer_mean": entry.wer_mean,
                "test_wer_std": entry.wer_std,
                "test_wer_greedy_mean": entry.mean_of("test_wer_greedy"),
                "relative_to_control": entry.relative,
                "seeds": len(entry.complete),
                "train_wall_s_mean": entry.mean_of("train_wall_s"),
            }
            for budget, entry in line.points.items()
        }
        for line in curve.lines
    }
    return {
        "target_sparsity": curve.sparsity,
        "budgets": curve.budgets,
        "dense_control": controls,
        "methods": means,
        "runs": runs,
        "verdicts": verdicts(curve),
    }


def run_part(
    grid: Any, budgets: list[int], workers: int, root: Path, number: int
) -> dict[str, Any]:
    """Train the cells of `budgets` (the dense model first if missing), timed: the grid's
    part `number` (the same again when an interrupted part is run again, so it resumes)."""
    started, commit = time.perf_counter(), git_commit()  # the code the cells run
    start_grid(grid)  # the dense model: reused, or trained (deterministic) on a new machine
    dense_s = time.perf_counter() - started
    # a study per part: a later part may add cells to the grid file (its study holds the grid)
    journal = root / f"part{number}-{'-'.join(map(str, budgets))}.journal"
    run_grid_study(grid, workers, str(journal), None, budgets=budgets)
    return {
        "budgets": budgets,
        "command": " ".join(["python", "benchmarks/budget_curve.py", *sys.argv[1:]]),
        "workers": workers,
        "wall_s": time.perf_counter() - started,
        "dense_s": dense_s,
        "commit": commit,
        "ended": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
    }


def readme_block(record: dict[str, Any]) -> str:
    """The README's budget result: provenance, the figure, one sentence per budget on the
    proposed method's verdicts and a link to the tables, as the benchmark recorded them."""
    parts = "; ".join(
        f"budgets {', '.join(f'{b:,}' for b in part['budgets'])}: "
        f"{part['wall_s'] / 60:.1f} minutes with {part['workers']} worker(s)"
        for part in record["parts"]
    )
    lines = [
        f"`python benchmarks/budget_curve.py` (the `budget` grid: from the main job's dense model, "
        f"test WER {record['dense']['test_wer']:.3f}, greedy "
        f"{record['dense']['test_wer_greedy']:.3f}), commit {record['commit']}, {record['date']}, "
        f"on {record['machine']}, in parts ({parts}).",
        "",
        "![test WER against cell budget](benchmarks/results/budget_curve.png)",
        "",
    ]
    for curve in record["curves"]:
        lines += [f"- {sentence}" for sentence in budget_sentences(curve)]
    lines += ["", f"Every number, the control and the bootstrap intervals: [{TABLES.name}]"
              f"({TABLES.relative_to(REPO)})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def budget_sentences(curve: dict[str, Any]) -> list[str]:
    """Per budget: against whom the proposed method wins, loses and ties (paired bootstrap)."""
    sentences = []
    for budget in curve["budgets"]:
        here = [v for v in curve["verdicts"] if v["budget"] == budget]
        if not here:
            continue
        system = here[0]["system"]
        said = "; ".join(
            f"{word} against {', '.join(v['compared_with'] for v in here if v['verdict'] == word)}"
            for word in ("wins", "loses", "ties", "untested")
            if any(v["verdict"] == word for v in here)
        )
        seeds = sorted({len(v["seeds"]) for v in here})
        sentences.append(
            f"**{budget:,} steps per cell**, s = {curve['target_sparsity']:g} "
            f"({' or '.join(map(str, seeds))} paired seed(s)): {system} {said}."
        )
    return sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="budget")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs")
    parser.add_argument(
        "--budget", type=int, action="append", default=[], help="a part: train these budgets"
    )
    parser.add_argument("--workers", type=int, default=2, help="cells trained at once")
    args = parse_or_write_readme(parser, RESULT, "budget-result", readme_block)
    if args is None:
        return
    os.environ.setdefault("WANDB_MODE", "offline")
    commit = git_commit()  # before this run writes the record's own files
    grid = load_grid(grid_path(args.grid), args.runs_dir.resolve())
    grid.cell_dirs(args.budget or None)  # an unknown budget fails before any work
    root = grid.root
    parts_path = root / PARTS
    parts = (
        json.loads(parts_path.read_text(encoding="utf-8"))["parts"] if parts_path.is_file() else []
    )
    if args.budget:
        root.mkdir(parents=True, exist_ok=True)
        parts.append(run_part(grid, args.budget, args.workers, root, len(parts) + 1))
        write_json(parts_path, {"parts": parts})
    dense = start_grid(grid)
    summarize_grid(grid, dense)  # results.json of every cell, ended or not
    report = write_report([root], root / "report")
    experiment = load_experiment(root)
    curves = budget_curves(experiment)
    figure = root / "report" / "figures" / f"{grid.spec.name}-wer_vs_budget.png"
    if figure.is_file():
        shutil.copyfile(figure, FIGURE)
    tables = "\n".join(grid_markdown(table) for curve in curves for table in budget_grids(curve))
    TABLES.write_text(tables, encoding="utf-8")
    settled = settled_flags(read_grid_results(root))
    ended = sorted({budget for curve in curves for budget in ended_budgets(curve)})
    record = {
        "grid": args.grid,
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine(),
        "parts": parts,
        "wall_s": sum(part["wall_s"] for part in parts),
        "dense": {
            "run_dir": str(experiment.dense.directory.relative_to(REPO))
            if experiment.dense.directory.is_relative_to(REPO)
            else str(experiment.dense.directory),
            "test_wer": dense.test_wer,
            "test_wer_greedy": dense.test_wer_greedy,
            "steps": dense.steps,
        },
        "budgets": ended,  # those with a complete cell
        "budget_span": ended[-1] / ended[0] if ended else None,
        "settings": grid.spec.methods,
        "curves": [curve_record(curve, settled) for curve in curves],
        "tables_markdown": str(TABLES.relative_to(REPO)),
        "figure": str(FIGURE.relative_to(REPO)),
        "report": str(report),
    }
    write_json(RESULT, record)
    print(tables)
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
