"""Benchmark: the main job (`csp reproduce`, the default grid) from scratch on this machine.

Renders the corpus, trains the dense model and runs every cell in a fresh folder
(`runs/benchmark-reproduce-STAMP`), writes the report, then checks that the table carries
signal and writes benchmarks/results/reproduce_default.json (and the WER–sparsity figure
beside it). Goals (issue 29): `wall_s` ≤ 3600 on a 2-core CPU, rendering and dense training
included; the dense model's greedy test WER ≤ 0.35; and two signal checks:

- `random_below_best`: at s = 0.9, random's mean test WER exceeds the best method's by more
  than 3 × the pooled seed standard deviation of all methods there;
- `separated_pair`: at s = 0.8 and at s = 0.9, the paired bootstrap (utterances, seeds
  pooled) separates at least one pair of methods at p < 0.05.

It also states, from the bootstrap, whether CSP wins, loses or ties against each baseline at
each sparsity. A goal missed is written down with the figure reached, never hidden.

    python benchmarks/reproduce_default.py [--grid default] [--workers K] [--scaling-cells N]
    python benchmarks/reproduce_default.py --root runs/benchmark-reproduce-STAMP  # re-analyse
    python benchmarks/reproduce_default.py --readme  # the committed record into README.md
    python benchmarks/reproduce_default.py --prepare --root DIR  # corpus and dense only, timed
    python benchmarks/reproduce_default.py --root DIR            # then the cells (same DIR)

`--prepare` renders the corpus and trains the dense model, timing each (`phases.json` in the
folder), so that what depends on that dense model (the tuning studies,
benchmarks/tuning_studies.py) can run before the cells; the later run in the same folder reuses
both and reports `wall_s` as the sum of the three measured phases.

With `--scaling-cells N` (after the main job) it also measures cells per hour with 1 and with
2 workers on N cells of the same grid, from the main job's dense model, in fresh folders.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from analysis.experiment import load_experiment
from analysis.pairings import paired_comparison
from analysis.report import write_report
from analysis.significance import ALPHA, paired_bootstrap, pooled_system
from analysis.table_formats import to_markdown
from analysis.tables import Table, main_table
from analysis.verdicts import bootstrap_text, verdict_word
from experiments.files import parse_or_write_readme, read_yaml
from experiments.provenance import machine
from experiments.records import TEST_UTTERANCES, GridCell, write_json
from experiments.reproduce import grid_path, load_grid, run_grid, start_grid
from lightning_modules.data.synth.render import render_corpus
from sweeps.grid_study import run_grid_study

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "reproduce_default.json"
FIGURE = RESULT.with_suffix(".png")
GOAL = {"wall_s_max": 3600, "dense_test_wer_greedy_max": 0.35}
RANDOM, PROPOSED = "random", "csp"
PHASES = "phases.json"  # written by --prepare
WHAT_CSP_CHANGES = (
    "mask_overlap",
    "overlap_per_tensor",
    "per_tensor_sparsity",
    "dev_wer_trajectories",
)
"""Report figures committed beside the record: whose weights CSP keeps, how it spreads the
sparsity over tensors, and its dev WER through the schedule (issue 30)."""


def pooled_std(table: Table, sparsity: float) -> float | None:
    """The seed standard deviation pooled over every method at `sparsity` (root of the mean
    of the per-method variances)."""
    variances = [
        row.entries[sparsity].wer_std ** 2
        for row in table.rows
        if row.entries[sparsity].wer_std is not None
    ]
    return math.sqrt(statistics.fmean(variances)) if variances else None


def random_below_best(table: Table, sparsity: float = 0.9) -> dict[str, Any]:
    means = {row.label: row.entries[sparsity].wer_mean for row in table.rows}
    random_mean = means.get(RANDOM)
    others = {label: mean for label, mean in means.items() if label != RANDOM and mean is not None}
    spread = pooled_std(table, sparsity)
    if random_mean is None or not others or spread is None:
        return {
            "sparsity": sparsity,
            "holds": False,
            "why": "random, another method or a second seed has no result",
        }
    best = min(others, key=others.get)
    gap = random_mean - others[best]
    return {
        "sparsity": sparsity,
        "random_wer": random_mean,
        "best": best,
        "best_wer": others[best],
        "gap": gap,
        "pooled_seed_std": spread,
        "holds": gap > 3 * spread,
    }


def all_pairs(table: Table, sparsity: float) -> list[dict[str, Any]]:
    """The paired bootstrap of every pair of methods at `sparsity`, seeds pooled."""
    systems = {}
    for row in table.rows:
        runs = row.entries[sparsity].complete
        paths = [run.directory / TEST_UTTERANCES for run in runs]
        if runs and all(path.is_file() for path in paths):
            systems[row.label] = pooled_system(row.label, paths)
    pairs = []
    for a, b in itertools.combinations(sorted(systems), 2):
        result = paired_bootstrap(systems[a], systems[b])
        pairs.append(
            {
                "a": a,
                "b": b,
                "difference": result.difference,
                "p": result.p,
                "separated": result.significant,
                "text": bootstrap_text(result),
            }
        )
    return pairs


def csp_verdicts(table: Table) -> list[dict[str, Any]]:
    """CSP against each baseline at each sparsity: wins, loses or ties (bootstrap, p < α)."""
    verdicts = []
    for pairing in paired_comparison(table):
        if pairing.baseline is None:
            continue
        result = pairing.bootstrap
        verdicts.append(
            {
                "sparsity": pairing.sparsity,
                "baseline": pairing.baseline,
                "verdict": verdict_word(pairing),
                "difference": None if result is None else result.difference,
                "p": None if result is None else result.p,
                "seeds": pairing.seeds,
            }
        )
    return verdicts


def cell_record(cell: GridCell) -> dict[str, Any]:
    keys = (
        "test_wer",
        "test_wer_greedy",
        "dev_wer",
        "realized_sparsity",
        "packed_bytes",
        "dense_bytes",
        "train_wall_s",
    )
    return {
        "label": cell.label,
        "method": cell.method,
        "target_sparsity": cell.target_sparsity,
        "seed": cell.seed,
        "status": cell.status,
        **{key: getattr(cell.result, key, None) for key in keys},
        "settled": cell.settled,
    }


def worker_scaling(path: Path, root: Path, corpus: dict[str, Any], cells: int) -> dict[str, Any]:
    """Cells per hour with 1 and with 2 workers (`csp reproduce --workers K --storage`): the
    first `cells` cells of the grid, each setting in a fresh runs folder with a copy of the
    main job's dense model."""
    spec = read_yaml(path, "grid file")
    chosen = list(itertools.product(spec["methods"], spec["sparsities"], spec["seeds"]))[:cells]
    sub = {
        **spec,
        "methods": {label: spec["methods"][label] for label in dict.fromkeys(c[0] for c in chosen)},
        "sparsities": sorted({c[1] for c in chosen}),
        "seeds": sorted({c[2] for c in chosen}),
    }
    measured: dict[str, Any] = {}
    for workers in (1, 2):
        runs_dir = root / f"scaling-{workers}-workers"
        runs_dir.mkdir(parents=True)
        sub_path = runs_dir / "grid.yaml"
        sub_path.write_text(yaml.safe_dump(sub, sort_keys=False), encoding="utf-8")
        shutil.copytree(root / spec["name"] / "dense", runs_dir / spec["name"] / "dense")
        grid = load_grid(sub_path, runs_dir, corpus)
        started = time.perf_counter()
        summary = run_grid_study(grid, workers, str(runs_dir / "grid.journal"), corpus)
        wall = time.perf_counter() - started
        count = sum(cell.status == "complete" for cell in summary.cells)
        measured[f"workers_{workers}"] = 3600 * count / wall
        measured[f"workers_{workers}_detail"] = {"cells": count, "wall_s": wall}
    measured["ratio"] = measured["workers_2"] / measured["workers_1"]
    return measured


def csp_sentence(record: dict[str, Any]) -> str:
    """One sentence on CSP from the bootstrap verdicts."""
    verdicts = record["csp_verdicts"]
    counts = {v: sum(item["verdict"] == v for item in verdicts) for v in ("wins", "loses", "ties")}
    by_verdict = {
        verdict: sorted({f"{item['baseline']} at {item['sparsity']:g}" for item in verdicts
                         if item["verdict"] == verdict})
        for verdict in ("wins", "loses")
    }  # fmt: skip
    said = "; ".join(
        f"it {verdict} against {', '.join(names)}" for verdict, names in by_verdict.items() if names
    )
    return (
        f"**CSP against each baseline** (paired bootstrap over test utterances, seeds pooled, "
        f"p < {record['alpha']:g}), out of {len(verdicts)} comparisons: "
        f"wins {counts['wins']}, loses {counts['loses']}, ties {counts['ties']}"
        + (f" ({said})." if said else ".")
    )


def signal_sentence(record: dict[str, Any]) -> str:
    check = record["random_below_best"]
    signal = {name: "yes" if holds else "no" for name, holds in record["signal"].items()}
    random = (
        f" (at 0.9 random {check['random_wer']:.3f} against {check['best']} "
        f"{check['best_wer']:.3f}, pooled seed std {check['pooled_seed_std']:.3f})"
        if "gap" in check
        else f" ({check['why']})"
    )
    return (
        f"Signal checks: random_below_best: {signal['random_below_best']}{random}; "
        f"separated_pair: {signal['separated_pair']} (some pair of methods differs at "
        f"p < {record['alpha']:g} at 0.8 and at 0.9)."
    )


def readme_block(record: dict[str, Any]) -> str:
    """The README's lead: provenance, the figure, the sentence on CSP, the signal checks and
    the table, exactly as the benchmark recorded them."""
    dense = (
        f"dense model: test WER {record['dense_test_wer']:.3f} with the grid's decoding, greedy "
        f"{record['dense_test_wer_greedy']:.3f}, real speech {record['dense_real_wer']:.3f}"
        if record.get("dense_real_wer") is not None
        else f"dense model: test WER {record['dense_test_wer']:.3f}, greedy "
        f"{record['dense_test_wer_greedy']:.3f}"
    )
    met = {name: "met" if held else "missed" for name, held in record["goal_met"].items()}
    goal = record["goal"]
    phases = record.get("phases") or {}
    split = (
        f" (rendering {phases['render_s'] / 60:.1f}, dense {phases['dense_s'] / 60:.1f} with "
        f"`--prepare`, then the cells {phases['cells_s'] / 60:.1f})"
        if "cells_s" in phases
        else ""
    )
    tuned = sorted(
        label for label, entry in (record.get("settings") or {}).items() if "tuned_by" in entry
    )
    settings = (
        f" {', '.join(tuned)} run with the settings their equal-budget studies chose on dev "
        "([benchmarks/results/studies/](benchmarks/results/studies/summary.md)); the others "
        "with their defaults."
        if tuned
        else ""
    )
    lines = [
        f"`csp reproduce` (the default grid) from scratch, commit {record['commit']}, "
        f"{record['date']}, on {record['machine']}, {record['workers']} worker(s): "
        f"{record['wall_s'] / 60:.1f} minutes{split}, rendering and dense training included (goal "
        f"{goal['wall_s_max'] / 60:.0f} minutes: {met['wall_s']}); {dense} (goal greedy ≤ "
        f"{goal['dense_test_wer_greedy_max']}: {met['dense_test_wer_greedy']}). Why, and what "
        f"would fit: [docs/budget.md](docs/budget.md).{settings}",
        "",
        "![test WER against sparsity](benchmarks/results/reproduce_default.png)",
        "",
        csp_sentence(record),
        "",
        signal_sentence(record),
        "",
        record["table_markdown"].strip(),
        "",
    ]
    return "\n".join(lines)


def prepare(grid: Any, corpus: dict[str, Any], commit: str) -> dict[str, Any]:
    """Render the corpus, then train the grid's dense model; the seconds each took."""
    started = time.perf_counter()
    render_corpus(corpus["dir"], size=corpus["size"], seed=corpus["seed"])
    rendered = time.perf_counter()
    start_grid(grid)
    return {
        "render_s": rendered - started,
        "dense_s": time.perf_counter() - rendered,
        "commit": commit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="default")
    parser.add_argument(
        "--workers", type=int, default=1, help="cells trained at once (csp reproduce --workers)"
    )
    parser.add_argument("--scaling-cells", type=int, default=0)
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="analyse a benchmark folder again (its grid is complete: nothing is retrained "
        "and its measured wall time is kept)",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="render the corpus and train the dense model in --root, timed, and stop",
    )
    args = parse_or_write_readme(parser, RESULT, "main-result", readme_block)
    if args is None:
        return
    os.environ.setdefault("WANDB_MODE", "offline")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    root = args.root.resolve() if args.root else REPO / "runs" / f"benchmark-reproduce-{stamp}"
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    analysed_commit = commit
    measured = root / "benchmark.json"
    started = time.perf_counter()
    path = grid_path(args.grid)
    # A fresh corpus: rendering is part of the measured time.
    corpus = {**read_yaml(path, "grid file")["dense"]["corpus"], "dir": str(root / "corpus")}
    grid = load_grid(path, root, corpus)
    phases_path = root / PHASES
    if args.prepare:
        write_json(phases_path, prepare(grid, corpus, commit))
        return
    if args.workers == 1:
        summary = run_grid(grid)
    else:  # cells in parallel, through an Optuna study in a journal file (as a user runs it)
        summary = run_grid_study(grid, args.workers, str(root / "grid.journal"), corpus)
    experiment = load_experiment(grid.root)
    table = main_table(experiment)
    report = write_report([grid.root], grid.root / "report")
    if measured.is_file():
        kept = json.loads(measured.read_text(encoding="utf-8"))
        wall_s, stamp, commit = kept["wall_s"], kept["date"], kept["commit"]
        phases = kept.get("phases")
    else:
        wall_s = time.perf_counter() - started
        phases = {"run_s": wall_s, "commit": commit}
        if phases_path.is_file():  # corpus and dense came from --prepare: add their times
            prepared = json.loads(phases_path.read_text(encoding="utf-8"))
            phases = {**prepared, "cells_s": wall_s, "cells_commit": commit}
            wall_s += prepared["render_s"] + prepared["dense_s"]
        write_json(measured, {"wall_s": wall_s, "date": stamp, "commit": commit, "phases": phases})
    print(to_markdown(table, paired_comparison(table)))
    figures = grid.root / "report" / "figures"
    if (figures / f"{grid.spec.name}-wer_vs_sparsity.png").is_file():
        shutil.copyfile(figures / f"{grid.spec.name}-wer_vs_sparsity.png", FIGURE)
    overlaps = grid.root / "report" / "mask_overlap.csv"  # per tensor and pooled
    if overlaps.is_file():
        shutil.copyfile(overlaps, RESULT.with_name(f"{RESULT.stem}-mask_overlap.csv"))
    for stem in WHAT_CSP_CHANGES:  # committed beside the record: the report is not
        if (figures / f"{grid.spec.name}-{stem}.png").is_file():
            shutil.copyfile(
                figures / f"{grid.spec.name}-{stem}.png",
                RESULT.with_name(f"{RESULT.stem}-{stem}.png"),
            )

    random_check = random_below_best(table)
    pairs = {str(s): all_pairs(table, s) for s in (0.8, 0.9) if s in table.sparsities}
    separated = {s: any(p["separated"] for p in found) for s, found in pairs.items()}
    dense = summary.dense
    record = {
        "grid": args.grid,
        "commit": commit,
        "analysed_commit": analysed_commit,
        "date": stamp,
        "machine": machine(),
        "workers": args.workers,
        "command": " ".join(["python", "benchmarks/reproduce_default.py", *sys.argv[1:]]),
        "as_csp": f"csp reproduce --grid {args.grid} --workers {args.workers}",
        "wall_s": wall_s,
        "phases": phases,  # seconds of rendering, dense training and cells, where split
        "settings": grid.spec.methods,  # each method's entry: tuned values and their trial
        "dense_test_wer": dense.test_wer,
        "dense_test_wer_greedy": dense.test_wer_greedy,
        "dense_dev_wer": dense.dev_wer,
        "dense_real_wer": dense.real_wer,
        "dense_train_wall_s": dense.train_wall_s,
        "dense_steps": dense.steps,
        "decoding": dense.decoding,
        "cells": [cell_record(cell) for cell in summary.cells],
        "signal": {
            "random_below_best": random_check["holds"],
            "separated_pair": bool(separated) and all(separated.values()),
        },
        "random_below_best": random_check,
        "separated_pairs": pairs,
        "csp_verdicts": csp_verdicts(table),
        "table_markdown": to_markdown(table, []),
        "report": str(report.relative_to(REPO)),
        "goal": GOAL,
        "goal_met": {
            "wall_s": wall_s <= GOAL["wall_s_max"],
            "dense_test_wer_greedy": dense.test_wer_greedy is not None
            and dense.test_wer_greedy <= GOAL["dense_test_wer_greedy_max"],
        },
        "alpha": ALPHA,
    }
    committed = json.loads(RESULT.read_text(encoding="utf-8")) if RESULT.is_file() else {}
    if "worker_scaling" in committed:  # kept until measured again (`measured_on` names the run)
        record["worker_scaling"] = committed["worker_scaling"]
    if committed.get("date") not in (None, stamp):  # the record this run replaces, in brief
        kept = ("commit", "date", "wall_s", "workers", "dense_test_wer_greedy", "csp_verdicts")
        record["previous_run"] = {key: committed.get(key) for key in kept}
    write_json(RESULT, record)
    print(f"wrote {RESULT} (wall {wall_s:.0f} s)")
    if args.scaling_cells:
        scaling = worker_scaling(path, root, corpus, args.scaling_cells)
        record["worker_scaling"] = {**scaling, "measured_on": stamp}
        write_json(RESULT, record)
        print(f"worker scaling: {record['worker_scaling']}")


if __name__ == "__main__":
    main()
