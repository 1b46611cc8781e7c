"""Shared fixtures: the tiny TTS corpus is rendered once per test session."""

from __future__ import annotations

import os
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
