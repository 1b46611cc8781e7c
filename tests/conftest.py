"""Shared fixtures: the tiny TTS corpus is rendered once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
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


CSP_COMMAND = [sys.executable, "-m", "experiments.cli"]


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
