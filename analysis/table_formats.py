"""The tables written out: Markdown for reading, LaTeX for the paper, CSV for further work.

Markdown and LaTeX show one line per method, one column per target sparsity (0 is the dense
model); the best entry of each column is bold. The CSV is long: one row per method ×
sparsity, with every number unrounded.
"""

from __future__ import annotations

import csv
import io

from analysis.cell_columns import cell_fields, cell_texts, cell_values, legend
from analysis.pairings import Pairing
from analysis.tables import Entry, Table, methods_legend
from analysis.verdicts import bootstrap_text, comparison_heading, comparison_sentences

ROW_FIELDS = (
    "experiment", "table", "row", "label", "method", "target_sparsity", "budget", "seeds_complete",
    "seeds", "test_wer_mean", "test_wer_std", "relative_wer_change",
)  # fmt: skip
PAIRING_FIELDS = (
    "paired_system", "paired_with", "paired_seeds", "paired_difference_mean",
    "bootstrap_difference", "bootstrap_low", "bootstrap_high", "bootstrap_p",
    "bootstrap_verdict",
)  # fmt: skip


def csv_fields() -> list[str]:
    """One row per table cell: who and the test WER, each cell column's fields
    (`analysis.cell_columns`), whether it is the best of its column, why seeds are missing,
    then its paired comparison: in the main table the proposed method (paired_system) against
    this row's method (paired_with), in the ablation table this variant against full CSP; the
    differences are paired_system's test WER minus paired_with's."""
    return [*ROW_FIELDS, *cell_fields(), "best", "missing", *PAIRING_FIELDS]


def columns(table: Table) -> list[str]:
    return ["0 (dense)", *(f"{sparsity:g}" for sparsity in table.sparsities)]


def entry_text(entry: Entry | None) -> str:
    """One entry as plain text: the numbers, or why there are none."""
    if entry is None:
        return "—"
    if entry.wer_mean is None:
        return entry.missing_text()
    parts = [entry.wer_text() + (f" ({entry.relative_text()})" if entry.relative_text() else "")]
    parts += cell_texts(entry)
    return "; ".join(parts)


def row_entries(table: Table) -> list[tuple[str, list[Entry | None]]]:
    """(row name, cells in column order), the dense row first."""
    dense = [table.dense] + [None] * len(table.sparsities)
    rows = [(table.dense_name, dense)]
    rows += [(row.name, [None, *(row.entries[s] for s in table.sparsities)]) for row in table.rows]
    return rows


def to_markdown(table: Table, pairings: list[Pairing]) -> str:
    def text(entry: Entry | None) -> str:
        value = entry_text(entry).replace("|", "\\|")
        return f"**{value}**" if entry is not None and entry.best else value

    lines = [f"## {table.title}", "", legend(), "", methods_legend(table), ""]
    lines.append("| method | " + " | ".join(columns(table)) + " |")
    lines.append("|---" * (len(table.sparsities) + 2) + "|")
    for name, entries in row_entries(table):
        lines.append(f"| {name} | " + " | ".join(text(entry) for entry in entries) + " |")
    if pairings:
        lines += ["", f"### {comparison_heading(table)}", "", PAIRING_LEGEND, ""]
        lines.append("| " + " | ".join(PAIRING_COLUMNS) + " |")
        lines.append("|---" * len(PAIRING_COLUMNS) + "|")
        for pairing in pairings:
            cells = [cell.replace("|", "\\|") for cell in pairing_cells(pairing)]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [""] + [f"- {sentence}" for sentence in comparison_sentences(table, pairings)]
    return "\n".join(lines) + "\n"


PAIRING_COLUMNS = (
    "target sparsity", "system", "compared with", "seeds", "Δ test WER, by seed", "wins",
    "bootstrap Δ [95 % CI], p",
)  # fmt: skip
PAIRING_LEGEND = (
    "Δ is the system's test WER minus the compared one's: by seed, mean ± std over the shared "
    "seeds; bootstrap, the paired bootstrap over test utterances pooled over those seeds "
    "(Bisani & Ney 2004, 10,000 resamples), with its 95 % interval and two-sided p."
)


def pairing_cells(pairing: Pairing) -> list[str]:
    """The pairing's row, in `PAIRING_COLUMNS` order."""
    bootstrap = "—" if pairing.bootstrap is None else bootstrap_text(pairing.bootstrap)
    return [
        f"{pairing.sparsity:g}",
        pairing.system,
        pairing.baseline or "—",
        str(len(pairing.seeds)),
        difference_text(pairing),
        f"{pairing.wins}/{len(pairing.seeds)}",
        bootstrap,
    ]


def difference_text(pairing: Pairing) -> str:
    if pairing.mean is None:
        return "—"
    std = "" if pairing.std is None else f" ± {pairing.std:.3f}"
    return f"{pairing.mean:+.3f}{std}"


def _tex(text: str) -> str:
    for raw, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("−", "$-$"),
        ("λ", r"$\lambda$"),
        ("ε", r"$\varepsilon$"),
        ("∞", r"$\infty$"),
        ("“", "``"),
        ("”", "''"),
        ("—", "---"),
    ):
        text = text.replace(raw, escaped)
    return text


def _tex_entry(entry: Entry | None) -> str:
    """WER and relative change on the first line, sparsity and size on the second."""
    if entry is None:
        return "---"
    if entry.wer_mean is None:
        return r"\emph{" + _tex(entry.missing_text()) + "}"
    wer = _tex(entry.wer_text()) + (f" ({_tex(entry.relative_text())})" if entry.relative else "")
    if entry.best:
        wer = r"\textbf{" + wer + "}"
    extra = [_tex(text) for text in cell_texts(entry)]
    return r"\makecell[l]{" + r"\\ ".join([wer, *(r"\scriptsize " + e for e in extra)]) + "}"


def to_latex(table: Table, pairings: list[Pairing]) -> str:
    """A booktabs table (needs \\usepackage{booktabs,makecell})."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{"
        + _tex(table.title)
        + ". "
        + _tex(legend())
        + " "
        + _tex(methods_legend(table))
        + "}",
        r"\begin{tabular}{l" + "l" * (len(table.sparsities) + 1) + "}",
        r"\toprule",
        "method & " + " & ".join(_tex(c) for c in columns(table)) + r" \\",
        r"\midrule",
    ]
    for name, entries in row_entries(table):
        lines.append(_tex(name) + " & " + " & ".join(_tex_entry(c) for c in entries) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if pairings:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [_tex(sentence) + r"\\" for sentence in comparison_sentences(table, pairings)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _pairing_fields(pairing: Pairing | None) -> dict[str, object]:
    result = pairing.bootstrap if pairing is not None else None
    return {
        "paired_system": pairing.system if pairing else None,
        "paired_with": pairing.baseline if pairing else None,
        "paired_seeds": len(pairing.seeds) if pairing else None,
        "paired_difference_mean": pairing.mean if pairing else None,
        "bootstrap_difference": result.difference if result else None,
        "bootstrap_low": result.low if result else None,
        "bootstrap_high": result.high if result else None,
        "bootstrap_p": result.p if result else None,
        "bootstrap_verdict": result.verdict if result else None,
    }


def csv_rows(table: Table, pairings: list[Pairing]) -> list[dict[str, object]]:
    by_cell = {(p.sparsity, p.baseline if table.kind == "main" else p.system): p for p in pairings}
    rows = []
    entries = [(table.dense_name, table.dense_label, table.dense_label, 0.0, table.dense)]
    entries += [
        (row.name, row.label, row.method, sparsity, row.entries[sparsity])
        for row in table.rows
        for sparsity in table.sparsities
    ]
    for name, label, method, sparsity, entry in entries:
        rows.append(
            {
                "experiment": table.experiment,
                "table": table.kind,
                "row": name,
                "label": label,
                "method": method,
                "target_sparsity": sparsity,
                "budget": table.budget,
                "seeds_complete": len(entry.complete),
                "seeds": len(entry.runs),
                "test_wer_mean": entry.wer_mean,
                "test_wer_std": entry.wer_std,
                "relative_wer_change": entry.relative,
                **cell_values(entry),
                "best": entry.best,
                "missing": entry.missing_text(),
                **_pairing_fields(by_cell.get((sparsity, name))),
            }
        )
    return rows


def to_csv(tables: list[tuple[Table, list[Pairing]]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_fields(), lineterminator="\n")
    writer.writeheader()
    for table, pairings in tables:
        for row in csv_rows(table, pairings):
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue()
