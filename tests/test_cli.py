"""The `csp` console command: every subcommand explains itself; bad arguments are named."""

from __future__ import annotations

import subprocess
import sys

import pytest


def csp(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.cli", *args], capture_output=True, text=True, env=env
    )


def test_help_lists_and_explains_subcommands(cli_env: dict) -> None:
    top = csp("--help", env=cli_env)
    assert top.returncode == 0
    assert "data" in top.stdout and "train" in top.stdout
    synth = csp("data", "synth", "--help", env=cli_env)
    assert "--size" in synth.stdout and "Test voices" in synth.stdout
    train = csp("train", "--help", env=cli_env)
    assert "--resume" in train.stdout and "--set" in train.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "synth", "--size", "huge", "--out", "x"], "'huge' is not one of"),
        (["data", "synth", "--size", "tiny"], "Missing option '--out'"),
        (["train", "--config", "absent.yaml"], "absent.yaml: config file not found"),
    ],
)
def test_bad_arguments_are_named(cli_env: dict, args: list[str], expected: str) -> None:
    done = csp(*args, env=cli_env)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
