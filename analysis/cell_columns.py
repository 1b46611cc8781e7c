"""The numbers a table cell shows under its test WER, declared once.

Each `CellColumn` says what it reads from an entry's runs (`values`, unrounded, one CSV field
each), how it reads in a cell (`text`, empty when the entry lacks it) and what the legend says
about it. The Markdown, LaTeX and HTML tables, the CSV and the legend are all built from
`CELL_COLUMNS`, in its order: adding a number to every cell is its `RunResult` field and one
entry here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from analysis.tables import Entry, role
from lightning_modules.pruning.registry import Role


@dataclass(frozen=True)
class CellColumn:
    """One number (or a few read together) of every table cell."""

    fields: tuple[str, ...]
    """Its CSV fields, in order."""
    values: Callable[[Entry], dict[str, object]]
    """Entry → {CSV field: value}; None where the entry's runs did not record it."""
    text: Callable[[Entry], str]
    """Entry → its words in the cell, or "" to show nothing."""
    legend: str
    """What the table legend says about it."""


def mean_column(field: str, csv_field: str, text: str, legend: str) -> CellColumn:
    """A column showing the mean over seeds of one `RunResult` field, e.g.
    `mean_column("real_wer", "real_wer_mean", "real speech {:.3f}", "WER on real speech")`."""

    def shown(entry: Entry) -> str:
        value = entry.mean_of(field)
        return "" if value is None else text.format(value)

    return CellColumn((csv_field,), lambda entry: {csv_field: entry.mean_of(field)}, shown, legend)


def _parts_text(entry: Entry) -> str:
    return ", ".join(f"{part} {wer:.3f}" for part, wer in entry.wer_by_part().items())


def _parts_values(entry: Entry) -> dict[str, object]:
    by_part = entry.wer_by_part()
    return {"test_wer_by_part": json.dumps(by_part) if by_part else ""}


def _greedy_text(entry: Entry) -> str:
    """Greedy test WER (the acoustic model alone) when the runs decoded otherwise."""
    greedy = entry.mean_of("test_wer_greedy")
    return "" if greedy is None or greedy == entry.wer_mean else f"greedy {greedy:.3f}"


SAVED_WEIGHTS_FIELDS = (
    "realized_sparsity", "model_sparsity", "packed_bytes", "dense_bytes", "decode_speedup",
)  # fmt: skip


def _saved_weights_text(entry: Entry) -> str:
    """Realized sparsity, packed size and measured decoding speed-up, from the saved weights;
    for a control (a dense model of the pruned one's size), its weight count."""
    if entry.runs and role(entry.runs[0].method) == Role.CONTROL:
        params = entry.mean_of("params")
        return f"dense, {params / 1000:.1f} k weights" if params else ""
    realized, packed = entry.mean_of("realized_sparsity"), entry.mean_of("packed_bytes")
    dense = entry.mean_of("dense_bytes")
    if realized is None or packed is None or not dense:
        return ""
    speedup = entry.mean_of("decode_speedup")
    faster = "" if speedup is None else f", decoding {speedup:.2f}× dense"
    size = f"{packed / 1000:.1f} kB ({packed / dense:.0%} of dense)"
    return f"sparsity {realized:.3f}, {size}{faster}"


CELL_COLUMNS: list[CellColumn] = [
    CellColumn(
        ("test_wer_by_part",),
        _parts_values,
        _parts_text,
        "the test WER of each test set where the test split holds several (LibriSpeech's "
        "test-clean and test-other)",
    ),
    CellColumn(
        ("test_wer_greedy_mean",),
        lambda entry: {"test_wer_greedy_mean": entry.mean_of("test_wer_greedy")},
        _greedy_text,
        "greedy test WER (the acoustic model alone) where the decoding is not greedy",
    ),
    CellColumn(
        SAVED_WEIGHTS_FIELDS,
        lambda entry: {field: entry.mean_of(field) for field in SAVED_WEIGHTS_FIELDS},
        _saved_weights_text,
        "realized sparsity of the prunable tensors and packed size, both measured on the "
        "saved weights, and the speed-up of greedy decoding at batch 1 against the dense "
        "model where the runs measured it",
    ),
    mean_column(
        "real_wer",
        "real_wer_mean",
        "real speech {:.3f}",
        "WER on real human speech where the runs scored it (out of domain: the corpus voices "
        "are synthetic)",
    ),
]
"""Every cell's numbers after its test WER, in the order a cell shows them."""


def legend() -> str:
    """The table legend: the test WER, then what each column shows."""
    shown = "; ".join(column.legend for column in CELL_COLUMNS)
    return (
        "Cells: test WER with the configured decoding, mean ± standard deviation over seeds "
        f"(relative change against the dense model); {shown}. Bold: the lowest mean test WER "
        "of the column."
    )


def cell_texts(entry: Entry) -> list[str]:
    """What a cell shows under its WER, in column order (the empty ones left out), then the
    seeds that are missing."""
    texts = [column.text(entry) for column in CELL_COLUMNS]
    return [text for text in [*texts, entry.seeds_text()] if text]


def cell_fields() -> list[str]:
    """The CSV fields of every column, in order."""
    return [field for column in CELL_COLUMNS for field in column.fields]


def cell_values(entry: Entry) -> dict[str, object]:
    """Every column's CSV values for one entry."""
    return {key: value for column in CELL_COLUMNS for key, value in column.values(entry).items()}
