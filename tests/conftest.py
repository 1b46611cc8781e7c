"""Shared fixtures: the tiny TTS corpus is rendered once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny default corpus (seed 0); returns its manifest path."""
    from lightning_modules.data.synth import render_corpus

    return render_corpus(
        tmp_path_factory.mktemp("tiny_corpus"), size="tiny", seed=0, progress=False
    )


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running `csp` as a subprocess from the repository."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


CSP_COMMAND = [sys.executable, "-m", "cli"]


@pytest.fixture
def csp(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """Run `csp ARGS...` as a subprocess and capture its output as text."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CSP_COMMAND, *map(str, args)],
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=timeout,
        )

    return run


def offline_env() -> dict[str, str]:
    """`csp` as a subprocess from the repository, W&B offline."""
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}


def reproduce_tiny(corpus: Path, runs: Path) -> list[str]:
    """The command line of `csp reproduce --grid tiny` on `corpus`, into `runs`."""
    return [*CSP_COMMAND, "reproduce", "--grid", "tiny"] + [
        *("--corpus", str(corpus), "--runs-dir", str(runs))
    ]


@pytest.fixture(scope="session")
def reproduced(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted `csp reproduce --grid tiny`; returns the grid's run folder.

    Shared by the reproduce and report tests: it is the slowest fixture of the suite.
    """
    runs = tmp_path_factory.mktemp("runs")
    done = subprocess.run(
        reproduce_tiny(tiny_corpus, runs),
        capture_output=True,
        text=True,
        timeout=900,
        env=offline_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| CSP |" in done.stdout and "| GMP |" in done.stdout
    report = runs / "tiny" / "report" / "report.html"
    assert f"report: {report}" in done.stdout
    return runs / "tiny"


def chromium(
    *args: str, window: str = "1400,2400", budget_ms: int = 5000
) -> subprocess.CompletedProcess:
    """Headless Chromium with a throw-away profile and no background network traffic."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: run scripts/bootstrap.sh (it installs it)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                f"--window-size={window}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
