"""The budget axis of a grid: cells and a dense control at each budget, schedule windows and
cadence scaled with the steps, the budget carried into results.json, the CSV, every table
format and the budget figure. (A grid without the axis writes results.json as before it:
tests/test_records.py.)"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from analysis.budget import budget_curves, budget_records
from analysis.experiment import load_experiment
from analysis.tables import main_tables
from experiments.config import ConfigError
from experiments.reproduce import grid_path, load_grid

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
    assert len(grid.cell_dirs([12])) == 2 * 2 + 2  # two methods and the control, two seeds
    with pytest.raises(ConfigError, match=r"no budget \[100\]"):
        grid.cell_dirs([100])
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
