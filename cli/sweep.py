"""`csp sweep`: Optuna studies over a pruning method's settings, on one machine or many.

Usage:

    csp sweep create sweeps/specs/csp.yaml [--storage URL]   # once
    csp sweep run csp [--trials N] [--workers K]             # again after a crash
    csp sweep status csp / best csp [--out FILE] / dashboard csp
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.corpus_option import corpus_option

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


@click.group(short_help="Optuna studies: create, run, status, best, dashboard.")
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
@corpus_option("your corpus instead of the grid's")
@RUNS_DIR_OPTION
def sweep_create(spec_path: Path, storage: str | None, corpus: Path | None, runs_dir: Path) -> None:
    """Create the study of SPEC (once; again with the same spec does nothing).

    The spec, its grid and the corpus are stored in the study, and every trial config is
    checked at the ends of its ranges, so workers need only the study name and the storage.
    """
    from lightning_modules.data.readers import corpus_from_path
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
    study_id = found.study_id
    url = f"http://127.0.0.1:{port}/dashboard/studies/{study_id}"
    click.echo(f"dashboard of study {name}: {url}")
    sys.stdout.flush()  # the URL must be visible before the server blocks
    run_server(found.storage, host="127.0.0.1", port=port)
