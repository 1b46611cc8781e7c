"""`csp reproduce`: the paper comparison as one command.

Usage:

    csp reproduce                          # the default grid (experiments/grids/default.yaml)
    csp reproduce --grid tiny|paper|ablation|FILE
    csp reproduce --corpus /data/LibriSpeech [--runs-dir runs]
    csp reproduce --workers 2                          # two cells at a time on this machine
    csp reproduce --grid budget --budget 100 --budget 400   # a part of a budget axis
    csp reproduce --storage postgresql://host/db       # on every machine: they share the grid
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.corpus_option import corpus_option


@click.command(short_help="The paper comparison: dense model, then every method × sparsity × seed.")
@click.option(
    "--grid",
    "grid",
    default="default",
    show_default=True,
    help="a shipped grid by name: tiny (tests, minutes), default (every method at 0.5 and 0.8 "
    "on a 2-core CPU), paper (0.5/0.7/0.8/0.9 with 3 seeds, sized for one GPU), ablation "
    "(CSP's parts), budget (the comparison at 100, 400 and 1,600 steps per cell); or the "
    "path of a grid file of your own (see experiments/grids/)",
)
@corpus_option("your corpus instead of the rendered one")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="cells trained at once on this machine, each with its share of the cores (on a "
    "2-core CPU, 2 one-thread workers train 1.4 times the cells of one: docs/budget.md)",
)
@click.option(
    "--budget",
    "budgets",
    type=click.IntRange(min=1),
    multiple=True,
    help="in a grid with a budget axis, run only the cells of this budget (repeatable): a "
    "long grid in parts; the summary and report cover every cell that has ended",
)
@click.option(
    "--storage",
    default=None,
    help="keep the grid in an Optuna study (one trial per cell) at this URL, the same URLs "
    "as `csp sweep` (a journal file path, sqlite:///FILE, postgresql://...): the same command "
    "on other machines joins the grid and takes the cells no one holds. Default with "
    "--workers > 1: $CSP_SWEEP_STORAGE, else runs/sweeps/studies.journal",
)
def reproduce(
    grid: str,
    corpus: Path | None,
    runs_dir: Path,
    workers: int,
    budgets: tuple[int, ...],
    storage: str | None,
) -> None:
    """Run the paper comparison: the dense model once, then every method × sparsity × seed.

    Each pruning run (a cell) starts from the same dense weights with the same budget and
    schedule; realized sparsity and packed size are read from the saved weights. Runs that
    ended are reused, an interrupted one resumes from its checkpoint: run the command again
    to go on. A cell that fails or diverges is recorded with its reason and the others still
    run. With --workers or --storage the cells are trials of an Optuna study that workers
    here and on other machines share (a killed worker's cell is resumed by another one; a
    finished cell never runs twice); run folders and results are the same. Ends with the
    results table, the W&B run folders (offline unless W&B is set up) and
    the report (runs/GRID/report/report.html, see `csp report`); exits with 1 if a cell did
    not complete.
    """
    from analysis.experiment import load_experiment
    from analysis.pairings import paired_comparison
    from analysis.report import write_report
    from analysis.table_formats import to_markdown
    from analysis.tables import main_tables
    from experiments.records import GRID_RESULTS
    from experiments.reproduce import grid_path, load_grid, run_grid, wandb_run_dirs
    from lightning_modules.data.readers import corpus_from_path

    corpus_section = corpus_from_path(corpus) if corpus is not None else None
    chosen = load_grid(grid_path(grid), runs_dir, corpus_section)
    part = budgets or None
    if workers == 1 and storage is None:
        summary = run_grid(chosen, log=click.echo, budgets=part)
    else:
        from sweeps.grid_study import run_grid_study
        from sweeps.storage import storage_url

        summary = run_grid_study(
            chosen, workers, storage_url(storage), corpus_section, log=click.echo, budgets=part
        )
    for table in main_tables(load_experiment(chosen.root)):
        click.echo(to_markdown(table, paired_comparison(table)))
    click.echo(f"results: {chosen.root / GRID_RESULTS}")
    folders = wandb_run_dirs(summary)
    if folders:
        click.echo("W&B runs (upload offline ones with `wandb sync FOLDER`):")
        for folder in folders:
            click.echo(f"  {folder}")
    click.echo(f"report: {write_report([chosen.root], chosen.root / 'report')}")
    incomplete = [
        f"{Path(cell.run_dir).name} ({cell.status})"
        for cell in summary.cells
        if cell.status != "complete" and (part is None or cell.budget in part)
    ]
    if incomplete:
        click.echo(
            f"error: {len(incomplete)} cell(s) did not complete: {', '.join(incomplete)}",
            err=True,
        )
        sys.exit(1)
