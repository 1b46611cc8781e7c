"""`csp reproduce`: the tiny grid end to end, W&B offline records, reuse, kill and resume."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from conftest import offline_env, reproduce_tiny

from analysis.wandb_records import read_offline_run
from experiments.config import ConfigError
from experiments.evaluate import evaluate
from experiments.metrics import read_metrics
from experiments.reproduce import GRIDS, fine_tuning_settling, grid_path, load_grid

CELLS = ("csp-s0.5-seed0", "gmp-s0.5-seed0")


def test_every_cell_records_wer_and_sparsity_from_the_saved_weights(reproduced: Path) -> None:
    summary = json.loads((reproduced / "results.json").read_text())
    assert [Path(c["run_dir"]).name for c in summary["cells"]] == list(CELLS)
    for cell in summary["cells"]:
        assert cell["target_sparsity"] == 0.5
        assert 0.0 <= cell["test_wer"] <= 2.0
        assert cell["realized_sparsity"] == pytest.approx(0.5, abs=1e-3)
        saved = torch.load(Path(cell["checkpoint"]), map_location="cpu", weights_only=False)
        weights = [saved["state_dict"][name] for name in cell["sparsity_per_tensor"]]
        zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert zeros == pytest.approx(cell["realized_sparsity"], abs=1e-12)
        assert 0 < cell["packed_bytes"] < cell["dense_bytes"]
    assert summary["dense"]["realized_sparsity"] == 0.0


def test_a_cells_dev_wer_is_its_final_weights_decoded_once(
    reproduced: Path, tiny_corpus: Path
) -> None:
    """A pruning cell ends on its last weights, validated at its last step: the result takes
    that validation (no second dev decoding), and it equals a fresh decoding of them."""
    summary = json.loads((reproduced / "results.json").read_text())
    for cell in summary["cells"]:
        rows = [r for r in read_metrics(Path(cell["run_dir"]) / "metrics.jsonl") if "dev_wer" in r]
        assert [r["step"] for r in rows] == [11, 23]  # every 12 of 24 steps, once each
        assert cell["dev_wer"] == pytest.approx(rows[-1]["dev_wer"], abs=1e-6)
        fresh = evaluate(cell["checkpoint"], tiny_corpus, split="dev", batch_seconds=20)
        assert fresh["wer"] == pytest.approx(cell["dev_wer"], abs=1e-6)


def test_a_method_entry_changes_its_own_schedule_and_learning_rate(tmp_path: Path) -> None:
    raw = yaml.safe_load(grid_path("tiny").read_text())
    raw["methods"]["gmp"] = {
        "schedule": {"kind": "linear", "end": 8},
        "optim": {"learning_rate": 0.02},
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(raw))
    grid = load_grid(tmp_path / "grid.yaml", tmp_path)
    configs = dict(grid.cell_configs(tmp_path / "dense.ckpt"))
    gmp, csp = (configs[grid.root / f"{m}-s0.5-seed0"] for m in ("gmp", "csp"))
    assert (gmp.pruning.schedule.kind, gmp.pruning.schedule.end, gmp.pruning.schedule.every) == (
        "linear",
        8,
        4,  # the grid's, not changed by the entry
    )
    assert gmp.optim.learning_rate == 0.02 and gmp.optim.warmup_fraction == 0.1
    assert gmp.pruning.options == {}
    assert (csp.pruning.schedule.kind, csp.pruning.schedule.end, csp.optim.learning_rate) == (
        "cubic",
        16,
        0.003,
    )
    assert gmp.trainer == csp.trainer  # the same budget

    raw["methods"]["gmp"] = {"schedule": 8}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="methods.gmp.schedule: expected a mapping"):
        load_grid(tmp_path / "grid.yaml", tmp_path)


def test_offline_wandb_runs_hold_the_trajectories(reproduced: Path) -> None:
    for cell in CELLS:
        folders = sorted((reproduced / cell / "wandb").glob("offline-run-*"))
        assert len(folders) == 1, folders
        run = read_offline_run(folders[0])
        assert run["config"]["pruning"]["method"] == cell.split("-")[0]
        assert run["group"] == "tiny" and run["job_type"] == cell.split("-")[0]
        sparsity = [row["pruning/sparsity"] for row in run["history"] if "pruning/sparsity" in row]
        assert len(sparsity) >= 4 and sparsity == sorted(sparsity)
        assert sparsity[-1] == pytest.approx(0.5, abs=1e-3)
        assert any("dev_wer" in row for row in run["history"])
        per_tensor = [k for row in run["history"] for k in row if k.startswith("pruning/sparsity/")]
        assert per_tensor
    csp = read_offline_run(next((reproduced / CELLS[0] / "wandb").glob("offline-run-*")))
    assert any("csp/error_mean" in row for row in csp["history"])


def test_second_invocation_does_no_training(
    reproduced: Path, tiny_corpus: Path, csp: Callable
) -> None:
    checkpoints = sorted(reproduced.glob("*/checkpoints/*.ckpt"))
    stamps = [path.stat().st_mtime_ns for path in checkpoints]
    before = (reproduced / "results.json").read_text()
    done = csp(
        "reproduce", "--grid", "tiny", "--corpus", tiny_corpus, "--runs-dir", reproduced.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training" not in done.stdout
    assert done.stdout.count("skipped") == len(CELLS) and "reused" in done.stdout
    assert [path.stat().st_mtime_ns for path in checkpoints] == stamps
    assert json.loads((reproduced / "results.json").read_text()) == json.loads(before)


def test_killed_mid_cell_finishes_like_an_uninterrupted_run(
    reproduced: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(reproduced / "dense", runs / "tiny" / "dense")  # the cached model
    command = reproduce_tiny(tiny_corpus, runs)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": offline_env()}
    worker = subprocess.Popen(command, **quiet)
    last = runs / "tiny" / CELLS[0] / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not (last.exists() and step_of(last) >= 8) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert 8 <= step_of(last) < 24
    assert not (runs / "tiny" / CELLS[0] / "result.json").exists()
    subprocess.run(command, check=True, timeout=900, **quiet)

    expected = json.loads((reproduced / "results.json").read_text())["cells"]
    resumed = json.loads((runs / "tiny" / "results.json").read_text())["cells"]
    for before, after in zip(expected, resumed, strict=True):
        assert after["realized_sparsity"] == before["realized_sparsity"]
        assert after["sparsity_per_tensor"] == before["sparsity_per_tensor"]
        assert after["test_wer"] == pytest.approx(before["test_wer"], abs=1e-6)


def step_of(checkpoint: Path) -> int:
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    except (EOFError, RuntimeError, FileNotFoundError):  # caught while being written
        return -1


GRID = """name: bad
dense:
  corpus: {{kind: manifest, path: {manifest}}}
  model: {{preset: tiny}}
  trainer: {{max_steps: 5}}
schedule: {{start: 0, end: 4, every: 2}}
methods: {methods}
sparsities: {sparsities}
"""


@pytest.mark.parametrize(
    ("methods", "sparsities", "manifest", "message"),
    [
        ("{magic: {}}", "[0.5]", None, "unknown pruning method 'magic'"),
        ("{csp: {colour: red}}", "[0.5]", None, "unknown option(s) ['colour'] for csp"),
        ("{gmp: {}}", "[1.0]", None, "pruning.sparsity: Input should be less than 1"),
        ("{csp: {sparsity_weight: -1}}", "[0.5]", None, "sparsity_weight must be a non-negative"),
        ("{gmp: {}}", "[]", None, "the grid has no cells"),
        ("{gmp: {}}", "[0.5]", "/nowhere/manifest.jsonl", "/nowhere/manifest.jsonl"),
    ],
)
def test_grid_errors_are_reported_before_training(
    methods: str,
    sparsities: str,
    manifest: str | None,
    message: str,
    tiny_corpus: Path,
    tmp_path: Path,
    csp: Callable,
) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        GRID.format(manifest=manifest or tiny_corpus, methods=methods, sparsities=sparsities)
    )
    done = csp("reproduce", "--grid", grid, "--runs-dir", tmp_path / "runs")
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert not (tmp_path / "runs" / "bad" / "dense" / "checkpoints").exists()


def test_unknown_grid_key_is_an_error(tmp_path: Path, csp: Callable) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: g\ndense: {}\nschedule: {end: 4}\nmethods: {gmp: {}}\n"
        "sparsities: [0.5]\nsparsity: 0.5\n"
    )
    done = csp("reproduce", "--grid", grid, "--runs-dir", tmp_path / "runs")
    assert done.returncode == 2
    assert "sparsity: Extra inputs are not permitted" in done.stderr


def test_a_grid_with_a_yaml_syntax_error_is_refused_with_its_file_and_line(
    tmp_path: Path, csp: Callable
) -> None:
    grid = tmp_path / "typo.yaml"
    grid.write_text("name: g\ndense: {}\nmethods: {gmp: {}\nsparsities: [0.5]\n")
    done = csp("reproduce", "--grid", grid, "--runs-dir", tmp_path / "runs")
    assert done.returncode == 2
    assert re.search(rf"^error: {re.escape(str(grid))}:\d+:\d+: not valid YAML", done.stderr)
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


def test_shipped_grids_are_named_after_their_files() -> None:
    for path in GRIDS.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["name"] == path.stem
        assert grid_path(path.stem) == path


@pytest.mark.parametrize("path", sorted(GRIDS.glob("*.yaml")), ids=lambda path: path.stem)
def test_shipped_grids_load_and_share_dense_models_they_match(path: Path, tmp_path: Path) -> None:
    grid = load_grid(path, tmp_path)
    assert grid.cells
    if grid.spec.dense_from is not None:  # the grid it names ships too, with the same dense
        grids = [load_grid(other, tmp_path) for other in GRIDS.glob("*.yaml")]
        (owner,) = [other for other in grids if other.spec.name == grid.spec.dense_from]
        assert owner.dense == grid.dense and owner.dense_dir == grid.dense_dir


@pytest.mark.parametrize(
    ("middle", "end", "settled"), [(0.50, 0.495, True), (0.50, 0.48, False), (0.40, 0.45, True)]
)
def test_a_cell_has_settled_when_its_dev_wer_stops_falling_in_fine_tuning(
    tmp_path: Path, middle: float, end: float, settled: bool
) -> None:
    """The middle and the end of fine-tuning are the validations nearest the middle of
    [schedule end, max steps) and the last one in it; the final re-check is not a point."""
    grid = load_grid(grid_path("tiny"), tmp_path)
    directory, config = next(iter(grid.cell_configs(tmp_path / "dense.ckpt")))
    start, stop = config.pruning.schedule.end, config.trainer.max_steps  # 16, 24 in tiny
    rows = [
        {"step": start - 5, "dev_wer": 0.9},  # during pruning: not fine-tuning
        {"step": start + 3, "dev_wer": middle},
        {"step": stop - 1, "dev_wer": end},
        {"step": stop - 1, "dev_wer": 0.0},  # the chosen checkpoint's re-check
    ]
    directory.mkdir(parents=True)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fine_tuning_settling(directory, config) == {
        "middle_step": start + 3,
        "dev_wer_middle": middle,
        "end_step": stop - 1,
        "dev_wer_end": end,
        "settled": settled,
    }
    (directory / "metrics.jsonl").write_text(json.dumps(rows[2]) + "\n")
    assert fine_tuning_settling(directory, config) is None  # one validation: nothing to compare
