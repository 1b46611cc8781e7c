"""Weights & Biases tracking: one W&B run per training run, offline unless asked otherwise.

Run ids are derived from the experiment's name, so re-running or resuming a cell continues
the same W&B run, and `wandb sync` of the offline folders never makes a duplicate.
"""

from __future__ import annotations

import hashlib
import netrc
import os
import re
from pathlib import Path

import lightning.pytorch as pl
import yaml
from lightning.pytorch.loggers import WandbLogger

from experiments.config import ExperimentConfig, dump_config

WANDB_HOST = "api.wandb.ai"


def logged_in() -> bool:
    """Whether W&B credentials are present (an API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(config: ExperimentConfig) -> str:
    """The config's mode, else $WANDB_MODE, else online when logged in, else offline."""
    mode = config.tracking.mode or os.environ.get("WANDB_MODE")
    if mode in ("online", "offline", "disabled"):
        return mode
    if mode in ("run", "dryrun"):  # W&B's older spellings
        return "online" if mode == "run" else "offline"
    return "online" if logged_in() else "offline"


def run_id(name: str) -> str:
    """A W&B run id from the experiment name: readable, stable, and within W&B's rules."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:48]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def wandb_logger(config: ExperimentConfig, run_dir: Path) -> WandbLogger | None:
    """The W&B logger of a run (None when tracking is disabled); files go under `run_dir`."""
    mode = wandb_mode(config)
    if mode == "disabled":
        return None
    pruning = config.pruning
    tags = list(config.tracking.tags)
    if pruning is not None:
        tags += [f"sparsity={pruning.sparsity:g}", f"method={pruning.method}"]
    tags.append(f"seed={config.seed}")
    return WandbLogger(
        project=config.tracking.project,
        name=config.name,
        id=run_id(config.name),
        group=config.tracking.group or config.name,
        job_type=config.tracking.job_type or (pruning.method if pruning else "dense"),
        tags=tags,
        config=yaml.safe_load(dump_config(config)),
        save_dir=str(run_dir),
        mode=mode,
        resume="allow",
    )


def finish_tracking(trainer: pl.Trainer) -> None:
    """Close the run's W&B run, so the next training run in this process gets its own."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
