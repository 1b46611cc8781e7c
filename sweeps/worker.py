"""Running a study: local worker processes, each running trials until the budget is done.

`csp sweep run NAME --workers K` trains the dense model if it is missing, then starts K
worker processes (`python -m sweeps worker`) and prints a progress line; the same command on
other machines joins the same study through its storage. A worker asks Optuna for a trial and
runs it as one experiment run in a child process (`python -m sweeps trial`), so Lightning DDP
works inside a trial and a killed worker takes its trial's training with it.

Crash safety: a trial left RUNNING by a dead worker is failed and enqueued again with the
same parameters. On a database, Optuna's heartbeat finds it; on the journal file (which has no
heartbeat) every worker records its host, pid and a heartbeat time in the trial, and
`fail_stale_trials` fails a trial whose worker process is gone (same host) or whose heartbeat
is older than the grace period (another host).
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from experiments.config import ConfigError
from experiments.records import RESULT, RunResult, read_result, write_result
from experiments.reproduce import train_dense
from experiments.train import is_launching_process, train
from sweeps.early_stopping import TrialEarlyStopping
from sweeps.storage import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, MAX_RETRY, is_database
from sweeps.study import RUN_DIR_ATTR, Sweep, open_sweep, status_report, suggest

WORKER_ATTR = "worker"
HEARTBEAT_ATTR = "heartbeat"
PROCESS = [sys.executable, "-m", "sweeps"]
"""The worker and trial processes (`sweeps/__main__.py`)."""


class TrialRunFailed(RuntimeError):
    """The trial's training process failed; the trial is recorded as failed, the worker goes on."""


def die_with_parent() -> None:
    """In a child process: get SIGKILL when the parent dies (Linux), so no orphan trains on."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial: optuna.trial.FrozenTrial, now: float, check_heartbeat: bool) -> bool:
    """Whether a RUNNING trial's worker is gone (see the module docstring)."""
    age = now - trial.datetime_start.timestamp()
    # Just started: its worker may not have recorded itself yet, and a retry still carries
    # the attributes of the trial it repeats.
    if age < HEARTBEAT_INTERVAL_S:
        return False
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:  # asked for but not started yet
        return check_heartbeat and age > GRACE_PERIOD_S
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname():
        return not process_alive(int(pid))
    beat = trial.user_attrs.get(HEARTBEAT_ATTR, 0.0)
    return check_heartbeat and now - beat > GRACE_PERIOD_S


def fail_stale_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, check_heartbeat: bool
) -> list[int]:
    """Fail the RUNNING trials whose worker is gone and enqueue each again with its params
    and user attributes (`check_heartbeat`: also those whose heartbeat attribute is stale,
    for storages without Optuna's own heartbeat)."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    failed = []
    now = time.time()
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, now, check_heartbeat=check_heartbeat):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            continue  # another worker failed it first
        retry(study, storage.get_trial(trial_id))
        failed.append(trial.number)
    return failed


def stale_trials(sweep: Sweep) -> list[int]:
    """`fail_stale_trials` for a sweep's study."""
    return fail_stale_trials(
        sweep.study, sweep.storage, check_heartbeat=not is_database(sweep.storage_url)
    )


class Heartbeat:
    """Records a trial's heartbeat time every `HEARTBEAT_INTERVAL_S` from a thread."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stopped.is_set():
            self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            self.stopped.wait(HEARTBEAT_INTERVAL_S)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()


def dense_checkpoint(sweep: Sweep, log: Callable[[str], None] = print) -> Path:
    """The grid's dense model, trained here if missing (once per machine: `train_dense`)."""
    train_dense(sweep.grid, log)
    return sweep.dense_checkpoint()


def objective(sweep: Sweep, trial: optuna.Trial, threads: int) -> float | list[float]:
    """Run one trial as a child trial process (`python -m sweeps trial`) and read its result."""
    suggest(trial, sweep.spec)  # the child reads the values back from the storage
    run_dir = sweep.trial_dir(trial.number)
    run_dir.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr(RUN_DIR_ATTR, str(run_dir.resolve()))
    trial.set_user_attr(WORKER_ATTR, this_worker())
    command = [
        *PROCESS,
        "trial",
        sweep.spec.name,
        str(trial.number),
        "--storage",
        sweep.storage_url,
        "--runs-dir",
        str(sweep.grid.root.parent),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    beating = nullcontext() if is_database(sweep.storage_url) else Heartbeat(trial)
    with beating, open(run_dir / "trial.log", "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
        )
        code = process.wait()
    if code != 0:
        raise TrialRunFailed(f"trial {trial.number}: training exited with {code}, see {log.name}")
    result = read_result(run_dir)
    if result is None:
        raise TrialRunFailed(f"trial {trial.number}: no {RESULT} in {run_dir}")
    if result.early_stopped_at_step is not None:
        raise optuna.TrialPruned(f"early stopped at step {result.early_stopped_at_step}")
    unmeasured = [name for name in sweep.spec.objectives if getattr(result, name) is None]
    if unmeasured:
        raise TrialRunFailed(
            f"trial {trial.number}: {RESULT} has no {', '.join(unmeasured)} "
            "(decode_speedup needs trainer.bench_utterances > 0)"
        )
    values = [float(getattr(result, name)) for name in sweep.spec.objectives]
    if not all(math.isfinite(v) for v in values):
        raise TrialRunFailed(f"trial {trial.number}: objective values {values} (diverged)")
    return values if sweep.spec.multi_objective else values[0]


def work(
    name: str, storage_url: str, runs_dir: Path, budget: int, index: int, threads: int
) -> None:
    """One worker: trials until done + running trials reach the budget. It gives up when
    as many trials have failed as the budget allows, which means something is wrong with
    every trial rather than with one."""
    sweep = open_sweep(name, storage_url, runs_dir, worker=index)
    while True:
        stale_trials(sweep)
        failed = sweep.counts().get("FAIL", 0)
        if failed >= budget:
            raise ConfigError(
                f"study {name}: {failed} trials failed; see trial.log in {sweep.trials_dir}"
            )
        running = len(sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if sweep.done() + running >= budget:
            return
        sweep.study.optimize(
            lambda trial: objective(sweep, trial, threads),
            n_trials=1,
            catch=(TrialRunFailed,),
            show_progress_bar=False,
        )


def run_trial(name: str, number: int, storage_url: str, runs_dir: Path) -> RunResult:
    """The child side: train trial `number` with early stopping; rank 0 reports to Optuna."""
    sweep = open_sweep(name, storage_url, runs_dir)
    trial_id = sweep.trial_id(number)
    frozen = sweep.storage.get_trial(trial_id)
    if frozen.state != TrialState.RUNNING:
        raise ConfigError(f"study {name}: trial {number} is {frozen.state.name}, not running")
    config = sweep.trial_config(frozen.params, number, sweep.dense_checkpoint())
    owner = is_launching_process()
    early = TrialEarlyStopping(optuna.Trial(sweep.study, trial_id) if owner else None)
    run_dir = sweep.trial_dir(number)
    result = train(config, run_dir, resume=True, callbacks=[early], score_test=False)
    if owner and early.stopped_at_step is not None:
        stopped = result.model_copy(update={"early_stopped_at_step": early.stopped_at_step})
        result = write_result(run_dir, stopped)
    return result


def run_workers(
    sweep: Sweep,
    budget: int,
    workers: int,
    log: Callable[[str], None] = print,
    poll_s: float = 2.0,
) -> int:
    """Start `workers` local worker processes and print progress until they end; returns the
    number of workers that failed."""
    dense_checkpoint(sweep, log)
    stale = stale_trials(sweep)
    if stale:
        log(f"trials {stale}: their worker is gone; failed and enqueued again")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        subprocess.Popen(
            [
                *PROCESS,
                "worker",
                sweep.spec.name,
                "--storage",
                sweep.storage_url,
                "--runs-dir",
                str(sweep.grid.root.parent),
                "--trials",
                str(budget),
                "--index",
                str(index),
                "--threads",
                str(threads),
            ],
            preexec_fn=die_with_parent,
        )
        for index in range(workers)
    ]
    failed = watch(processes, lambda: progress_line(sweep, budget), log, poll_s)
    log(status_report(sweep, budget))
    return failed


def watch(
    processes: list[subprocess.Popen],
    progress: Callable[[], str],
    log: Callable[[str], None],
    poll_s: float,
) -> int:
    """Log `progress()` whenever it changes until every process has ended; returns how many
    ended with an error."""
    shown = ""
    while True:
        codes = [process.poll() for process in processes]
        line = progress()
        if line != shown:
            log(line)
            shown = line
        if all(code is not None for code in codes):
            return sum(1 for code in codes if code != 0)
        time.sleep(poll_s)


def progress_line(sweep: Sweep, budget: int) -> str:
    counts = sweep.counts()
    done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    parts = [f"{counts.get(state, 0)} {state.lower()}" for state in ("COMPLETE", "PRUNED")]
    parts += [f"{counts.get(state, 0)} {state.lower()}" for state in ("RUNNING", "FAIL")]
    return f"[{sweep.spec.name}] {done}/{budget} trials done ({', '.join(parts)})"
