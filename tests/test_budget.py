"""The budget axis of a grid: cells and a dense control at each budget, schedule windows and
cadence scaled with the steps, the budget carried into results.json, the CSV, every table
format and the budget figure. (A grid without the axis writes results.json as before it:
tests/test_records.py.)"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from analysis.budget import budget_curves, budget_grids, budget_records
from analysis.experiment import load_experiment
from analysis.figures import wer_vs_budget
from analysis.pairings import paired_comparison
from analysis.table_formats import to_csv, to_latex, to_markdown
from analysis.tables import main_tables
from experiments.config import ConfigError
from experiments.records import (
    RunResult,
    UtteranceRecord,
    write_result,
    write_utterance_records,
)
from experiments.reproduce import grid_path, load_grid, summarize_grid

BUDGETS = (12, 48)  # the tiny grid's prune section has 24 steps: half and twice


def budget_grid(tmp_path: Path, **changes: object) -> Path:
    """The tiny grid with a budget axis (and a tuned-looking window for gmp)."""
    raw = yaml.safe_load(grid_path("tiny").read_text())
    raw["methods"]["gmp"] = {"schedule": {"end": 8}}
    raw.update(budgets=list(BUDGETS), **changes)
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_budget_scales_each_window_interval_and_cadence(tmp_path: Path) -> None:
    grid = load_grid(budget_grid(tmp_path), tmp_path / "runs")
    configs = dict(grid.cell_configs(tmp_path / "dense.ckpt"))
    names = sorted(directory.name for directory in configs)
    assert names == sorted(
        [f"{m}-s0.5-seed0-b{b}" for m in ("csp", "gmp") for b in BUDGETS]
        + [f"dense_control-s0-seed0-b{b}" for b in BUDGETS]
    )
    for budget, factor in zip(BUDGETS, (0.5, 2.0), strict=True):
        csp = configs[grid.root / f"csp-s0.5-seed0-b{budget}"]
        gmp = configs[grid.root / f"gmp-s0.5-seed0-b{budget}"]
        control = configs[grid.root / f"dense_control-s0-seed0-b{budget}"]
        # the grid's window 0-16 every 4; gmp's own window 0-8: both keep their fraction
        assert (csp.pruning.schedule.end, csp.pruning.schedule.every) == (16 * factor, 4 * factor)
        assert gmp.pruning.schedule.end == 8 * factor
        for config in (csp, gmp, control):
            assert config.trainer.max_steps == budget
            assert config.trainer.val_every_n_steps == 12 * factor
            assert config.trainer.checkpoint_every_n_steps == 4 * factor
        # the control: the dense weights trained on with the prune section's optimizer
        assert control.pruning is None and control.init_from == tmp_path / "dense.ckpt"
        assert control.optim.learning_rate == csp.optim.learning_rate == 0.003


def test_a_budget_may_run_its_own_seeds_and_methods(tmp_path: Path) -> None:
    path = budget_grid(tmp_path, seeds=[0, 1])
    raw = yaml.safe_load(path.read_text())
    raw["budgets"] = [12, {"steps": 48, "seeds": [0], "methods": ["gmp"]}]
    path.write_text(yaml.safe_dump(raw))
    grid = load_grid(path, tmp_path / "runs")
    assert [d.name for d in grid.cell_dirs([48])] == [
        "gmp-s0.5-seed0-b48",
        "dense_control-s0-seed0-b48",
    ]
    raw["budgets"][1]["control"] = False  # a budget may leave its control out
    path.write_text(yaml.safe_dump(raw))
    assert [d.name for d in load_grid(path, tmp_path).cell_dirs([48])] == ["gmp-s0.5-seed0-b48"]
    assert len(grid.cell_dirs([12])) == 2 * 2 + 2  # two methods and the control, two seeds
    with pytest.raises(ConfigError, match=r"no budget \[100\]"):
        grid.cell_dirs([100])
    # a second entry of a budget adds seeds for some methods (a later part of the grid)
    raw["budgets"].append({"steps": 48, "seeds": [1], "methods": ["csp"], "control": False})
    path.write_text(yaml.safe_dump(raw))
    assert [d.name for d in load_grid(path, tmp_path).cell_dirs([48])] == [
        "gmp-s0.5-seed0-b48",
        "csp-s0.5-seed1-b48",
    ]
    raw["budgets"][2].update(methods=["gmp"], seeds=[0])  # but no cell in two entries
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"gmp at 48 steps, seed 0, is in two entries"):
        load_grid(path, tmp_path)
    raw["budgets"] = raw["budgets"][:2]
    raw["budgets"][1]["methods"] = ["wanda"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"budgets.1.methods: \['wanda'\] are not entries"):
        load_grid(path, tmp_path / "runs")


def test_a_grid_with_two_budgets_carries_them_into_every_record(
    tmp_path: Path, tiny_corpus: Path, csp: Callable
) -> None:
    grid = budget_grid(tmp_path)
    runs = tmp_path / "runs"
    done = csp("reproduce", "--grid", grid, "--corpus", tiny_corpus, "--runs-dir", runs)
    assert done.returncode == 0, done.stderr[-3000:]
    root = runs / "tiny"
    # results.json: every cell and the control at both budgets, with the budget
    cells = json.loads((root / "results.json").read_text())["cells"]
    found = {(cell["label"], cell["budget"]) for cell in cells}
    assert found == {(m, b) for m in ("csp", "gmp", "dense_control") for b in BUDGETS}
    assert all(cell["status"] == "complete" for cell in cells)
    assert {cell["steps"] for cell in cells if cell["budget"] == 48} == {48}
    # the tables: one main table per budget, its dense column the control of that budget
    experiment = load_experiment(root)
    tables = main_tables(experiment)
    assert [table.budget for table in tables] == list(BUDGETS)
    for table in tables:
        control = table.dense.wer_mean
        assert control is not None and table.dense_label == "dense_control"
        for row in table.rows:
            entry = row.entries[0.5]
            assert entry.relative == pytest.approx((entry.wer_mean - control) / control)
    report = root / "report"
    markdown = (report / "table.md").read_text()
    latex = (report / "table.tex").read_text()
    html = (report / "report.html").read_text()
    for budget in BUDGETS:
        assert f"{budget} steps per cell" in markdown
        assert f"{budget} steps per cell" in latex
        assert f"{budget} steps per cell" in html
        assert f"Dense, trained on ({budget} steps)" in markdown
    assert "test WER against cell budget, target sparsity 0.5" in markdown
    assert "CSP against each method by budget" in html
    with (report / "table.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    main = {(row["label"], row["budget"]) for row in rows if row["table"] == "main"}
    assert main == {(m, str(b)) for m in ("csp", "gmp", "dense_control") for b in BUDGETS}
    # the figure and its data
    assert (report / "figures" / "tiny-wer_vs_budget.png").is_file()
    (curve,) = budget_curves(experiment)
    assert curve.budgets == list(BUDGETS)
    records = budget_records(curve)
    assert {(r["label"], r["budget"]) for r in records} == found
    assert all(r["test_wer"] is not None and r["train_wall_s"] > 0 for r in records)
    # the budget decides each cell's clock: the 48-step CSP cell pruned over 0-32
    saved = yaml.safe_load((root / "csp-s0.5-seed0-b48" / "config.yaml").read_text())
    assert (saved["pruning"]["schedule"]["end"], saved["trainer"]["max_steps"]) == (32, 48)


WER = {"dense_control": (0.30, 0.28), "csp": (0.60, 0.40), "gmp": (0.55, 0.42)}
"""Test WER of the written runs at the two budgets: CSP loses at 12 steps, wins at 48."""


def write_run(directory: Path, name: str, method: str | None, wer: float) -> None:
    """A finished run folder written by hand: result.json and 40 per-utterance records whose
    word errors give `wer` (a fixed draw, so the paired bootstrap has something to test)."""
    draw = random.Random(name)
    errors = [1 if draw.random() < wer else 0 for _ in range(400)]
    records = [
        UtteranceRecord(
            id=f"test-{i}",
            reference="a b c d e f g h i j",
            hypothesis="",
            errors=sum(chunk),
            words=10,
            char_errors=sum(chunk),
            chars=20,
        )  # fmt: skip
        for i, chunk in enumerate(errors[k : k + 10] for k in range(0, 400, 10))
    ]
    directory.mkdir(parents=True, exist_ok=True)
    write_utterance_records(directory / "test_utterances.jsonl", records)
    pruned = method not in (None, "dense_control")
    result = RunResult(
        name=name, seed=0, params=1200, steps=24, train_wall_s=2.0 * len(name), resumed=False,
        checkpoint=str(directory / "last.ckpt"), dev_wer=wer, test_wer=sum(errors) / 400,
        test_wer_greedy=wer + 0.1, utterances={"test": 40}, hours={"test": 0.01},
        method=method if pruned else None, target_sparsity=0.5 if pruned else None,
        realized_sparsity=0.5 if pruned else 0.0, model_sparsity=0.4 if pruned else 0.0,
        sparsity_per_tensor={"w": 0.5 if pruned else 0.0}, dense_bytes=4800,
        packed_bytes=3000 if pruned else 4800,
    )  # fmt: skip
    write_result(directory, result)


def test_budget_tables_csv_and_figure_from_written_runs(tmp_path: Path) -> None:
    """Nothing trained: a budget grid's folders written by hand, then the report."""
    grid = load_grid(budget_grid(tmp_path), tmp_path / "runs")
    write_run(grid.dense_dir, "tiny.dense", None, 0.32)
    grid.root.mkdir(parents=True, exist_ok=True)
    spec = {**grid.spec.model_dump(mode="json"), "dense": grid.dense.model_dump(mode="json")}
    (grid.root / "grid.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for directory in grid.cell_dirs():
        facts = grid.facts[directory]
        wer = WER[facts.label][BUDGETS.index(facts.budget)]
        write_run(directory, directory.name, facts.method, wer)
    experiment = load_experiment(grid.root)
    tables = main_tables(experiment)
    assert [t.budget for t in tables] == list(BUDGETS)
    assert all(t.title.endswith(f", {t.budget} steps per cell") for t in tables)
    (curve,) = budget_curves(experiment)
    # the control is each budget's reference: relative change against it, not the dense
    short, long = (curve.control.points[b].wer_mean for b in BUDGETS)
    for line in curve.lines:
        for budget, control in zip(BUDGETS, (short, long), strict=True):
            entry = line.points[budget]
            assert entry.relative == pytest.approx((entry.wer_mean - control) / control)
    verdicts = {
        (p.baseline, budget): p.bootstrap.difference
        for budget, found in curve.pairings.items()
        for p in found
    }
    assert verdicts[("GMP", 12)] > 0 > verdicts[("GMP", 48)]  # CSP loses, then wins
    (wer_grid, verdict_grid) = budget_grids(curve)
    assert wer_grid.header == ["method", "12 steps", "48 steps"]
    assert [row[0] for row in wer_grid.rows] == ["Dense, trained on", "GMP", "CSP"]
    assert verdict_grid.rows[0][1].startswith("loses: +")
    assert verdict_grid.rows[0][2].startswith("wins: −") or "wins: -" in verdict_grid.rows[0][2]
    records = budget_records(curve)
    control = [r for r in records if r["label"] == "dense_control"]
    assert len(records) == 6 and all(r["relative_to_control"] == 0 for r in control)
    figure = wer_vs_budget([curve])
    assert figure is not None and len(figure.axes) == 2  # against steps, against wall time
    steps_axes = figure.axes[0]
    assert steps_axes.get_xscale() == "log" and len(steps_axes.lines) >= 3
    paired = [(table, paired_comparison(table)) for table in tables]
    for table, pairings in paired:
        assert f"{table.budget} steps per cell" in to_markdown(table, pairings)
        assert f"{table.budget} steps per cell" in to_latex(table, pairings)
    rows = list(csv.DictReader(io.StringIO(to_csv(paired))))
    assert sorted((row["label"], row["budget"]) for row in rows) == sorted(
        (label, str(b)) for label in ("csp", "gmp", "dense_control") for b in BUDGETS
    )


def test_the_summary_of_a_budget_grid_names_each_cells_budget(tmp_path: Path) -> None:
    grid = load_grid(budget_grid(tmp_path), tmp_path / "runs")
    write_run(grid.dense_dir, "tiny.dense", None, 0.32)
    write_run(grid.root / "csp-s0.5-seed0-b48", "csp-s0.5-seed0-b48", "csp", 0.4)
    dense = RunResult.model_validate_json((grid.dense_dir / "result.json").read_text())
    summary = summarize_grid(grid, dense)
    budgets = {Path(cell.run_dir).name: (cell.budget, cell.status) for cell in summary.cells}
    assert budgets["csp-s0.5-seed0-b48"] == (48, "complete")
    assert budgets["dense_control-s0-seed0-b12"] == (12, "not run")
    written = json.loads((grid.root / "results.json").read_text())["cells"]
    assert [cell["budget"] for cell in written] == [12, 12, 12, 48, 48, 48][: len(written)]
