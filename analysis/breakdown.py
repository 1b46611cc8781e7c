"""Test WER broken down by recording condition, TTS engine, test voice and test set: which
conditions, voices and test sets pruning hurts.

Read from the per-utterance test records every run writes (`test_utterances.jsonl`, the
lines `csp evaluate` writes too), whose fields carry the corpus metadata of each utterance
(`augmentation`, `engine`, `voice`; `part` for LibriSpeech). A system is the dense model or
one method at one target sparsity, its seeds pooled (errors and reference words summed over
seeds), so a group's WER is the same word-weighted WER as the table's. Corpora without a
field (a user's LibriSpeech has no `augmentation`) put its utterances in the group
`unknown`; a grouping with fewer than two groups is not shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.tables import Table
from experiments.records import TEST_UTTERANCES, GridCell, UtteranceRecord, read_utterance_records

GROUPINGS: dict[str, tuple[str, ...]] = {
    "condition": ("augmentation",),  # clean (none) / noise / reverb / noise+reverb
    "engine": ("engine",),
    "voice": ("engine", "voice"),
    "test set": ("part",),  # LibriSpeech's test-clean, test-other (synthetic corpora: none)
}
UNKNOWN = "unknown"
CLEAN = {"none": "clean"}


@dataclass(frozen=True)
class BreakdownColumn:
    """A column of the breakdown: the dense model or a method at a target sparsity."""

    name: str
    sparsity: float  # 0 for the dense model
    seeds: int

    @property
    def title(self) -> str:
        return self.name if self.sparsity == 0 else f"{self.name} @ {self.sparsity:g}"


@dataclass
class Breakdown:
    """Errors and reference words of each system in each group of one grouping."""

    grouping: str
    systems: list[BreakdownColumn]
    groups: list[str]
    utterances: dict[str, int]  # group → utterances in it (per seed)
    counts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def wer(self, system: BreakdownColumn, group: str) -> float | None:
        errors, words = self.counts.get((system.title, group), (0, 0))
        return errors / words if words else None

    def damage(self, group: str, sparsity: float) -> list[float]:
        """WER − dense WER in `group` of every system at `sparsity`."""
        dense = self.wer(self.systems[0], group)
        values = [self.wer(s, group) for s in self.systems if s.sparsity == sparsity]
        return [v - dense for v in values if v is not None and dense is not None]


def _group(record: UtteranceRecord, keys: tuple[str, ...]) -> str:
    values = [str(record.meta.get(key) or UNKNOWN) for key in keys]
    return "/".join(CLEAN.get(value, value) for value in values)


def _systems(tables: list[Table]) -> list[tuple[BreakdownColumn, list[GridCell]]]:
    """Dense first, then each row at each sparsity (rows shown in two tables only once)."""
    dense = tables[0].dense.complete
    found = [(BreakdownColumn("Dense", 0.0, len(dense)), dense)]
    seen = set()
    for table in tables:
        for sparsity in table.sparsities:
            for row in table.rows:
                runs = row.entries[sparsity].complete
                if not runs or (row.label in seen and table is not tables[0]):
                    continue
                found.append((BreakdownColumn(row.name, sparsity, len(runs)), runs))
        seen |= {row.label for row in table.rows}
    return found


def group_counts(records: list[UtteranceRecord], grouping: str) -> dict[str, tuple[int, int, int]]:
    """Errors, reference words and utterances of per-utterance records in each group of
    `grouping` (a key of `GROUPINGS`)."""
    counts: dict[str, tuple[int, int, int]] = {}
    for record in records:
        group = _group(record, GROUPINGS[grouping])
        errors, words, utterances = counts.get(group, (0, 0, 0))
        counts[group] = (errors + record.errors, words + record.words, utterances + 1)
    return counts


def wer_by(records: list[UtteranceRecord], grouping: str) -> dict[str, float]:
    """Word-weighted WER of per-utterance records in each group of `grouping`."""
    return {
        group: errors / words
        for group, (errors, words, _) in sorted(group_counts(records, grouping).items())
        if words
    }


def breakdowns(tables: list[Table]) -> tuple[list[Breakdown], str]:
    """Per grouping, the systems' WER per group; or no breakdowns and why."""
    systems = []
    for system, runs in _systems(tables):
        paths = [run.directory / TEST_UTTERANCES for run in runs]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            return [], f"no per-utterance test records ({missing[0]})"
        records = [record for path in paths for record in read_utterance_records(path)]
        systems.append((system, records))
    if not systems or not systems[0][1]:
        return [], "the dense model has no per-utterance test records"
    found = []
    for grouping in GROUPINGS:
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        utterances: dict[str, int] = {}
        for system, records in systems:
            for group, (errors, words, spoken) in group_counts(records, grouping).items():
                counts[system.title, group] = (errors, words)
                if system.sparsity == 0:
                    utterances[group] = spoken
        groups = sorted(utterances)
        if len(groups) < 2:
            continue  # the corpus does not record this field, or has one value of it
        columns = [system for system, _ in systems]
        found.append(Breakdown(grouping, columns, groups, utterances, counts))
    return found, ""


def hurt_most(breakdown: Breakdown, sparsity: float) -> list[str]:
    """The groups ordered by the mean damage of the methods at `sparsity`, worst first."""

    def mean_damage(group: str) -> float:
        values = breakdown.damage(group, sparsity)
        return sum(values) / len(values) if values else float("-inf")

    return sorted(breakdown.groups, key=mean_damage, reverse=True)
