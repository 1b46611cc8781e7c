"""Where studies live: a journal file by default, any SQLAlchemy URL for many machines.

The journal file (Optuna's JournalFileBackend) needs no server and has no schema race between
workers on one machine. A database URL (PostgreSQL for a cluster) gets Optuna's heartbeat: a
trial whose worker stops beating for `GRACE_PERIOD_S` is failed and retried with the same
parameters by the next worker that starts a trial.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from experiments.config import ConfigError

# The heartbeat and its retry callback are marked experimental; we rely on them on purpose,
# and the warning would repeat in every worker and trial process.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

DEFAULT_STORAGE = Path("runs") / "sweeps" / "studies.journal"
STORAGE_VARIABLE = "CSP_SWEEP_STORAGE"
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60
MAX_RETRY = 3
CONNECT_TIMEOUT_S = 5


class StorageError(ConfigError):
    """A storage that cannot be opened: the message names the URL (without its password)."""


def storage_url(given: str | None) -> str:
    """`--storage`, else $CSP_SWEEP_STORAGE, else the journal file under runs/sweeps/."""
    return given or os.environ.get(STORAGE_VARIABLE) or str(DEFAULT_STORAGE)


def is_database(url: str) -> bool:
    return "://" in url


def shown(url: str) -> str:
    """The URL as it may be printed: a database password is masked."""
    if not is_database(url):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: there is no password to hide
        return url


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open the storage, or fail at once with a clear message if it does not answer."""
    if not is_database(url):
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise StorageError(f"storage {url}: cannot open the journal file ({error})") from None
    engine_kwargs = {}
    if url.startswith(("postgresql", "mysql")):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=GRACE_PERIOD_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
    except ImportError as error:
        raise StorageError(
            f"storage {shown(url)}: its database driver is not installed ({error})"
        ) from None
    except Exception as error:  # SQLAlchemy raises many kinds; all mean the same to a user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageError(f"storage {shown(url)}: does not answer ({reason})") from None
