"""The comparison as a function of budget: a grid with a budget axis read per sparsity.

A budget curve holds, at one target sparsity, every method's entry at each budget (test WER
over seeds, relative change against the dense control of that budget), the dense control's
entry at each budget and the original dense model as the 0-step point. From the main table
of each budget (`analysis.tables.main_tables`) it takes the entries and the paired
comparisons, so a number here is the number of that budget's table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.detail_tables import TextTable
from analysis.experiment import Experiment
from analysis.pairings import Pairing, paired_comparison
from analysis.significance import ALPHA
from analysis.tables import Entry, Table, main_tables
from analysis.verdicts import bootstrap_text, verdict_word
from experiments.dense_control import DenseControl


@dataclass
class BudgetLine:
    """One row of the main tables (a method, or the dense control) across budgets."""

    name: str
    label: str
    points: dict[int, Entry] = field(default_factory=dict)  # budget → entry


@dataclass
class BudgetCurve:
    """Test WER against cell budget at one target sparsity."""

    experiment: str
    sparsity: float
    budgets: list[int]
    dense: Entry  # the original dense model: the 0-step point
    control: BudgetLine
    lines: list[BudgetLine]
    pairings: dict[int, list[Pairing]]  # budget → the proposed method against each method


def budget_curves(experiment: Experiment) -> list[BudgetCurve]:
    """One curve per target sparsity of a grid with a budget axis; none without one."""
    if experiment.budgets == [None]:
        return []
    tables: list[Table] = main_tables(experiment)
    pairings = {table.budget: paired_comparison(table) for table in tables}
    curves = []
    for sparsity in experiment.sparsities:
        control = BudgetLine(DenseControl.title, DenseControl.name)
        lines: dict[str, BudgetLine] = {}
        for table in tables:
            control.points[table.budget] = table.dense
            for row in table.rows:
                line = lines.setdefault(row.label, BudgetLine(row.name, row.label))
                if row.entries[sparsity].runs:  # a method a budget leaves out has no point
                    line.points[table.budget] = row.entries[sparsity]
        curves.append(
            BudgetCurve(
                experiment.name,
                sparsity,
                [table.budget for table in tables],
                Entry([experiment.dense], None),
                control,
                [line for line in lines.values() if line.points],
                {
                    budget: [p for p in found if p.sparsity == sparsity]
                    for budget, found in pairings.items()
                },
            )
        )
    return curves


def ended_budgets(curve: BudgetCurve) -> list[int]:
    """The budgets at which some method has a complete cell."""
    return [
        budget
        for budget in curve.budgets
        if any(line.points.get(budget) and line.points[budget].complete for line in curve.lines)
    ]


def wall_s(entry: Entry) -> float | None:
    """Mean training wall time of the entry's complete seeds (`train_wall_s`)."""
    return entry.mean_of("train_wall_s")


def point_text(entry: Entry | None) -> str:
    """`0.421 ± 0.013 (+12.0%), 2 seeds, 270 s`: WER, change against the control, seeds,
    training wall time."""
    if entry is None or not entry.runs:
        return "—"
    if entry.wer_mean is None:
        return entry.missing_text()
    parts = [entry.wer_text() + (f" ({entry.relative_text()})" if entry.relative_text() else "")]
    parts.append(f"{len(entry.complete)} seed{'s' if len(entry.complete) > 1 else ''}")
    seconds = wall_s(entry)
    if seconds is not None:
        parts.append(f"{seconds:,.0f} s")
    return ", ".join(parts)


def budget_grids(curve: BudgetCurve) -> list[TextTable]:
    """Test WER by method and budget (the dense control's row is each column's reference),
    then the proposed method's paired bootstrap against each method at each budget."""
    header = ["method", *(f"{budget:,} steps" for budget in curve.budgets)]
    at = f"{curve.experiment}: test WER against cell budget, target sparsity {curve.sparsity:g}"
    legend = (
        "Mean ± std over seeds (relative change against the dense control of the same "
        "budget: the dense model trained on for those steps, no pruning), complete seeds, "
        "mean training wall time per cell. The dense model the cells start from (0 steps): "
        f"test WER {curve.dense.wer_text() or '—'}."
    )
    rows = [
        [line.name, *(point_text(line.points.get(budget)) for budget in curve.budgets)]
        for line in [curve.control, *curve.lines]
    ]
    grids = [TextTable(at, legend, header, rows)]
    verdicts = verdict_rows(curve)
    if verdicts:
        system = next((p.system for found in curve.pairings.values() for p in found), "")
        grids.append(
            TextTable(
                f"{curve.experiment}: {system} against each method by budget, target sparsity "
                f"{curve.sparsity:g}",
                f"Paired bootstrap over test utterances pooled over the shared seeds: Δ = "
                f"{system}'s test WER minus the other's [95 % CI], p; wins / loses / ties at "
                f"p < {ALPHA:g}.",
                ["compared with", *header[1:]],
                [[name, *cells] for name, cells in verdicts.items()],
            )
        )
    return grids


def verdict_rows(curve: BudgetCurve) -> dict[str, list[str]]:
    """Compared method → a cell per budget: `loses: +0.081 [+0.06, +0.10], p < 0.0001`."""
    names = list(
        dict.fromkeys(p.baseline for found in curve.pairings.values() for p in found if p.baseline)
    )
    rows = {}
    for name in names:
        cells = []
        for budget in curve.budgets:
            pairing = next((p for p in curve.pairings[budget] if p.baseline == name), None)
            if pairing is None or pairing.bootstrap is None:  # untested: say why
                cells.append("—" if pairing is None else pairing.bootstrap_note or "—")
            else:
                cells.append(f"{verdict_word(pairing)}: {bootstrap_text(pairing.bootstrap)}")
        rows[name] = cells
    return rows


def budget_records(curve: BudgetCurve) -> list[dict[str, object]]:
    """The figure's data, one record per run: who, budget, seed, test WER (configured
    decoding and greedy), realized sparsity, settled flag, training wall time, and the
    change against the mean of the dense control at the same budget."""
    records = []
    reference = {budget: entry.wer_mean for budget, entry in curve.control.points.items()}
    for line in [curve.control, *curve.lines]:
        for budget, entry in line.points.items():
            for run in entry.runs:
                result = run.result if run.status == "complete" else None
                wer = result.test_wer if result is not None else None
                control = reference.get(budget)
                records.append(
                    {
                        "label": line.label,
                        "name": line.name,
                        "target_sparsity": curve.sparsity if line is not curve.control else 0.0,
                        "budget": budget,
                        "seed": run.seed,
                        "status": run.status,
                        "test_wer": wer,
                        "test_wer_greedy": result.test_wer_greedy if result else None,
                        "realized_sparsity": result.realized_sparsity if result else None,
                        "train_wall_s": result.train_wall_s if result else None,
                        "relative_to_control": (wer - control) / control
                        if wer is not None and control
                        else None,
                    }
                )
    return records
