"""`csp sweep`: studies on PostgreSQL and the journal file, killed workers, early stopping
under DDP, the dashboard in a real browser, and refusals before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import CSP_COMMAND, REPO, chromium, free_port, offline_env, serving
from optuna.trial import TrialState

from experiments.config import load_config
from sweeps.storage import open_storage

TINY_GRID = REPO / "experiments" / "grids" / "tiny.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working folder of every command here: one runs/ (one dense model) for all."""
    return tmp_path_factory.mktemp("sweeps")


def csp(home: Path, *args: Any, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CSP_COMMAND, *map(str, args)],
        cwd=home,
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=timeout,
    )


def write_spec(home: Path, name: str, **changes: Any) -> Path:
    """A tiny CSP sweep: 12 pruning steps, validation every 4."""
    spec: dict[str, Any] = {
        "name": name,
        "grid": str(TINY_GRID),
        "method": "csp",
        "sparsity": 0.5,
        "space": {
            "pruning.options.sparsity_weight": {"low": 0.01, "high": 100, "log": True},
            "pruning.options.reconstruction_weight": {"low": 0.01, "high": 100, "log": True},
        },
        "fixed": {
            "trainer.max_steps": 12,
            "trainer.val_every_n_steps": 4,
            "trainer.checkpoint_every_n_steps": 4,
            "pruning.schedule.end": 8,
        },
        "trials": 3,
        "early_stopping": {"kind": "median", "startup_trials": 1},
    }
    spec.update(changes)
    path = home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def create(home: Path, spec: Path, storage: str, corpus: Path) -> None:
    done = csp(home, "sweep", "create", spec, "--storage", storage, "--corpus", corpus)
    assert done.returncode == 0, done.stderr[-3000:]


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage))


def test_refusals_come_before_any_work(home: Path, tiny_corpus: Path) -> None:
    journal = str(home / "refusals.journal")
    cases = {
        "test WER is never used": {"objectives": ["test_wer"]},
        "early stopping works on one objective only": {"objectives": ["dev_wer", "packed_bytes"]},
        "pruning.options.sparsity_weight": {
            "space": {"pruning.options.sparsity_weight": {"low": -1.0, "high": 1.0}}
        },
        "trainer.no_such_field": {"space": {"trainer.no_such_field": {"low": 1, "high": 2}}},
        "exactly one": {"sparsity": None},
    }
    for expected, changes in cases.items():
        done = csp(
            home, "sweep", "create", write_spec(home, "bad", **changes), "--storage", journal
        )
        assert done.returncode == 2, (expected, done.stderr[-2000:])
        assert expected in done.stderr, (expected, done.stderr[-2000:])
    assert not (home / "runs").exists()  # nothing was trained, no study was made
    assert optuna.get_all_study_names(storage=open_storage(journal)) == []

    started = time.monotonic()
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    done = csp(home, "sweep", "create", write_spec(home, "ok"), "--storage", dead)
    assert done.returncode == 2 and "does not answer" in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - started < 60

    done = csp(home, "sweep", "run", "missing", "--storage", journal)
    assert done.returncode == 2 and "no study 'missing'" in done.stderr, done.stderr


def test_two_workers_share_a_postgres_study(home: Path, tiny_corpus: Path, postgres: str) -> None:
    create(home, write_spec(home, "pg"), postgres, tiny_corpus)
    done = csp(home, "sweep", "run", "pg", "--storage", postgres, "--trials", 4, "--workers", 2)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "4/4 trials done" in done.stdout

    trials = load(postgres, "pg").get_trials()
    assert len({t.number for t in trials}) == len(trials)
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len(trials) >= 4
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both workers ran trials ...
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False))  # ... at once
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        result = json.loads((run_dir / "result.json").read_text())
        assert result["test_wer"] is None
        if trial.state == TrialState.COMPLETE:
            assert result["dev_wer"] == pytest.approx(trial.value)
        assert not (run_dir / "test_utterances.jsonl").exists()  # chosen on dev alone
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["tracking"]["group"] == "pg"
        assert config["tracking"]["sweep"]["params"] == trial.params
        assert list((run_dir / "wandb").glob("offline-run-*"))

    status = csp(home, "sweep", "status", "pg", "--storage", postgres)
    assert status.returncode == 0 and "best so far: trial" in status.stdout, status.stderr
    best = csp(home, "sweep", "best", "pg", "--storage", postgres, "--out", home / "best.yaml")
    assert best.returncode == 0, best.stderr
    config = load_config(home / "best.yaml")
    study = load(postgres, "pg")
    chosen = study.best_trial
    assert (
        config.pruning.options["sparsity_weight"]
        == chosen.params["pruning.options.sparsity_weight"]
    )
    assert config.init_from is not None and config.init_from.is_file()


@pytest.fixture(scope="module")
def resumed_after_kill(home: Path, tiny_corpus: Path) -> tuple[str, str]:
    """A journal study whose worker was SIGKILLed mid-trial, then run again to the end."""
    journal = str(home / "kill.journal")
    create(home, write_spec(home, "kill", trials=3), journal, tiny_corpus)
    run = [*CSP_COMMAND, "sweep", "run", "kill", "--storage", journal]
    worker = subprocess.Popen(
        run, cwd=home, env=offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = home / "runs" / "sweeps" / "kill" / "trial-0000" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (first.is_file() and first.read_text().strip()):
        assert worker.poll() is None and time.monotonic() < deadline, "no trial started"
        time.sleep(0.5)
    worker_pids = subprocess.run(
        ["pgrep", "-f", "sweeps worker kill"], capture_output=True, text=True
    ).stdout.split()
    assert worker_pids
    for pid in worker_pids:
        os.kill(int(pid), signal.SIGKILL)
    worker.wait(timeout=60)
    assert load(journal, "kill").trials[0].state == TrialState.RUNNING  # left behind

    done = subprocess.run(
        run, cwd=home, env=offline_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return journal, "kill"


def test_killed_worker_loses_nothing_and_its_trial_is_retried(
    resumed_after_kill: tuple[str, str],
) -> None:
    trials = load(*resumed_after_kill).get_trials()
    killed = trials[0]
    assert killed.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 3


def test_early_stopping_stops_a_ddp_trial(home: Path, tiny_corpus: Path) -> None:
    journal = str(home / "early.journal")
    spec = write_spec(
        home,
        "early",
        trials=1,
        early_stopping={"kind": "threshold", "upper": 0.0},  # any dev WER above 0 stops
        fixed={
            "trainer.max_steps": 12,
            "trainer.val_every_n_steps": 4,
            "trainer.checkpoint_every_n_steps": 4,
            "pruning.schedule.end": 8,
            "trainer.accelerator": "cpu",
            "trainer.devices": 2,
            "trainer.strategy": "ddp",
        },
    )
    create(home, spec, journal, tiny_corpus)
    done = csp(home, "sweep", "run", "early", "--storage", journal)
    assert done.returncode == 0, done.stderr[-4000:]
    (trial,) = load(journal, "early").get_trials()
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [4]  # reported by training step, then stopped
    result = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
    assert result["early_stopped_at_step"] == 4 and result["steps"] < 12
    best = csp(home, "sweep", "best", "early", "--storage", journal, "--trial", 0)
    assert best.returncode == 2 and "trial 0 is pruned; only a complete trial" in best.stderr


def test_dashboard_shows_the_study(home: Path, resumed_after_kill: tuple[str, str]) -> None:
    journal, name = resumed_after_kill
    port = free_port()
    command = [*CSP_COMMAND, "sweep", "dashboard", name, "--storage", journal, "--port", str(port)]
    with serving(command, home, port) as (first, _):
        url = first.split()[-1]
        assert url.startswith(f"http://127.0.0.1:{port}/dashboard/studies/"), url
        shot = home / "dashboard.png"
        view = {"window": "1400,900", "budget_ms": 15000}
        chromium(f"--screenshot={shot}", url, **view)
        dom = chromium("--dump-dom", url, **view).stdout
    assert name in dom and "Loading" not in dom
    assert "pruning.options.sparsity_weight" in dom  # the study's own parameters are shown
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    low, high = pixels.getextrema()
    assert high - low > 100  # not a blank page
