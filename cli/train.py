"""`csp train`: one experiment run.

Usage:

    csp train --config experiments/configs/dense_small.yaml [--set trainer.max_steps=500]
              [--run-dir DIR] [--resume]
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(short_help="Train one run from a config; dev and test WER.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="experiment YAML, e.g. experiments/configs/dense_small.yaml",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="override a config field by its dotted path, e.g. --set trainer.max_steps=500",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where the run's records go (default: runs/NAME)",
)
@click.option(
    "--resume",
    is_flag=True,
    help="continue the run in the run directory from its last checkpoint (start it if absent)",
)
def train(
    config_path: Path, overrides: tuple[str, ...], run_dir: Path | None, resume: bool
) -> None:
    """Train an RNN-T on the config's corpus; report dev and test WER.

    The run directory receives the resolved config, provenance, metrics.jsonl, checkpoints
    and result.json. The corpus is checked before training starts.
    """
    from experiments.config import load_config
    from experiments.train import train as run_training

    config = load_config(config_path, list(overrides))
    result = run_training(config, run_dir or Path("runs") / config.name, resume=resume)
    click.echo(result.model_dump_json(indent=2))
