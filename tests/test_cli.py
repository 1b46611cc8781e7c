"""The `csp` console command: every subcommand explains itself; bad arguments are named."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def test_help_lists_and_explains_subcommands(csp: Callable) -> None:
    top = csp("--help")
    assert top.returncode == 0
    listed = top.stdout.split("Commands:")[1].splitlines()
    groups = ("data", "train", "export", "audit", "reproduce", "report", "sweep")
    for group in groups:  # one complete line each: no text cut off with "..."
        (line,) = [line for line in listed if line.split()[:1] == [group]]
        assert len(line.split()) > 3 and not line.rstrip().endswith("..."), line
    synth = csp("data", "synth", "--help")
    assert "--size" in synth.stdout and "Test voices" in synth.stdout
    train = csp("train", "--help")
    assert "--resume" in train.stdout and "--set" in train.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "synth", "--size", "huge", "--out", "x"], "'huge' is not one of"),
        (["data", "synth", "--size", "tiny"], "Missing option '--out'"),
        (["train", "--config", "absent.yaml"], "absent.yaml: config file not found"),
    ],
)
def test_bad_arguments_are_named(csp: Callable, args: list[str], expected: str) -> None:
    done = csp(*args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
