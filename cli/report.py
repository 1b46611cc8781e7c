"""`csp report`: tables, figures and report.html from experiments and Optuna studies.

Usage:

    csp report runs/default [runs/ablation ...] --out DIR
    csp report runs/default STUDY --storage runs/sweeps/studies.journal --out DIR
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.errors import FileArgumentError


@click.command(short_help="Tables, figures and report.html from grids and studies.")
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
