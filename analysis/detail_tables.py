"""What a reader asks after the main table, as plain tables: test WER by condition, engine
and voice (`analysis.breakdown`), and how much the methods' masks overlap
(`analysis.mask_overlap`). Each is a `TextTable` of text cells that the Markdown and HTML writers
render alike; the CSV files hold every number unrounded.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from analysis.breakdown import Breakdown, hurt_most
from analysis.mask_overlap import Overlap

BREAKDOWN_LEGEND = (
    "Test WER per group (seeds pooled: errors over reference words); the column head gives "
    "the group's test utterances."
)
GROUP_NOTES = {
    "condition": " Conditions are the corpus's: clean, additive noise, reverberation, or both.",
    "engine": " Engines are the TTS engines of the test voices (held out from training).",
    "test set": " Test sets are the test split's parts (LibriSpeech's test-clean, test-other).",
}
VOICE_LEGEND = (
    "Test voices, the ones pruning hurts most first (mean WER increase over dense of the "
    "methods at the highest target sparsity). Per target sparsity: the mean increase over "
    "the methods and the method that lost most."
)
OVERLAP_LEGEND = (
    "Jaccard overlap |A ∩ B| / |A ∪ B| of the weights two methods kept, read from the saved "
    "weights, pooled over prunable tensors and shared seeds; in brackets the overlap two "
    "independent random masks of the same kept fractions would have. Per tensor in "
    "mask_overlap.csv."
)


@dataclass
class TextTable:
    title: str
    legend: str
    header: list[str]
    rows: list[list[str]]


def _wer(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def breakdown_grid(breakdown: Breakdown, experiment: str) -> TextTable:
    """Conditions and engines: a row per system, a column per group."""
    header = ["system", *(f"{g} ({breakdown.utterances[g]})" for g in breakdown.groups)]
    rows = [
        [system.title, *(_wer(breakdown.wer(system, group)) for group in breakdown.groups)]
        for system in breakdown.systems
    ]
    title = f"{experiment}: test WER by {breakdown.grouping}"
    legend = BREAKDOWN_LEGEND + GROUP_NOTES.get(breakdown.grouping, "")
    return TextTable(title, legend, header, rows)


def voice_grid(breakdown: Breakdown, experiment: str) -> TextTable:
    """Voices: a row per voice, worst hurt first; dense WER and per sparsity the damage."""
    sparsities = sorted({s.sparsity for s in breakdown.systems if s.sparsity > 0})
    header = ["voice", "utterances", "Dense"]
    for sparsity in sparsities:
        header += [f"mean Δ @ {sparsity:g}", f"most hurt @ {sparsity:g}"]
    rows = []
    order = hurt_most(breakdown, sparsities[-1]) if sparsities else breakdown.groups
    for group in order:
        dense = breakdown.wer(breakdown.systems[0], group)
        row = [group, str(breakdown.utterances[group]), _wer(dense)]
        for sparsity in sparsities:
            damage = breakdown.damage(group, sparsity)
            row.append(f"{sum(damage) / len(damage):+.3f}" if damage else "—")
            row.append(_worst(breakdown, group, sparsity))
        rows.append(row)
    return TextTable(f"{experiment}: test WER by voice", VOICE_LEGEND, header, rows)


def _worst(breakdown: Breakdown, group: str, sparsity: float) -> str:
    dense = breakdown.wer(breakdown.systems[0], group)
    scored = [
        (wer, system.name)
        for system in breakdown.systems
        if system.sparsity == sparsity and (wer := breakdown.wer(system, group)) is not None
    ]
    if not scored or dense is None:
        return "—"
    wer, name = max(scored)
    return f"{name} ({wer - dense:+.3f})"


def overlap_grids(overlaps: list[Overlap], experiment: str) -> list[TextTable]:
    """Per target sparsity, a symmetric matrix of the methods' pooled overlap."""
    grids = []
    for sparsity in sorted({o.sparsity for o in overlaps}):
        here = [o for o in overlaps if o.sparsity == sparsity]
        names = list(dict.fromkeys([n for o in here for n in (o.a, o.b)]))
        pairs = {(o.a, o.b): o for o in here} | {(o.b, o.a): o for o in here}
        rows = []
        for a in names:
            cells = [a]
            for b in names:
                found = pairs.get((a, b))
                if a == b:
                    cells.append("1")
                elif found is None:
                    cells.append("—")
                else:
                    cells.append(f"{found.jaccard():.3f} ({found.chance():.3f})")
            rows.append(cells)
        title = f"{experiment}: overlap of the kept weights at target sparsity {sparsity:g}"
        grids.append(TextTable(title, OVERLAP_LEGEND, ["method", *names], rows))
    return grids


def grid_markdown(grid: TextTable) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [f"## {grid.title}", "", grid.legend, "", line(grid.header)]
    lines.append("|---" * len(grid.header) + "|")
    lines += [line(row) for row in grid.rows]
    return "\n".join(lines) + "\n"


def _csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue()


def breakdown_csv(breakdowns: dict[str, list[Breakdown]]) -> str:
    """experiment, grouping, group, system, sparsity, seeds, utterances, errors, words, wer."""
    header = ["experiment", "grouping", "group", "system", "target_sparsity", "seeds"]
    header += ["utterances", "errors", "words", "wer"]
    rows = [
        [experiment, breakdown.grouping, group, system.name, system.sparsity, system.seeds]
        + [breakdown.utterances[group], *breakdown.counts.get((system.title, group), (0, 0))]
        + [breakdown.wer(system, group)]
        for experiment, found in breakdowns.items()
        for breakdown in found
        for system in breakdown.systems
        for group in breakdown.groups
    ]
    return _csv(header, rows)


def overlap_csv(overlaps: dict[str, list[Overlap]]) -> str:
    """One row per experiment × sparsity × pair × tensor, and `all` for the pooled value."""
    header = ["experiment", "target_sparsity", "a", "b", "seeds", "tensor"]
    header += ["intersection", "union", "jaccard", "chance_jaccard"]
    rows = []
    for experiment, found in overlaps.items():
        for o in found:
            for tensor in [None, *o.tensors]:
                names = [tensor] if tensor else o.tensors
                rows.append(
                    [experiment, o.sparsity, o.a, o.b, len(o.seeds), tensor or "all"]
                    + [sum(o.intersection[n] for n in names), sum(o.union[n] for n in names)]
                    + [o.jaccard(tensor), o.chance(tensor)]
                )
    return _csv(header, rows)
