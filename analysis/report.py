"""`csp report`: tables, figures and report.html from experiments and Optuna studies.

Writes into the output folder:

    table.md, table.tex, table.csv   the main table (and the ablation table) of every experiment,
                                     one per budget of a grid with a budget axis, then (in
                                     table.md) test WER against budget and the proposed
                                     method's verdict per budget, test WER by condition, engine
                                     and voice and the overlap of the methods' masks
    breakdown.csv, mask_overlap.csv  those two, every number unrounded
    figures/*.png, figures/*.svg     WER vs budget, WER vs sparsity, decoding speed-up vs
                                     sparsity, sparsity trajectories, CSP's compression error,
                                     final sparsity per tensor, WER by voice, mask overlap; per
                                     study its Pareto
                                     front and parameter importance
    report.html                      all of it in one self-contained page

Every input is read and checked before anything is drawn, so bad records fail fast with the
file and field named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna

from analysis import figures as draw
from analysis import studies as study_plots
from analysis.breakdown import Breakdown, breakdowns
from analysis.budget import budget_curves, budget_grids
from analysis.detail_tables import (
    TextTable,
    breakdown_csv,
    breakdown_grid,
    grid_markdown,
    overlap_csv,
    overlap_grids,
    voice_grid,
)
from analysis.experiment import Experiment, ReportError, load_experiment
from analysis.html_report import experiment_html, page, study_html
from analysis.mask_overlap import Overlap, mask_overlaps
from analysis.pairings import Pairing, ablation_comparison, paired_comparison
from analysis.table_formats import to_csv, to_latex, to_markdown
from analysis.tables import Table, ablation_table, main_tables, variant_names
from lightning_modules.pruning.registry import proposed


def proposed_note() -> str:
    """One line naming the proposed method's paper and what the run algorithm is."""
    studied = proposed()
    if studied is None:
        return ""
    about = getattr(studied, "about", ())
    return f"{studied.title}: {studied.citation}." + (f" {about[-1]}" if about else "")


def _experiment_figures(
    experiment: Experiment, table: Table, ablation: Table | None, out: Path
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Draw what the records allow; a note for each figure that has nothing to draw."""
    names = variant_names(experiment.variants)
    wanted = [
        ("Test WER against realized sparsity", "wer_vs_sparsity", draw.wer_vs_sparsity(table)),
        (
            "Decoding speed-up against sparsity (batch 1, measured on the saved models)",
            "speedup_vs_sparsity",
            draw.speedup_vs_sparsity(table),
        ),
        (
            "Sparsity over training steps",
            "sparsity_trajectories",
            draw.sparsity_trajectories(experiment, names),
        ),
        (
            "Dev WER over pruning and fine-tuning",
            "dev_wer_trajectories",
            draw.dev_wer_trajectories(experiment, names),
        ),
        (
            "CSP's compression error per tensor over steps",
            "csp_compression_error",
            draw.compression_error(experiment),
        ),
        (
            "Final sparsity per tensor",
            "per_tensor_sparsity",
            draw.per_tensor_sparsity(experiment, names),
        ),
    ]
    if ablation is not None:
        wanted.append(
            ("Ablation: test WER against sparsity", "ablation", draw.wer_vs_sparsity(ablation))
        )
    drawn, notes = [], []
    for title, stem, figure in wanted:
        if figure is None:
            notes.append(f"{title}: nothing to draw (no run recorded it).")
        else:
            drawn.append((title, draw.save(figure, out, f"{experiment.name}-{stem}")))
    return drawn, notes


def _details(
    experiment: Experiment, tables: list[Table], out: Path
) -> tuple[list[Breakdown], list[Overlap], list[TextTable], list[tuple[str, Path]], list[str]]:
    """Test WER by condition, engine and voice, and the masks' overlap: tables, figures and
    a note for what cannot be shown."""
    found, why = breakdowns(tables)
    overlaps = mask_overlaps(tables)
    grids, drawn, notes = [], [], []
    if not found:
        notes.append(f"Test WER by condition and voice: not shown, {why}.")
    for breakdown in found:
        if breakdown.grouping == "voice":
            grids.append(voice_grid(breakdown, experiment.name))
            figure = draw.voice_heatmap(breakdown)
            if figure is not None:
                title = "Test WER by voice and system"
                drawn.append((title, draw.save(figure, out, f"{experiment.name}-wer_by_voice")))
        else:
            grids.append(breakdown_grid(breakdown, experiment.name))
    grids += overlap_grids(overlaps, experiment.name)
    figure = draw.overlap_heatmaps(overlaps)
    if figure is None:
        notes.append("Mask overlap: not shown, no two methods finished a shared seed.")
    else:
        title = "Overlap of the kept weights (Jaccard)"
        drawn.append((title, draw.save(figure, out, f"{experiment.name}-mask_overlap")))
    studied = proposed()
    figure = draw.overlap_per_tensor(overlaps, studied.title) if studied is not None else None
    if figure is not None:
        title = f"Overlap of {studied.title}'s kept weights with each method's, per tensor"
        stem = f"{experiment.name}-overlap_per_tensor"
        drawn.append((title, draw.save(figure, out, stem)))
    return found, overlaps, grids, drawn, notes


def _study_section(study: optuna.Study, out: Path) -> str:
    found = study_plots.importances(study)
    front = "Pareto front" if len(study.directions) > 1 else "Values over trials"
    drawn = []
    for title, stem, figure in (
        (front, "pareto", study_plots.pareto_front(study)),
        ("Parameter importance", "importance", study_plots.param_importance(found, study)),
    ):
        if figure is not None:
            drawn.append((title, draw.save(figure, out, f"study-{study.study_name}-{stem}")))
    return study_html(study, drawn, found)


def write_report(
    experiments: Sequence[str | Path],
    out: str | Path,
    studies: Sequence[optuna.Study] = (),
) -> Path:
    """Build the report of the given experiment folders and studies; returns report.html."""
    loaded = [load_experiment(root) for root in experiments]
    if not loaded and not studies:
        raise ReportError("nothing to report: give an experiment folder or a study")
    names = [experiment.name for experiment in loaded]
    if len(set(names)) < len(names):
        raise ReportError(f"two experiments have the same name: {names}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown, latex, tables, sections = [f"# Results\n\n{proposed_note()}\n"], [], [], []
    found_breakdowns: dict[str, list[Breakdown]] = {}
    found_overlaps: dict[str, list[Overlap]] = {}
    for experiment in loaded:
        mains = main_tables(experiment)  # one per budget: the longest last
        ablations = [ablation_table(experiment, budget) for budget in experiment.budgets]
        ablations = [table for table in ablations if table is not None]
        shown: list[tuple[Table, list[Pairing]]] = [(t, paired_comparison(t)) for t in mains]
        shown += [(table, ablation_comparison(table)) for table in ablations]
        for table, pairings in shown:
            markdown.append(to_markdown(table, pairings))
            latex.append(to_latex(table, pairings))
            tables.append((table, pairings))
        ablation = ablations[-1] if ablations else None
        drawn, notes = _experiment_figures(experiment, mains[-1], ablation, out / "figures")
        curves = budget_curves(experiment)
        budget_tables = [grid for curve in curves for grid in budget_grids(curve)]
        markdown += [grid_markdown(grid) for grid in budget_tables]
        if curves:
            figure = draw.wer_vs_budget(curves)
            title = "Test WER against cell budget (and against training wall time)"
            if figure is None:
                notes.append(f"{title}: nothing to draw (no cell has ended).")
            else:
                stem = f"{experiment.name}-wer_vs_budget"
                drawn.insert(0, (title, draw.save(figure, out / "figures", stem)))
        shown_tables = [table for table, _ in shown]
        found, overlaps, details, more, why = _details(experiment, shown_tables, out / "figures")
        details = budget_tables + details
        found_breakdowns[experiment.name], found_overlaps[experiment.name] = found, overlaps
        markdown += [grid_markdown(grid) for grid in details] + [f"{note}\n" for note in why]
        sections.append(experiment_html(experiment, shown, drawn + more, notes + why, details))
    sections += [_study_section(study, out / "figures") for study in studies]
    (out / "table.md").write_text("\n".join(markdown), encoding="utf-8")
    (out / "table.tex").write_text(f"% {proposed_note()}\n" + "\n".join(latex), encoding="utf-8")
    (out / "table.csv").write_text(to_csv(tables), encoding="utf-8")
    (out / "breakdown.csv").write_text(breakdown_csv(found_breakdowns), encoding="utf-8")
    (out / "mask_overlap.csv").write_text(overlap_csv(found_overlaps), encoding="utf-8")
    title = "csp-asr report: " + ", ".join(
        names + [f"study {study.study_name}" for study in studies]
    )
    report = out / "report.html"
    report.write_text(page(title, sections), encoding="utf-8")
    return report
