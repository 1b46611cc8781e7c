"""A grid kept in an Optuna study, one trial per cell, so that many workers share it.

`csp reproduce --workers K [--storage URL]` trains the dense model (once), creates the study
`grid-NAME` in the storage with every unfinished cell enqueued as a waiting trial (Optuna's
queue: `enqueue_trial`; `study.ask()` hands each waiting trial to one worker), then starts K
local workers (`python -m sweeps cells`), each with its share of the cores. The same command
on another machine (or as the array jobs of a cluster) joins the grid: its workers take the
cells that no one holds. The run folders live under the runs directory as in a serial grid
(on a cluster: a shared filesystem), so results and reports read them as today.

No queue or scheduler of our own: a worker killed mid-cell leaves its trial RUNNING, the next
worker that looks fails it (Optuna's heartbeat on a database; on the journal file, the dead
pid or stale heartbeat of `sweeps.worker.fail_stale_trials`) and Optuna's retry callback
enqueues the same cell again; the worker that takes it resumes the cell from its last
checkpoint. A cell with `result.json` is never trained again, and a cell already RUNNING
elsewhere is not started twice.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from experiments.config import ConfigError
from experiments.records import GridResults, read_result
from experiments.reproduce import Grid, GridSpec, run_cell, start_grid, summarize_grid
from sweeps.storage import is_database, open_storage, shown
from sweeps.worker import (
    PROCESS,
    WORKER_ATTR,
    Heartbeat,
    die_with_parent,
    fail_stale_trials,
    this_worker,
    watch,
)

PREFIX = "grid-"
GRID_ATTR = "csp.grid"
CORPUS_ATTR = "csp.corpus"
CELL = "cell"
"""The one parameter (and user attribute) of a trial: its cell's folder name."""
RESULT_ATTR = "result"
POLL_S = 2.0


def study_name(grid: Grid) -> str:
    return f"{PREFIX}{grid.spec.name}"


@dataclass
class GridStudy:
    """A grid with the study that holds its cells, and the storage it was opened from."""

    grid: Grid
    study: optuna.Study
    storage_url: str
    storage: optuna.storages.BaseStorage
    budgets: Collection[int] | None = None
    """Run only the cells of these budgets (a part of a grid with a budget axis)."""

    @property
    def cells(self) -> dict[str, Path]:
        """Cell name → folder, in the grid's order (of the chosen budgets)."""
        return {directory.name: directory for directory in self.grid.cell_dirs(self.budgets)}

    def trials(self, *states: TrialState) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def held(self) -> set[str]:
        """Cells a waiting or running trial stands for."""
        return {
            trial.user_attrs[CELL]
            for trial in self.trials(TrialState.WAITING, TrialState.RUNNING)
            if CELL in trial.user_attrs
        }

    def finished(self) -> set[str]:
        return {name for name, directory in self.cells.items() if read_result(directory)}

    def enqueue_missing(self) -> list[str]:
        """Enqueue every cell that has no result and no waiting or running trial: a new
        grid, cells added to it, and cells whose trial failed (they resume). The longest
        budget's cells first, so that a part's longest cell never starts last."""
        done, held = self.finished(), self.held()
        missing = [name for name in self.cells if name not in done and name not in held]
        missing.sort(key=lambda name: -(self.grid.facts[self.cells[name]].budget or 0))
        for name in missing:
            self.study.enqueue_trial({CELL: name}, user_attrs={CELL: name})
        return missing

    def fail_stale(self) -> list[int]:
        return fail_stale_trials(
            self.study, self.storage, check_heartbeat=not is_database(self.storage_url)
        )


def open_grid_study(grid: Grid, storage_url: str, corpus: dict[str, Any] | None) -> GridStudy:
    """The grid's study in the storage, created if missing (this grid's spec and corpus are
    stored in it); an existing study must hold the same grid."""
    storage = open_storage(storage_url)
    name = study_name(grid)
    stored = grid.spec.model_dump(mode="json")
    if name in optuna.get_all_study_names(storage=storage):
        study = optuna.load_study(study_name=name, storage=storage)
        if study.user_attrs.get(GRID_ATTR) != stored or study.user_attrs.get(CORPUS_ATTR) != corpus:
            raise ConfigError(
                f"study {name!r} in {shown(storage_url)} holds another grid or corpus; "
                "rename the grid or delete the study"
            )
    else:
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
        study.set_user_attr(GRID_ATTR, stored)
        study.set_user_attr(CORPUS_ATTR, corpus)
        study.set_metric_names(["dev_wer"])
    return GridStudy(grid, study, storage_url, storage)


def load_grid_study(name: str, storage_url: str, runs_dir: Path) -> GridStudy:
    """A worker's view: the study and the grid stored in it."""
    storage = open_storage(storage_url)
    if name not in optuna.get_all_study_names(storage=storage):
        raise ConfigError(f"no study {name!r} in {shown(storage_url)}")
    study = optuna.load_study(study_name=name, storage=storage)
    spec = GridSpec.model_validate(study.user_attrs[GRID_ATTR])
    grid = Grid(spec, runs_dir, study.user_attrs[CORPUS_ATTR])
    return GridStudy(grid, study, storage_url, storage)


class NoCellLeft(RuntimeError):
    """`ask()` found the queue empty (another worker took the last cell first)."""


def run_one(grid_study: GridStudy, trial: optuna.Trial, dense_checkpoint: Path) -> float:
    """Train the trial's cell (resuming it) and return its dev WER."""
    name = trial.user_attrs.get(CELL)
    if name is None:
        raise NoCellLeft(f"trial {trial.number}: the queue was empty")
    trial.suggest_categorical(CELL, list(grid_study.cells))  # the enqueued value, for dashboards
    trial.set_user_attr(WORKER_ATTR, this_worker())
    others = [
        t.number
        for t in grid_study.trials(TrialState.RUNNING)
        if t.user_attrs.get(CELL) == name and t.number != trial.number
    ]
    if others:
        raise NoCellLeft(f"cell {name}: already running as trial {others[0]}")
    directory = grid_study.cells[name]
    configs = dict(grid_study.grid.cell_configs(dense_checkpoint))
    beating = nullcontext() if is_database(grid_study.storage_url) else Heartbeat(trial)
    with beating:
        state = run_cell(configs[directory], directory)
    if state.result is None:
        raise RuntimeError(f"cell {name}: {state.note}")
    trial.set_user_attr(RESULT_ATTR, state.result.model_dump(mode="json"))
    value = state.result.dev_wer
    if not math.isfinite(value):
        raise RuntimeError(f"cell {name}: {state.status}, dev WER {value}")
    return value


def work(name: str, storage_url: str, runs_dir: Path) -> None:
    """One worker: take waiting cells until none is waiting or running."""
    grid_study = load_grid_study(name, storage_url, runs_dir)
    dense = read_result(grid_study.grid.dense_dir)
    if dense is None:
        raise ConfigError(
            f"grid {grid_study.grid.spec.name}: no dense model in "
            f"{grid_study.grid.dense_dir}; start the grid with `csp reproduce`"
        )
    checkpoint = Path(dense.checkpoint).resolve()
    while True:
        stale = grid_study.fail_stale()
        if stale:
            print(
                f"trials {stale}: their worker is gone; their cells are enqueued again", flush=True
            )
        if not grid_study.trials(TrialState.WAITING):
            if not grid_study.trials(TrialState.RUNNING):
                return
            time.sleep(POLL_S)  # a running cell may yet be failed and enqueued again
            continue
        grid_study.study.optimize(
            lambda trial: run_one(grid_study, trial, checkpoint),
            n_trials=1,
            catch=(NoCellLeft, RuntimeError),
            show_progress_bar=False,
        )


def run_workers(
    grid_study: GridStudy, workers: int, log: Callable[[str], None] = print, poll_s: float = POLL_S
) -> int:
    """Start `workers` local workers with an equal share of the cores; print progress with
    the time left until they end; return how many failed."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    runs_dir = grid_study.grid.root.parent
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    processes = [
        subprocess.Popen(
            [
                *PROCESS,
                "cells",
                grid_study.study.study_name,
                "--storage",
                grid_study.storage_url,
                "--runs-dir",
                str(runs_dir),
            ],
            env=env,
            preexec_fn=die_with_parent,
        )
        for _ in range(workers)
    ]
    started, first_done = time.monotonic(), len(grid_study.finished())
    return watch(
        processes,
        lambda: progress(grid_study, first_done, time.monotonic() - started),
        log,
        poll_s,
    )


def progress(grid_study: GridStudy, first_done: int, elapsed: float) -> str:
    total, done = len(grid_study.cells), len(grid_study.finished())
    running = len(grid_study.trials(TrialState.RUNNING))
    line = f"[{grid_study.study.study_name}] {done}/{total} cells done, {running} running"
    if done > first_done:
        left = elapsed / (done - first_done) * (total - done)
        line += f", about {left / 60:.0f} min left"
    return line


def run_grid_study(
    grid: Grid,
    workers: int,
    storage_url: str,
    corpus: dict[str, Any] | None,
    log: Callable[[str], None] = print,
    budgets: Collection[int] | None = None,
) -> GridResults:
    """`csp reproduce --workers K --storage URL`: the dense model (trained here if missing),
    the study (created if missing, unfinished cells enqueued: of `budgets` alone when
    given), K local workers until no cell is waiting or running, then the grid's summary
    read from the run folders."""
    grid.cell_dirs(budgets)  # an unknown budget fails before any work
    grid_study = open_grid_study(grid, storage_url, corpus)  # a dead storage fails before work
    grid_study.budgets = budgets
    dense = start_grid(grid, log)
    stale = grid_study.fail_stale()  # a worker fails those that are younger than a heartbeat
    if stale:
        log(f"trials {stale}: their worker is gone; their cells are enqueued again")
    added = grid_study.enqueue_missing()
    log(
        f"[{grid_study.study.study_name}] {len(grid_study.cells)} cells in "
        f"{shown(storage_url)}: {len(added)} enqueued now, {len(grid_study.finished())} done; "
        f"{workers} worker(s) here"
    )
    failed = run_workers(grid_study, workers, log)
    if failed:
        log(f"{failed} worker(s) failed; see their output above")
    return summarize_grid(grid, dense)
