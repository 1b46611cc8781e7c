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
    on. A cell that fails or diverges is recorded as failed and the others still run. Ends
    with the results table, the W&B run folders (offline unless W&B is set up) and the report
    (runs/GRID/report/report.html, see `csp report`); exits with 1 if a cell failed.
    """
    from analysis.report import write_report
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
    click.echo(f"report: {write_report([grid.root], grid.root / 'report')}")
    failed = [Path(c["run_dir"]).name for c in summary["cells"] if c["status"] != "finished"]
    if failed:
        click.echo(f"error: {len(failed)} cell(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("sources", nargs=-1, metavar="[EXPERIMENT|STUDY]...")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="folder for table.md/.tex/.csv, figures/ and report.html",
)
@click.option(
    "--storage",
    default=None,
    help="the Optuna storage of the STUDY names: a journal file or a database URL",
)
def report(sources: tuple[str, ...], out: Path, storage: str | None) -> None:
    """Tables, figures and a self-contained report.html from experiments and studies.

    An EXPERIMENT is a grid folder written by `csp reproduce` (runs/GRID): its local run
    records are read (a run without metrics.jsonl falls back to its offline W&B files). Any
    other argument is the name of an Optuna study in --storage (Pareto front, parameter
    importance). Cells that are missing, unfinished or failed are shown with their reason.
    """
    from analysis.experiment import ReportError
    from analysis.report import write_report
    from analysis.studies import load_studies

    folders = [source for source in sources if Path(source).is_dir()]
    names = [source for source in sources if not Path(source).is_dir()]
    if names and storage is None:
        raise FileArgumentError(
            f"{', '.join(names)}: no such experiment folder (for a study, give --storage)"
        )
    try:
        studies = load_studies(storage, names) if names else []
        click.echo(f"report: {write_report(folders, out, studies)}")
    except ReportError as error:
        raise FileArgumentError(str(error)) from error


STORAGE_OPTION = click.option(
    "--storage",
    default=None,
    help="a journal file path or an SQLAlchemy URL such as postgresql://user@host/db "
    "(default: $CSP_SWEEP_STORAGE, else runs/sweeps/studies.journal)",
)
RUNS_DIR_OPTION = click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="where the dense model (runs/GRID/dense) and the trials (runs/sweeps/STUDY) go",
)


@cli.group()
def sweep() -> None:
    """Optuna studies over a pruning method's settings, on one machine or many.

    Create a study once from a spec (sweeps/specs/), then run workers: locally with
    --workers K, and on other machines with the same `run` command and a shared --storage
    (PostgreSQL). A killed worker's trial is failed and retried with the same parameters;
    run the command again to go on. Trials are stopped early (Optuna's pruners) on dev WER;
    test WER is never used to choose.
    """


@sweep.command("create")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@STORAGE_OPTION
@click.option(
    "--corpus",
    type=click.Path(path_type=Path),
    default=None,
    help="your corpus instead of the grid's: a manifest.jsonl, a folder with one, or a "
    "LibriSpeech root",
)
@RUNS_DIR_OPTION
def sweep_create(spec_path: Path, storage: str | None, corpus: Path | None, runs_dir: Path) -> None:
    """Create the study of SPEC (once; again with the same spec does nothing).

    The spec, its grid and the corpus are stored in the study, and every trial config is
    checked at the ends of its ranges, so workers need only the study name and the storage.
    """
    from experiments.reproduce import corpus_from_path
    from sweeps.spec import load_spec
    from sweeps.storage import shown, storage_url
    from sweeps.study import create_sweep

    url = storage_url(storage)
    spec = load_spec(spec_path)
    chosen = corpus_from_path(corpus.resolve()) if corpus is not None else None
    _, new = create_sweep(spec, url, chosen, runs_dir)
    verb = "created" if new else "exists already, unchanged:"
    click.echo(f"study {spec.name} {verb} in {shown(url)}")
    click.echo(f"run it: csp sweep run {spec.name} --trials {spec.trials} --storage {shown(url)}")


@sweep.command("run")
@click.argument("name")
@STORAGE_OPTION
@click.option("--trials", type=click.IntRange(min=1), default=None, help="default: the spec's")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@RUNS_DIR_OPTION
def sweep_run(
    name: str, storage: str | None, trials: int | None, workers: int, runs_dir: Path
) -> None:
    """Run trials of study NAME until --trials are complete or stopped early.

    Starts WORKERS local processes; the same command on other machines joins the study.
    Trials go to runs/sweeps/NAME/trial-NNNN (each one W&B run, group NAME).
    """
    from sweeps.storage import storage_url
    from sweeps.study import open_sweep
    from sweeps.worker import run_workers

    found = open_sweep(name, storage_url(storage), runs_dir)
    failed = run_workers(found, trials or found.spec.trials, workers, log=click.echo)
    if failed:
        raise click.ClickException(f"{failed} of {workers} workers failed (see above)")


@sweep.command("worker", hidden=True)
@click.argument("name")
@STORAGE_OPTION
@RUNS_DIR_OPTION
@click.option("--trials", type=int, required=True)
@click.option("--index", type=int, default=0)
@click.option("--threads", type=int, default=1)
def sweep_worker(
    name: str, storage: str | None, runs_dir: Path, trials: int, index: int, threads: int
) -> None:
    """One worker process of `csp sweep run`."""
    from sweeps.storage import storage_url
    from sweeps.worker import work

    work(name, storage_url(storage), runs_dir, trials, index, threads)


@sweep.command("trial", hidden=True)
@click.argument("name")
@click.argument("number", type=int)
@STORAGE_OPTION
@RUNS_DIR_OPTION
def sweep_trial(name: str, number: int, storage: str | None, runs_dir: Path) -> None:
    """The training process of one trial (started by a worker)."""
    from sweeps.storage import storage_url
    from sweeps.worker import run_trial

    run_trial(name, number, storage_url(storage), runs_dir)


@sweep.command("status")
@click.argument("name")
@STORAGE_OPTION
@RUNS_DIR_OPTION
def sweep_status(name: str, storage: str | None, runs_dir: Path) -> None:
    """Trials of study NAME by state, the best so far or the Pareto front, their runs."""
    from sweeps.storage import storage_url
    from sweeps.study import open_sweep, status_report

    click.echo(status_report(open_sweep(name, storage_url(storage), runs_dir)))


@sweep.command("best")
@click.argument("name")
@STORAGE_OPTION
@RUNS_DIR_OPTION
@click.option("--trial", "number", type=int, default=None, help="this trial instead of the best")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def sweep_best(
    name: str, storage: str | None, runs_dir: Path, number: int | None, out: Path | None
) -> None:
    """The best trial of study NAME as an experiment YAML for `csp train --config`.

    One objective: the lowest dev WER. Several: the Pareto trial best on the first
    objective (pick another with --trial). Prints it, or writes it to --out.
    """
    from sweeps.storage import storage_url
    from sweeps.study import best_config_yaml, open_sweep

    found = open_sweep(name, storage_url(storage), runs_dir)
    text = best_config_yaml(found, number, found.dense_checkpoint())
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")


@sweep.command("dashboard")
@click.argument("name")
@STORAGE_OPTION
@RUNS_DIR_OPTION
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def sweep_dashboard(name: str, storage: str | None, runs_dir: Path, port: int) -> None:
    """Serve optuna-dashboard for the storage of study NAME on 127.0.0.1 (Ctrl-C stops)."""
    from optuna_dashboard import run_server

    from sweeps.storage import storage_url
    from sweeps.study import open_sweep

    found = open_sweep(name, storage_url(storage), runs_dir)
    study_id = found.study._study_id
    url = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
    click.echo(f"dashboard of study {name}: {url}")
    sys.stdout.flush()  # the URL must be visible before the server blocks
    run_server(found.study._storage, host="127.0.0.1", port=port)


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
