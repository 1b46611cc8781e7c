"""Paired comparisons of a table's systems: seed-by-seed differences and the paired bootstrap.

Main table: the proposed method's seeds paired with those of every compared method
(`PAIRED_ROLES`) at each sparsity. Ablation table: every variant of the proposed method paired
with full CSP. Both pair the same way (`pair`): on the seeds complete in both, the test WER
differences per seed and, where the runs wrote per-utterance test records, the paired bootstrap
over utterances pooled over those seeds (`analysis.significance`). What is said of a pairing
is `analysis.verdicts`'.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from analysis.significance import Bootstrap, paired_bootstrap, pooled_system
from analysis.tables import Row, Table, role
from experiments.records import TEST_UTTERANCES, GridCell
from lightning_modules.pruning.registry import Role

PAIRED_ROLES = (Role.BASELINE, Role.FLOOR, Role.PEER)
"""The roles the proposed method is paired with: the pruning methods it competes with (a
control is a row of the table, not a competitor)."""


@dataclass
class Pairing:
    """One system against another at one target sparsity (and budget): the proposed method
    against a baseline, or an ablation variant against full CSP."""

    sparsity: float
    baseline: str | None  # the system compared with
    seeds: list[int]
    differences: list[float]  # the system's test WER − the baseline's, per seed
    system: str = ""
    at: str = ""  # where: `At target sparsity 0.9` (`, 400 steps per cell`)
    kind: str = "main"  # the table's: main or ablation
    bootstrap: Bootstrap | None = None
    bootstrap_note: str = ""  # why there is no bootstrap, when there is none
    best: bool = False  # the compared system has the lowest mean test WER at this sparsity
    missing: str = field(default="")  # who has no result, when nothing could be paired

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.differences) if self.differences else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.differences) if len(self.differences) >= 2 else None

    @property
    def wins(self) -> int:
        return sum(difference < 0 for difference in self.differences)


def bootstrap_runs(
    system: str, runs: list[GridCell], baseline: str, base_runs: list[GridCell]
) -> tuple[Bootstrap | None, str]:
    """The paired bootstrap of two systems' seeds, or why there is none."""
    paths = [run.directory / TEST_UTTERANCES for run in [*runs, *base_runs]]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        return None, f"no per-utterance test records ({missing[0]})"
    try:
        own = pooled_system(system, paths[: len(runs)])
        other = pooled_system(baseline, paths[len(runs) :])
        return paired_bootstrap(own, other), ""
    except ValueError as error:  # PairingError among them
        return None, str(error)


def pair(table: Table, sparsity: float, own: Row, other: Row) -> Pairing:
    """`own` against `other` at `sparsity`, on their shared complete seeds."""
    own_runs = {run.seed: run for run in own.entries[sparsity].complete}
    base_runs = {run.seed: run for run in other.entries[sparsity].complete}
    seeds = sorted(set(own_runs) & set(base_runs))
    pairing = Pairing(sparsity, other.name, seeds, [], own.name, table.where(sparsity), table.kind)
    if not seeds:
        return pairing
    pairing.differences = [
        own_runs[s].result.test_wer - base_runs[s].result.test_wer for s in seeds
    ]
    pairing.bootstrap, pairing.bootstrap_note = bootstrap_runs(
        own.name, [own_runs[s] for s in seeds], other.name, [base_runs[s] for s in seeds]
    )
    return pairing


def paired_comparison(table: Table) -> list[Pairing]:
    """Per sparsity: the proposed method paired with every compared method (`PAIRED_ROLES`)
    that has a result, the one with the lowest mean WER first (`best`)."""
    proposed = next(
        (
            row
            for row in table.rows
            if row.label == row.method and role(row.method) == Role.PROPOSED
        ),
        None,
    )
    compared = [
        row for row in table.rows if row.label == row.method and role(row.method) in PAIRED_ROLES
    ]
    if proposed is None or not compared:
        return []
    pairings = []
    for sparsity in table.sparsities:
        ranked = [(row.entries[sparsity].wer_mean, row) for row in compared]
        ranked = sorted(
            [(mean, row) for mean, row in ranked if mean is not None], key=lambda pair: pair[0]
        )
        if not ranked or not proposed.entries[sparsity].complete:
            missing = "every baseline" if proposed.entries[sparsity].complete else proposed.name
            pairings.append(
                Pairing(
                    sparsity,
                    None,
                    [],
                    [],
                    proposed.name,
                    table.where(sparsity),
                    table.kind,
                    missing=missing,
                )  # fmt: skip
            )
            continue
        for rank, (_, other) in enumerate(ranked):
            pairing = pair(table, sparsity, proposed, other)
            pairing.best = rank == 0
            pairings.append(pairing)
    return pairings


def ablation_comparison(table: Table) -> list[Pairing]:
    """Every ablation variant against full CSP (the row with the method's own label), per
    target sparsity, on their shared seeds: does taking the part out change the test WER?"""
    full = next((row for row in table.rows if row.label == row.method), None)
    if full is None:
        return []
    return [
        pair(table, sparsity, row, full)
        for row in table.rows
        if row is not full
        for sparsity in table.sparsities
    ]
