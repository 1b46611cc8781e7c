"""Benchmark: CSP and the three strongest baselines tuned on dev with equal budgets (issue 30).

Each method's sweep spec (`sweeps/specs/METHOD.yaml`: the same 12 trials of the default grid's
100 steps at target sparsity 0.9, dev WER only, never test or real speech) runs as an Optuna
study on the main job's dense model: a folder prepared by

    python benchmarks/reproduce_default.py --prepare --root DIR

then

    python benchmarks/tuning_studies.py --root DIR [--workers 2] [--methods csp gmp ...]
    python benchmarks/tuning_studies.py --apply   # best trials into the default and ablation grids

The baselines are the three with the lowest mean test WER at 0.9 in the committed main-job
record (`benchmarks/results/reproduce_default.json`) unless --methods names others. As each
study ends, its storage (`benchmarks/results/studies/METHOD.journal`), its record
(`METHOD.json`: every trial's state, dev WER, values and seconds; the best trial as a grid
entry for `experiments/grids/default.yaml`), its figures and the summary table (`summary.md`)
are written, so a session that stops loses at most the study in progress; running the command
again keeps the finished studies and goes on with the unfinished one. Goal: each study
finishes in ≤ 60 minutes on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from analysis.studies import importances, param_importance, pareto_front
from experiments.files import read_yaml
from experiments.records import read_result, write_json
from experiments.reproduce import grid_path
from sweeps.spec import load_spec
from sweeps.study import create_sweep, grid_entry
from sweeps.worker import run_workers

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "studies"
MAIN_JOB = REPO / "benchmarks" / "results" / "reproduce_default.json"
SPECS = REPO / "sweeps" / "specs"
GOAL = {"study_wall_s_max": 3600}
PROPOSED, CONTROL, TUNED_AT = "csp", "random", 0.9
MERGE = "<<: *tuned"  # an ablation variant's line starts from tuned CSP's entry (YAML merge)


def strongest_baselines(count: int = 3) -> list[str]:
    """The baselines with the lowest mean test WER at 0.9 in the committed main-job record."""
    cells = json.loads(MAIN_JOB.read_text(encoding="utf-8"))["cells"]
    wers: dict[str, list[float]] = {}
    for cell in cells:
        if cell["target_sparsity"] == TUNED_AT and cell["label"] not in (PROPOSED, CONTROL):
            wers.setdefault(cell["label"], []).append(cell["test_wer"])
    return sorted(wers, key=lambda label: statistics.mean(wers[label]))[:count]


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    seconds = None
    if trial.datetime_start is not None and trial.datetime_complete is not None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {
        "number": trial.number,
        "state": trial.state.name,
        "dev_wer": trial.value if trial.state == TrialState.COMPLETE else None,
        "params": trial.params,
        "seconds": seconds,
    }


def study_wall_s(study: optuna.Study) -> float:
    """From the first trial's start to the last one's end (workers run trials at once)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    return (max(t.datetime_complete for t in trials) - start).total_seconds()


def run_study(method: str, root: Path, corpus: dict[str, Any], workers: int) -> dict[str, Any]:
    """Create (or reopen) the method's study in its journal file, run its trials, record it."""
    spec = load_spec(SPECS / f"{method}.yaml")
    storage = str(RESULTS / f"{spec.name}.journal")
    sweep, _ = create_sweep(spec, storage, corpus, root)
    failed = run_workers(sweep, spec.trials, workers)
    study = sweep.study
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if failed or not complete:
        raise SystemExit(f"study {spec.name}: {failed} worker(s) failed; see {sweep.trials_dir}")
    best = study.best_trial
    dense = read_result(sweep.grid.dense_dir)
    wall_s = study_wall_s(study)
    record = {
        "study": spec.name,
        "storage": str(Path(storage).relative_to(REPO)),
        "method": spec.method,
        "sparsity": spec.sparsity,
        "budget": {
            "trials": spec.trials,
            "steps_per_trial": sweep.trial_config(best.params, best.number, None).trainer.max_steps,
        },
        "space": {key: param.model_dump(exclude_none=True) for key, param in spec.space.items()},
        "states": {
            state.name: sum(t.state == state for t in trials)
            for state in TrialState
            if any(t.state == state for t in trials)
        },
        "objective": "dev_wer (greedy, dev split)",
        "best": {
            "trial": best.number,
            "dev_wer": best.value,
            "params": best.params,
            "grid_entry": grid_entry(spec, best.params),
        },
        "trials": [trial_record(t) for t in trials],
        "dense": {"run_dir": str(sweep.grid.dense_dir), "dev_wer": dense.dev_wer}
        if dense is not None
        else None,
        "workers": workers,
        "wall_s": wall_s,
        "goal": GOAL,
        "goal_met": wall_s <= GOAL["study_wall_s_max"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }
    write_json(RESULTS / f"{spec.name}.json", record)
    figure = pareto_front(study)
    if figure is not None:
        figure.savefig(RESULTS / f"{spec.name}-trials.png", dpi=110, bbox_inches="tight")
    found = importances(study)
    figure = param_importance(found, study) if found else None
    if figure is not None:
        figure.savefig(RESULTS / f"{spec.name}-importance.png", dpi=110, bbox_inches="tight")
    return record


def summary_table(records: list[dict[str, Any]]) -> str:
    """The studies side by side: budget, best dev WER, its trial and values, wall time."""
    lines = [
        "| study | trials (complete) | steps per trial | best dev WER | median dev WER | "
        "best trial | wall (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for record in records:
        values = [t["dev_wer"] for t in record["trials"] if t["dev_wer"] is not None]
        lines.append(
            f"| {record['study']} | {record['budget']['trials']} ({len(values)}) | "
            f"{record['budget']['steps_per_trial']} | {record['best']['dev_wer']:.4f} | "
            f"{statistics.median(values):.4f} | {record['best']['trial']} | "
            f"{record['wall_s'] / 60:.1f} |"
        )
    lines.append("")
    for record in records:
        lines.append(
            f"- `{record['study']}` best trial {record['best']['trial']}: "
            f"`{json.dumps(record['best']['grid_entry'], sort_keys=True)}`"
        )
    return "\n".join(lines) + "\n"


def tuned_entries() -> dict[str, dict[str, Any]]:
    """Method → its best trial's grid entry, `tuned_by` naming the study and trial, from the
    committed study records."""
    entries = {}
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        best = record["best"]
        entries[record["method"]] = {
            **best["grid_entry"],
            "tuned_by": f"study {record['study']}, trial {best['trial']} "
            f"(benchmarks/results/studies/{path.name}, dev WER {best['dev_wer']:.4f})",
        }
    return entries


def flow(entry: dict[str, Any]) -> str:
    return yaml.safe_dump(entry, default_flow_style=True, sort_keys=True, width=10_000).strip()


def replace_methods(path: Path, entry_line: Callable[[str, dict[str, Any]], str]) -> None:
    """Rewrite each line of the `methods:` block of a grid file with `entry_line(label,
    entry)`, keeping the line's comment and everything outside the block."""
    text = path.read_text(encoding="utf-8").splitlines()
    start = text.index("methods:") + 1
    end = next(i for i in range(start, len(text)) if not text[i].startswith("  "))
    lines = []
    for line in text[start:end]:
        label = line.split(":", 1)[0].strip()
        written = line[line.index("{") : line.rindex("}") + 1].replace(f"{MERGE}, ", "")
        comment = line[line.rindex("}") + 1 :].strip()
        lines.append(f"{entry_line(label, yaml.safe_load(written))}  {comment}".rstrip())
    path.write_text("\n".join([*text[:start], *lines, *text[end:]]) + "\n", encoding="utf-8")


def apply_to_grids(entries: dict[str, dict[str, Any]]) -> None:
    """Each tuned method's entry into the default grid, and tuned CSP as the ablation's full
    CSP: every variant starts from it (a YAML merge) and changes one part."""

    def default_line(label: str, entry: dict[str, Any]) -> str:
        return f"  {label}: {flow(entries.get(label, {}))}"

    replace_methods(grid_path("default"), default_line)

    def ablation_line(label: str, written: dict[str, Any]) -> str:
        """Full CSP as tuned; a variant: the tuned entry merged in, then what it changes."""
        if label == PROPOSED:
            return f"  {label}: &tuned {flow(entries[PROPOSED])}"
        return f"  {label}: {{{MERGE}, {flow(written)[1:]}"

    replace_methods(grid_path("ablation"), ablation_line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="the prepared main-job folder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument(
        "--apply",
        action="store_true",
        help="only write each study's best trial into experiments/grids/default.yaml and "
        "ablation.yaml (tuned CSP as the ablation's full CSP)",
    )
    args = parser.parse_args()
    if args.apply:
        apply_to_grids(tuned_entries())
        return
    if args.root is None:
        parser.error("--root is required to run the studies")
    os.environ.setdefault("WANDB_MODE", "offline")
    root = args.root.resolve()
    dense_corpus = read_yaml(grid_path("default"), "grid file")["dense"]["corpus"]
    corpus = {**dense_corpus, "dir": str(root / "corpus")}  # as reproduce_default.py gives it
    methods = args.methods or [PROPOSED, *strongest_baselines()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    records = []
    for method in methods:
        print(f"== study {method}: {methods.index(method) + 1} of {len(methods)}", flush=True)
        records.append(run_study(method, root, corpus, args.workers))
        (RESULTS / "summary.md").write_text(summary_table(records), encoding="utf-8")
        print(summary_table(records), flush=True)


if __name__ == "__main__":
    main()
