"""The paper's tables from an experiment: test WER per method × target sparsity (at each budget
of a grid with a budget axis), and the ablation of CSP's parts. The table model only: how
its systems are paired is `analysis.pairings`', what is said of them `analysis.verdicts`'.

A entry aggregates the seeds of one method at one target sparsity: test WER mean ± sample
standard deviation over the finished seeds, the relative change against the dense model, and
the realized sparsity and packed size that `result.json` recorded from the saved weights
(`csp audit`), never from the config. Seeds that did not finish are listed with their reason.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from analysis.experiment import Experiment
from experiments.dense_control import DenseControl
from experiments.records import GridCell
from experiments.reproduce import TUNED_BY
from lightning_modules.pruning.registry import Role, ordered, registered


def method_title(method: str) -> str:
    """A method's (or control's) display title, from its class; its name if it is not
    registered here."""
    cls = registered(method)
    return cls.title if cls is not None else method


def role(method: str) -> Role | None:
    cls = registered(method)
    return cls.role if cls is not None else None


def order(method: str) -> int:
    """The paper table's order: baselines, floor, peers, then the proposed method."""
    names = [cls.name for cls in ordered()]
    return names.index(method) if method in names else len(names)


def methods_legend(table: Table) -> str:
    """Each registered method (and control) of the table's rows with its source (and, for
    Lightning's ModelPruning, the defaults it runs with)."""
    found = [registered(row.method) for row in table.rows]
    classes = list(dict.fromkeys(cls for cls in found if cls is not None))
    return "Methods: " + "; ".join(f"{cls.title}: {cls.citation}" for cls in classes) + "."


def variant_name(label: str, method: str, options: dict, base: dict | None = None) -> str:
    """The row name: the method's table name, and for a labelled variant what it changes
    against `base` (the grid's entry of the method itself, e.g. tuned CSP for an ablation
    variant of it; none: against the method's defaults)."""
    name = method_title(method)
    if label == method:
        return name
    base = base or {}
    phrases = getattr(registered(method), "option_phrases", {})
    changes = [
        phrases.get((key, value), f"{key} = {value}")
        if not isinstance(value, dict)
        else f"{key} = {value}"
        for key, value in options.items()
        if key != TUNED_BY and base.get(key) != value
    ]
    return f"{name}: {', '.join(changes)}" if changes else f"{name} ({label})"


def variant_names(variants: list[tuple[str, str, dict]]) -> dict[str, str]:
    """Label → row name of every entry of a grid (`variant_name`, each variant against the
    entry of its method when the grid has one)."""
    entries = {label: options for label, method, options in variants if label == method}
    return {
        label: variant_name(label, method, options, entries.get(method))
        for label, method, options in variants
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Entry:
    """One method at one target sparsity, over its seeds."""

    runs: list[GridCell]
    dense_wer: float | None
    best: bool = False

    @property
    def complete(self) -> list[GridCell]:
        return [run for run in self.runs if run.status == "complete"]

    def values(self, key: str) -> list[float]:
        """The complete seeds' values of one result field (those that recorded it)."""
        values = [getattr(run.result, key) for run in self.complete if run.result is not None]
        return [value for value in values if value is not None]

    @property
    def wer_mean(self) -> float | None:
        return _mean(self.values("test_wer"))

    @property
    def wer_std(self) -> float | None:
        values = self.values("test_wer")
        return statistics.stdev(values) if len(values) >= 2 else None

    @property
    def relative(self) -> float | None:
        """(WER − dense WER) / dense WER, from the means."""
        mean = self.wer_mean
        if mean is None or not self.dense_wer:
            return None
        return (mean - self.dense_wer) / self.dense_wer

    def mean_of(self, key: str) -> float | None:
        return _mean(self.values(key))

    @property
    def problems(self) -> list[GridCell]:
        return [run for run in self.runs if run.status != "complete"]

    def missing_text(self) -> str:
        """Why the entry has no value: the reason of each seed that has none."""
        reasons = [
            ("" if run.status in ("failed", "diverged") else "missing: ")
            + run.note
            + (f" (seed {run.seed})" if len(self.runs) > 1 else "")
            for run in self.problems
        ]
        return "; ".join(dict.fromkeys(reasons))

    def wer_text(self) -> str:
        mean, std = self.wer_mean, self.wer_std
        if mean is None:
            return ""
        return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"

    def relative_text(self) -> str:
        return "" if self.relative is None else f"{self.relative:+.1%}"

    def wer_by_part(self) -> dict[str, float]:
        """Mean test WER of each part of the test split (LibriSpeech's test-clean and
        test-other) over the seeds that recorded it; empty for a test split of one part."""
        found: dict[str, list[float]] = {}
        for by_part in self.values("test_wer_by_part"):
            for part, wer in by_part.items():
                found.setdefault(part, []).append(wer)
        return {part: statistics.mean(wers) for part, wers in sorted(found.items())}

    def seeds_text(self) -> str:
        """`2/3 seeds` when some seeds are missing, else empty."""
        if not self.problems or not self.complete:
            return ""
        return f"{len(self.complete)}/{len(self.runs)} seeds; " + self.missing_text()


@dataclass
class Row:
    name: str
    label: str
    method: str
    entries: dict[float, Entry]


@dataclass
class Table:
    """Rows of methods, columns of target sparsities (0 is the dense model's column), at one
    budget of a grid with a budget axis: its dense column is then the dense control of that
    budget, the reference of every relative change."""

    title: str
    experiment: str
    kind: str  # main or ablation
    sparsities: list[float]
    dense: Entry
    rows: list[Row] = field(default_factory=list)
    budget: int | None = None
    dense_name: str = "Dense"
    dense_label: str = "dense"  # the dense column's label (the control's at a budget)

    def where(self, sparsity: float) -> str:
        """`At target sparsity 0.9` (`, 400 steps per cell` at a budget)."""
        at = f"At target sparsity {sparsity:g}"
        return at if self.budget is None else f"{at}, {self.budget:,} steps per cell"


def budget_note(budget: int | None) -> str:
    """What a table's title adds at a budget."""
    return "" if budget is None else f", {budget:,} steps per cell"


def _rows(
    experiment: Experiment, labels: list[tuple[str, str, dict]], dense_wer, budget: int | None
) -> list[Row]:
    """A row per entry of `labels`; at a budget, only the entries that budget runs."""
    rows = []
    names = variant_names(experiment.variants)
    cells = experiment.at_budget(budget)
    here = {run.label for run in cells}
    for label, method, _ in labels:
        if budget is not None and label not in here:
            continue
        entries = {
            sparsity: Entry(
                [r for r in cells if r.label == label and r.target_sparsity == sparsity],
                dense_wer,
            )
            for sparsity in experiment.sparsities
        }
        rows.append(Row(names[label], label, method, entries))
    for sparsity in experiment.sparsities:  # best: the lowest mean test WER in the column
        means = [(row.entries[sparsity].wer_mean, row) for row in rows]
        known = [mean for mean, _ in means if mean is not None]
        for mean, row in means:
            row.entries[sparsity].best = mean is not None and mean == min(known)
    return rows


def _with_reference(table: Table, experiment: Experiment) -> Table:
    """`table` with the dense entry its relative changes are measured against: the dense
    model, or at a budget the dense control trained on for it (no change against itself)."""
    if table.budget is None:
        table.dense = Entry([experiment.dense], None)
        return table
    cells = experiment.at_budget(table.budget)
    table.dense = Entry([run for run in cells if run.label == DenseControl.name], None)
    table.dense_name = f"{DenseControl.title} ({table.budget:,} steps)"
    table.dense_label = DenseControl.name
    return table


def main_table(experiment: Experiment, budget: int | None = None) -> Table:
    """Every method of the grid at one budget (plain methods in the paper's order, then
    variants of the other methods; variants of the proposed method go to the ablation
    table)."""
    entries = [
        v
        for v in experiment.variants
        if (v[0] == v[1] or role(v[1]) != Role.PROPOSED) and v[0] != DenseControl.name
    ]
    entries.sort(key=lambda v: (v[0] != v[1], order(v[1])))
    title = f"{experiment.name}: test WER by method and target sparsity{budget_note(budget)}"
    table = Table(title, experiment.name, "main", experiment.sparsities, Entry([], None))
    table.budget = budget
    table = _with_reference(table, experiment)
    table.rows = _rows(experiment, entries, table.dense.wer_mean, budget)
    return table


def main_tables(experiment: Experiment) -> list[Table]:
    """The main table at every budget of the grid, shortest first (one without the axis)."""
    return [main_table(experiment, budget) for budget in experiment.budgets]


def ablation_table(experiment: Experiment, budget: int | None = None) -> Table | None:
    """The proposed method and its labelled variants, when the grid has any: which part
    earns its keep."""
    entries = [v for v in experiment.variants if role(v[1]) == Role.PROPOSED]
    if len(entries) < 2:
        return None
    title = (
        f"{experiment.name}: ablation of {method_title(entries[0][1])}'s parts (test WER)"
        f"{budget_note(budget)}"
    )
    table = Table(title, experiment.name, "ablation", experiment.sparsities, Entry([], None))
    table.budget = budget
    table = _with_reference(table, experiment)
    table.rows = _rows(experiment, entries, table.dense.wer_mean, budget)
    return table
