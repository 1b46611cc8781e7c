"""report.html: one self-contained page (figures embedded as base64 PNG, no scripts, no
network) with the tables, the figures, what is missing and why, the configs and provenance."""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml

from analysis.cell_columns import legend
from analysis.detail_tables import TextTable
from analysis.experiment import Experiment
from analysis.pairings import Pairing
from analysis.table_formats import (
    PAIRING_COLUMNS,
    PAIRING_LEGEND,
    columns,
    entry_text,
    pairing_cells,
    row_entries,
)
from analysis.tables import Table, methods_legend
from analysis.verdicts import comparison_heading, comparison_sentences
from lightning_modules.pruning.registry import proposed

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222;
       padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.best { background: #e3f5e1; font-weight: bold; }
td.missing { color: #a30; font-style: italic; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.verdict { font-weight: 600; }
"""


def about_proposed() -> str:
    """The proposed method's section: its citation and what its class says about it."""
    studied = proposed()
    if studied is None:
        return ""
    paragraphs = [f"{studied.title}: {studied.citation}.", *getattr(studied, "about", ())]
    return f"<h2>About {_e(studied.title)}</h2>" + "".join(f"<p>{_e(p)}</p>" for p in paragraphs)


def _e(value: object) -> str:
    return html.escape(str(value))


def image(path: Path, title: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{_e(title)}" src="data:image/png;base64,{data}"></figure>'


def table_html(table: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in ["method", *columns(table)])
    body = []
    for name, entries in row_entries(table):
        tds = []
        for entry in entries:
            kind = ""
            if entry is not None and entry.best:
                kind = ' class="best"'
            elif entry is not None and entry.wer_mean is None:
                kind = ' class="missing"'
            tds.append(f"<td{kind}>{_e(entry_text(entry))}</td>")
        body.append(f"<tr><th>{_e(name)}</th>{''.join(tds)}</tr>")
    return (
        f"<h3>{_e(table.title)}</h3><p>{_e(legend())}</p><p>{_e(methods_legend(table))}</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>"
    )


def pairings_html(table: Table, pairings: list[Pairing]) -> str:
    if not pairings:
        if table.kind != "main":
            return ""
        return "<p>No paired comparison: the grid lacks CSP or every baseline.</p>"
    head = "".join(f"<th>{_e(column)}</th>" for column in PAIRING_COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in pairing_cells(p)) + "</tr>"
        for p in pairings
    )
    verdicts = "".join(
        f'<li class="verdict">{_e(sentence)}</li>'
        for sentence in comparison_sentences(table, pairings)
    )
    chosen = (
        "Per target sparsity, every baseline, the one with the lowest mean test WER first. "
        if table.kind == "main"
        else ""
    )
    return (
        f"<h3>{_e(comparison_heading(table))}</h3><p>{chosen}{_e(PAIRING_LEGEND)}</p>"
        f"<table><tr>{head}</tr>{rows}</table><ul>{verdicts}</ul>"
    )


def grid_html(grid: TextTable) -> str:
    """A detail table (by condition, by voice, mask overlap)."""
    head = "".join(f"<th>{_e(cell)}</th>" for cell in grid.header)
    body = "".join(
        f"<tr><th>{_e(row[0])}</th>" + "".join(f"<td>{_e(c)}</td>" for c in row[1:]) + "</tr>"
        for row in grid.rows
    )
    return f"<h3>{_e(grid.title)}</h3><p>{_e(grid.legend)}</p><table><tr>{head}</tr>{body}</table>"


def runs_html(experiment: Experiment) -> str:
    """Every run of the grid, complete or not, with what it recorded."""
    rows = []
    for run in [experiment.dense, *experiment.cells]:
        result = run.result
        wer = f"{result.test_wer:.4f}" if result is not None and run.status == "complete" else ""
        sparsity = "" if run.label == "dense" or run.last_sparsity is None else run.last_sparsity
        kind = "" if run.status == "complete" else ' class="missing"'
        rows.append(
            f"<tr><td>{_e(run.directory.name)}</td><td{kind}>{_e(run.note)}</td><td>{wer}</td>"
            f"<td>{_e(f'{sparsity:.4f}' if sparsity != '' else '')}</td>"
            f"<td>{_e(result.steps if result is not None else '')}</td>"
            f"<td>{_e(run.metrics_source or 'none')}</td></tr>"
        )
    return (
        "<h3>Runs</h3><table><tr><th>run</th><th>status</th><th>test WER</th>"
        "<th>realized (or last) sparsity</th><th>steps</th><th>trajectories from</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, sort_keys=False)
    return f"<pre>{_e(text)}</pre>"


def provenance_html(experiment: Experiment) -> str:
    runs = [experiment.dense, *experiment.cells]
    records = [run.provenance for run in runs if run.provenance]
    commits = Counter(str(record.get("git_commit")) for record in records)
    dense = experiment.dense
    first = records[0] if records else {}
    corpus = (dense.config or {}).get("corpus", experiment.spec.get("dense", {}).get("corpus"))
    sizes = {k: getattr(dense.result, k, None) for k in ("utterances", "hours")}
    commit_text = ", ".join(f"{c} ({n} runs)" for c, n in commits.items()) or "not recorded"
    lines = [
        f"<p>Git commit: {_e(commit_text)}"
        + (" — <strong>the runs come from different commits</strong>" if len(commits) > 1 else "")
        + "</p>",
        f"<p>Seeds of the cells: {_e(', '.join(map(str, experiment.seeds)))}; dense model "
        f"seed {_e(dense.seed)}. Target sparsities: "
        f"{_e(', '.join(f'{s:g}' for s in experiment.sparsities))}.</p>",
        f"<p>Python {_e(first.get('python', '?'))} on {_e(first.get('platform', '?'))}; "
        f"packages: {_e(json.dumps(first.get('packages', {})))}</p>",
        "<p>Corpus:</p>" + _pre({"corpus": corpus, **sizes}),
    ]
    return "<h3>Provenance</h3>" + "".join(lines)


def configs_html(experiment: Experiment) -> str:
    parts = [f"<details><summary>grid ({_e(experiment.root / 'grid.yaml')})</summary>"]
    parts.append(_pre(experiment.spec) + "</details>")
    shown: set[str] = set()
    for run in [experiment.dense, *experiment.cells]:
        if run.config is not None and run.label not in shown:
            shown.add(run.label)
            parts.append(
                f"<details><summary>config of {_e(run.directory.name)}</summary>"
                f"{_pre(run.config)}</details>"
            )
    return "<h3>Configs</h3>" + "".join(parts)


def study_html(study: optuna.Study, figures: list[tuple[str, Path]], found: dict) -> str:
    states = Counter(trial.state.name.lower() for trial in study.get_trials(deepcopy=False))
    parts = [
        f"<h2>Study {_e(study.study_name)}</h2>",
        f"<p>Directions: {_e(', '.join(d.name.lower() for d in study.directions))}; trials: "
        f"{_e(', '.join(f'{n} {s}' for s, n in states.items()) or 'none')}.</p>",
    ]
    best = study.best_trials if len(study.directions) > 1 else []
    if len(study.directions) == 1 and states.get("complete"):
        best = [study.best_trial]
    if best:
        rows = "".join(
            f"<tr><td>{t.number}</td><td>{_e(', '.join(f'{v:.4g}' for v in t.values))}</td>"
            f"<td>{_e(json.dumps(t.params))}</td></tr>"
            for t in best
        )
        parts.append(
            "<h3>Best trials (the Pareto front)</h3><table><tr><th>trial</th><th>values</th>"
            f"<th>parameters</th></tr>{rows}</table>"
        )
    for objective, values in found.items():
        items = ", ".join(f"{name} {value:.3f}" for name, value in values.items())
        parts.append(f"<p>Parameter importance for {_e(objective)}: {_e(items or 'none')}</p>")
    parts += [f"<h3>{_e(title)}</h3>{image(path, title)}" for title, path in figures]
    return "".join(parts)


def page(title: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{about_proposed()}" + "".join(sections) + "</body></html>\n"
    )


def experiment_html(
    experiment: Experiment,
    tables: list[tuple[Table, list[Pairing]]],
    figures: list[tuple[str, Path]],
    notes: list[str],
    details: Sequence[TextTable] = (),
) -> str:
    parts = [f"<h2>Experiment {_e(experiment.name)}</h2><p>Records: {_e(experiment.root)}</p>"]
    for table, pairings in tables:
        parts.append(table_html(table))
        parts.append(pairings_html(table, pairings))
    problems = [run for run in [experiment.dense, *experiment.cells] if run.status != "complete"]
    if problems:
        items = "".join(f"<li>{_e(run.directory.name)}: {_e(run.note)}</li>" for run in problems)
        parts.append(f"<h3>Missing and failed runs</h3><ul>{items}</ul>")
    parts += [f"<h3>{_e(title)}</h3>{image(path, title)}" for title, path in figures]
    parts += [f"<p>{_e(note)}</p>" for note in notes]
    parts += [grid_html(grid) for grid in details]
    parts += [runs_html(experiment), configs_html(experiment), provenance_html(experiment)]
    return "".join(parts)
