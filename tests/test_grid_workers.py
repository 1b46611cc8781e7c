"""`csp reproduce --workers K --storage URL`: a grid's cells as the trials of one Optuna study,
shared by workers on a SQLite file and on a real PostgreSQL server; a worker SIGKILLed
mid-cell leaves its cell to be resumed by the next one; a storage that does not answer is
named within seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import CSP_COMMAND, REPO, free_port, offline_env
from optuna.trial import TrialState

from experiments.records import GRID_RESULTS, read_result
from sweeps.storage import open_storage

CELLS = 4  # 2 methods × 1 sparsity × 2 seeds


def write_grid(home: Path) -> Path:
    """The tiny grid with two seeds: four cells."""
    spec = yaml.safe_load((REPO / "experiments" / "grids" / "tiny.yaml").read_text())
    spec.update(name="workers", seeds=[0, 1])
    path = home / "workers.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def reproduce(home: Path, corpus: Path, storage: str, workers: int) -> list[str]:
    return [
        *CSP_COMMAND, "reproduce", "--grid", str(write_grid(home)), "--corpus", str(corpus),
        "--runs-dir", str(home / "runs"), "--workers", str(workers), "--storage", storage,
    ]  # fmt: skip


def run(home: Path, corpus: Path, storage: str, workers: int) -> subprocess.CompletedProcess:
    command = reproduce(home, corpus, storage, workers)
    return subprocess.run(command, capture_output=True, text=True, env=offline_env(), timeout=900)


def trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="grid-workers", storage=open_storage(storage))
    return study.get_trials()


def cell_dirs(home: Path) -> list[Path]:
    return sorted(p for p in (home / "runs" / "workers").iterdir() if (p / "config.yaml").is_file()
                  and p.name != "dense")  # fmt: skip


def assert_each_cell_once(home: Path, storage: str) -> None:
    """Every cell ran to its result, and exactly one trial of the study completed it."""
    complete = [t for t in trials(storage) if t.state == TrialState.COMPLETE]
    assert sorted(t.params["cell"] for t in complete) == sorted(p.name for p in cell_dirs(home))
    assert len(complete) == CELLS
    for trial in complete:
        result = read_result(home / "runs" / "workers" / trial.params["cell"])
        assert result is not None and trial.value == pytest.approx(result.dev_wer)
        assert trial.user_attrs["result"]["checkpoint"] == result.checkpoint
    summary = json.loads((home / "runs" / "workers" / GRID_RESULTS).read_text())
    assert [cell["status"] for cell in summary["cells"]] == ["complete"] * CELLS


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'grid.db'}"
    return request.getfixturevalue("postgres")


def test_two_workers_run_every_cell_exactly_once(
    tmp_path: Path, tiny_corpus: Path, storage: str
) -> None:
    done = run(tmp_path, tiny_corpus, storage, workers=2)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"{CELLS} enqueued now, 0 done; 2 worker(s) here" in done.stdout
    assert f"{CELLS}/{CELLS} cells done" in done.stdout and "min left" in done.stdout
    assert_each_cell_once(tmp_path, storage)
    workers = {t.user_attrs.get("worker") for t in trials(storage) if "cell" in t.params}
    assert len(workers) == 2  # both workers took cells
    assert all(not read_result(cell).resumed for cell in cell_dirs(tmp_path))

    again = run(tmp_path, tiny_corpus, storage, workers=2)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"0 enqueued now, {CELLS} done" in again.stdout
    assert_each_cell_once(tmp_path, storage)  # a finished cell is never run again


def test_a_killed_worker_leaves_its_cell_to_be_resumed(tmp_path: Path, tiny_corpus: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    parent = subprocess.Popen(
        reproduce(tmp_path, tiny_corpus, storage, workers=1),
        env=offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    checkpoint = None
    while checkpoint is None:  # wait for a cell's first checkpoint, then kill mid-cell
        assert parent.poll() is None and time.monotonic() < deadline, "no cell started"
        found = list((tmp_path / "runs" / "workers").glob("*-seed*/checkpoints/last.ckpt"))
        checkpoint = found[0] if found else None
        time.sleep(0.2)
    cell = checkpoint.parent.parent
    workers = subprocess.run(
        ["pgrep", "-f", f"sweeps cells grid-workers --storage {storage}"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert len(workers) == 1
    os.kill(int(workers[0]), signal.SIGKILL)
    parent.wait(timeout=300)
    assert read_result(cell) is None  # killed mid-cell
    [running] = [t for t in trials(storage) if t.state == TrialState.RUNNING]
    assert running.params["cell"] == cell.name

    done = run(tmp_path, tiny_corpus, storage, workers=1)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"trials [{running.number}]: their worker is gone" in done.stdout
    assert_each_cell_once(tmp_path, storage)
    killed = next(t for t in trials(storage) if t.number == running.number)
    assert killed.state == TrialState.FAIL
    [retry] = [t for t in trials(storage) if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state == TrialState.COMPLETE
    assert read_result(cell).resumed  # resumed from its checkpoint, not restarted
    others = [c for c in cell_dirs(tmp_path) if c != cell]
    assert all(not read_result(c).resumed for c in others)


def test_a_storage_that_does_not_answer_is_named_in_seconds(
    tmp_path: Path, tiny_corpus: Path
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    started = time.monotonic()
    done = run(tmp_path, tiny_corpus, dead, workers=2)
    assert time.monotonic() - started < 30
    assert done.returncode == 2
    assert f"storage {dead}: does not answer" in done.stderr
    assert not (tmp_path / "runs" / "workers" / "dense").exists()  # no work before
