"""The `csp` command: one entry point, a subcommand per job."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from experiments.config import ConfigError, load_config
from lightning_modules.data.manifest import CorpusError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """csp-asr: compressed-sensing-based pruning (CSP) of RNN-T speech recognizers.

    Render the offline speech corpus (`csp data synth`), train an RNN-T on it or on your own
    corpus (`csp train`), write a checkpoint as a packed sparse file (`csp export`) and check
    a saved model's sparsity and size (`csp audit`). Every subcommand explains itself with
    --help.
    """


@cli.group()
def data() -> None:
    """Speech corpora: render the default corpus offline with TTS engines."""


@data.command("synth")
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "large"]),
    default="small",
    show_default=True,
    help="tiny: tests (seconds); small: ~2 h of audio (minutes); large: 10+ h.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="default: all cores")
def data_synth(size: str, seed: int, out: Path, workers: int | None) -> None:
    """Render a deterministic multi-speaker English corpus from text, with no network.

    Four TTS engines (espeak-ng, flite, festival, piper) read fortunes and the KJV Bible with
    varied speed and pitch, part of it with noise and reverberation; 16 kHz mono FLAC and a
    manifest.jsonl. Test voices and test sentences never occur in training. Same seed and
    engine versions give the same corpus byte for byte; a re-run skips finished files.
    """
    from lightning_modules.data.synth import render_corpus

    manifest = render_corpus(out, size=size, seed=seed, workers=workers)
    click.echo(f"corpus ready: {manifest}")


@cli.command()
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
    from experiments.train import train as run_training

    config = load_config(config_path, list(overrides))
    result = run_training(config, run_dir or Path("runs") / config.name, resume=resume)
    click.echo(json.dumps(result, indent=2))


class FileArgumentError(click.ClickException):
    """A file argument that cannot be used: shown as one `error:` line, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.message}", err=True)


@cli.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="the packed file to write (replaced atomically if it exists)",
)
def export(checkpoint: Path, out: Path) -> None:
    """Write CHECKPOINT's weights as a packed sparse file, and print its size.

    Each tensor is stored dense, as a bitmask plus its non-zero values, or as the positions
    of its non-zero values plus the values, whichever is smallest; unpacking gives the exact
    weights back. The file keeps the model's hyper-parameters and the names of the pruned
    tensors, so the model can be rebuilt from it alone
    (`lightning_modules.asr.packed.load_packed_module`) and `csp audit` can read it. Prints
    dense, packed and floor bytes of the whole model (floor: non-zero values plus one mask
    bit per entry, per tensor).
    """
    from lightning_modules.pruning.audit import SavedFileError, export_packed

    try:
        sizes = export_packed(checkpoint, out)
    except SavedFileError as error:
        raise FileArgumentError(str(error)) from error
    except OSError as error:
        raise FileArgumentError(
            f"{out}: cannot write the packed file ({error.strerror})"
        ) from error
    dense = sizes["dense_bytes"]
    click.echo(f"wrote {out} (model sparsity {sizes['sparsity']:.4f})")
    for label in ("dense", "packed", "floor"):
        value = sizes[f"{label}_bytes"]
        click.echo(f"{label:<7}{value:>14,} bytes  {value / dense:.4f} of dense")


@cli.command("audit")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
def audit(checkpoint: Path, as_json: bool) -> None:
    """Report the sparsity and size of a saved model, recounted from its weights.

    CHECKPOINT is a Lightning checkpoint (.ckpt) or a file written by `csp export`. Exact
    zeros are counted in the saved weights themselves, per tensor, over the prunable tensors
    and over the whole model: entries, non-zeros, sparsity, dense bytes, bytes in the packed
    format `csp export` would choose, floor bytes and the ratios, and the file's size on
    disk. The prunable tensors are those the file records (the pruning callback's masks, or
    the packed file's metadata), else the default rule by name; the report says which.
    """
    from lightning_modules.pruning.audit import SavedFileError, format_report
    from lightning_modules.pruning.audit import audit as run_audit

    try:
        report = run_audit(checkpoint)
    except SavedFileError as error:
        raise FileArgumentError(str(error)) from error
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command()
@click.option(
    "--preset",
    type=click.Choice(["tiny", "small", "paper"]),
    default="small",
    show_default=True,
    help="tiny: tests (minutes); small: every method at 0.5 and 0.8 on a 2-core CPU; "
    "paper: every method at 0.5/0.7/0.8/0.9 with 3 seeds, sized for one GPU.",
)
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="a grid file of your own instead of a preset (see experiments/grids/)",
)
@click.option(
    "--corpus",
    type=click.Path(path_type=Path),
    default=None,
    help="your corpus instead of the rendered one: a manifest.jsonl, a folder holding one, "
    "or a LibriSpeech root",
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
def reproduce(preset: str, grid_path: Path | None, corpus: Path | None, runs_dir: Path) -> None:
    """Run the paper comparison: the dense model once, then every method × sparsity × seed.

    Each pruning run starts from the same dense weights with the same budget and schedule;
    realized sparsity and packed size are read from the saved weights. Runs already finished
    are reused, an interrupted one resumes from its checkpoint: run the command again to go
    on. Ends with the results table and the W&B run folders (offline unless W&B is set up).
    """
    from experiments.reproduce import (
        GRIDS,
        corpus_from_path,
        load_grid,
        results_table,
        run_grid,
        wandb_run_dirs,
    )

    grid = load_grid(
        grid_path or GRIDS / f"{preset}.yaml",
        runs_dir,
        corpus_from_path(corpus) if corpus is not None else None,
    )
    summary = run_grid(grid, log=click.echo)
    click.echo(results_table(summary))
    click.echo(f"results: {grid.root / 'results.json'}")
    folders = wandb_run_dirs(summary)
    if folders:
        click.echo("W&B runs (upload offline ones with `wandb sync FOLDER`):")
        for folder in folders:
            click.echo(f"  {folder}")


def main() -> None:
    """Console entry point: bad input ends with one clear message, not a traceback."""
    # Each csp command owns its W&B service. One inherited from a parent process (a
    # notebook, a test runner) outlives a killed run and keeps its run id "in use",
    # so resuming that run would fail.
    os.environ.pop("WANDB_SERVICE", None)
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (ConfigError, CorpusError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
