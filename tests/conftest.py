"""Shared fixtures: the tiny TTS corpus is rendered once per test session."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))  # Debian's server binaries


SLOW_FIXTURES = frozenset({"tiny_corpus", "reproduced", "postgres"})
"""Fixtures that render a corpus with TTS, train a grid or start a server: a test that uses
one of them, directly or through another fixture, is in the slow tier (`pytest -m slow`)."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow every test that uses an expensive fixture, so that `pytest -m "not slow"`
    is a fast tier without anyone remembering to mark a new test (docs/testing.md). Tests
    that are slow for another reason (they train on synthetic data, render or build a corpus
    of their own) carry `@pytest.mark.slow` or a module-level `pytestmark` themselves."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


@contextlib.contextmanager
def serving(command: list[str], cwd: Path, port: int) -> Iterator[tuple[str, str]]:
    """A study server (`csp sweep dashboard`) started in `cwd` and waited for until its studies
    API on `port` answers; yields its first output line and that answer, then stops it."""
    server = subprocess.Popen(
        command,
        cwd=cwd,
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = server.stdout.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/studies"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    studies = answer.read().decode()
                break
            except OSError:
                assert server.poll() is None, first + server.stdout.read()
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.5)
        yield first, studies
    finally:
        server.terminate()
        server.wait(timeout=30)


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of our own on 127.0.0.1, stopped at the end."""
    assert PG_BINS, "the PostgreSQL server is missing: run scripts/bootstrap.sh (it installs it)"
    bin_dir = PG_BINS[-1]
    root = Path(tempfile.mkdtemp(prefix="csp-pg-", dir="/tmp"))
    root.chmod(0o755)
    data = root / "data"
    # the server refuses to run as root: as root, run it as Debian's postgres user
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run(
        [*as_postgres, bin_dir / "initdb", "-D", data, "--auth=trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    pg_ctl = [*as_postgres, bin_dir / "pg_ctl", "-D", data]
    # the server logs to a file: on our pipes it would keep them open and hang the run
    start = [*pg_ctl, "-o", options, "-l", root / "server.log", "-w", "start"]
    subprocess.run(start, check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            [*as_postgres, bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "sweeps"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
