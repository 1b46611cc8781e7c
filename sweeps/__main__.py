"""The processes of a sweep, started by `csp sweep run` (not meant to be typed by hand):

    python -m sweeps worker NAME --storage URL --runs-dir DIR --trials N [--index I] [--threads T]
    python -m sweeps trial NAME NUMBER --storage URL --runs-dir DIR
    python -m sweeps cells NAME --storage URL --runs-dir DIR

A worker runs trials of study NAME until N are done; a trial process trains one trial; a
cells worker (started by `csp reproduce --workers K`) trains the cells of the grid study NAME
until none is waiting or running (sweeps.grid_study).
Bad input ends with one `error:` line and exit code 2, as in the `csp` command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.config import ConfigError
from lightning_modules.data.manifest import CorpusError
from sweeps.grid_study import work as work_cells
from sweeps.storage import storage_url
from sweeps.worker import run_trial, work


def parser() -> argparse.ArgumentParser:
    parsed = argparse.ArgumentParser(prog="python -m sweeps", description=__doc__.split("\n")[0])
    roles = parsed.add_subparsers(dest="role", required=True)
    for role in ("worker", "trial", "cells"):
        sub = roles.add_parser(role)
        sub.add_argument("name")
        if role == "trial":
            sub.add_argument("number", type=int)
        sub.add_argument("--storage", default=None)
        sub.add_argument("--runs-dir", type=Path, default=Path("runs"))
        if role == "worker":
            sub.add_argument("--trials", type=int, required=True)
            sub.add_argument("--index", type=int, default=0)
            sub.add_argument("--threads", type=int, default=1)
    return parsed


def main(argv: list[str] | None = None) -> None:
    arguments = parser().parse_args(argv)
    os.environ.pop("WANDB_SERVICE", None)  # each process owns its W&B service (see cli)
    url = storage_url(arguments.storage)
    try:
        if arguments.role == "cells":
            work_cells(arguments.name, url, arguments.runs_dir)
        elif arguments.role == "worker":
            work(
                arguments.name,
                url,
                arguments.runs_dir,
                arguments.trials,
                arguments.index,
                arguments.threads,
            )
        else:
            run_trial(arguments.name, arguments.number, url, arguments.runs_dir)
    except (ConfigError, CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
