"""The tables written out: Markdown for reading, LaTeX for the paper, CSV for further work.

Markdown and LaTeX show one line per method, one column per target sparsity (0 is the dense
model); the best cell of each column is bold. The CSV is long: one row per method ×
sparsity, with every number unrounded.
"""

from __future__ import annotations

import csv
import io

from analysis.tables import Cell, Pairing, Table

LEGEND = (
    "Cells: test WER, mean ± standard deviation over seeds (relative change against the dense "
    "model); realized sparsity of the prunable tensors and packed size, both measured on the "
    "saved weights. Bold: the lowest mean test WER of the column."
)
CSV_FIELDS = (
    "experiment",
    "table",
    "row",
    "label",
    "method",
    "target_sparsity",
    "seeds_finished",
    "seeds",
    "test_wer_mean",
    "test_wer_std",
    "relative_wer_change",
    "realized_sparsity",
    "model_sparsity",
    "packed_bytes",
    "dense_bytes",
    "best",
    "missing",
)


def columns(table: Table) -> list[str]:
    return ["0 (dense)", *(f"{sparsity:g}" for sparsity in table.sparsities)]


def cell_text(cell: Cell | None) -> str:
    """One cell as plain text: the numbers, or why there are none."""
    if cell is None:
        return "—"
    if cell.wer_mean is None:
        return cell.missing_text()
    parts = [cell.wer_text() + (f" ({cell.relative_text()})" if cell.relative_text() else "")]
    parts += [text for text in (cell.detail_text(), cell.seeds_text()) if text]
    return "; ".join(parts)


def row_cells(table: Table) -> list[tuple[str, list[Cell | None]]]:
    """(row name, cells in column order), the dense row first."""
    dense = [table.dense] + [None] * len(table.sparsities)
    rows = [("Dense", dense)]
    rows += [(row.name, [None, *(row.cells[s] for s in table.sparsities)]) for row in table.rows]
    return rows


def to_markdown(table: Table, pairings: list[Pairing]) -> str:
    def text(cell: Cell | None) -> str:
        value = cell_text(cell).replace("|", "\\|")
        return f"**{value}**" if cell is not None and cell.best else value

    lines = [f"## {table.title}", "", LEGEND, ""]
    lines.append("| method | " + " | ".join(columns(table)) + " |")
    lines.append("|---" * (len(table.sparsities) + 2) + "|")
    for name, cells in row_cells(table):
        lines.append(f"| {name} | " + " | ".join(text(cell) for cell in cells) + " |")
    if pairings:
        lines += ["", "### CSP against the best baseline", ""]
        lines.append(
            "| target sparsity | best baseline | seeds | CSP − baseline test WER | CSP wins |"
        )
        lines.append("|---|---|---|---|---|")
        for pairing in pairings:
            lines.append(
                f"| {pairing.sparsity:g} | {pairing.baseline or '—'} | {len(pairing.seeds)} | "
                f"{difference_text(pairing)} | {pairing.wins}/{len(pairing.seeds)} |"
            )
        lines += [""] + [f"- {pairing.verdict}" for pairing in pairings]
    return "\n".join(lines) + "\n"


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


def _tex_cell(cell: Cell | None) -> str:
    """WER and relative change on the first line, sparsity and size on the second."""
    if cell is None:
        return "---"
    if cell.wer_mean is None:
        return r"\emph{" + _tex(cell.missing_text()) + "}"
    wer = _tex(cell.wer_text()) + (f" ({_tex(cell.relative_text())})" if cell.relative else "")
    if cell.best:
        wer = r"\textbf{" + wer + "}"
    extra = [_tex(text) for text in (cell.detail_text(), cell.seeds_text()) if text]
    return r"\makecell[l]{" + r"\\ ".join([wer, *(r"\scriptsize " + e for e in extra)]) + "}"


def to_latex(table: Table, pairings: list[Pairing]) -> str:
    """A booktabs table (needs \\usepackage{booktabs,makecell})."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _tex(table.title) + ". " + _tex(LEGEND) + "}",
        r"\begin{tabular}{l" + "l" * (len(table.sparsities) + 1) + "}",
        r"\toprule",
        "method & " + " & ".join(_tex(c) for c in columns(table)) + r" \\",
        r"\midrule",
    ]
    for name, cells in row_cells(table):
        lines.append(_tex(name) + " & " + " & ".join(_tex_cell(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if pairings:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [_tex(pairing.verdict) + r"\\" for pairing in pairings]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def csv_rows(table: Table) -> list[dict[str, object]]:
    rows = []
    entries = [("Dense", "dense", "dense", 0.0, table.dense)]
    entries += [
        (row.name, row.label, row.method, sparsity, row.cells[sparsity])
        for row in table.rows
        for sparsity in table.sparsities
    ]
    for name, label, method, sparsity, cell in entries:
        rows.append(
            {
                "experiment": table.experiment,
                "table": table.kind,
                "row": name,
                "label": label,
                "method": method,
                "target_sparsity": sparsity,
                "seeds_finished": len(cell.finished),
                "seeds": len(cell.runs),
                "test_wer_mean": cell.wer_mean,
                "test_wer_std": cell.wer_std,
                "relative_wer_change": cell.relative,
                "realized_sparsity": cell.mean_of("realized_sparsity"),
                "model_sparsity": cell.mean_of("model_sparsity"),
                "packed_bytes": cell.mean_of("packed_bytes"),
                "dense_bytes": cell.mean_of("dense_bytes"),
                "best": cell.best,
                "missing": cell.missing_text(),
            }
        )
    return rows


def to_csv(tables: list[Table]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for table in tables:
        for row in csv_rows(table):
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue()
