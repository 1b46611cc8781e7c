"""The paper's tables from an experiment: test WER per method × target sparsity, CSP paired
against each baseline, and the ablation of CSP's parts, each variant paired against full
CSP. A pairing gives the seed-by-seed differences and, where the runs wrote per-utterance
test records, the paired bootstrap over utterances pooled over seeds (`analysis.significance`).

A entry aggregates the seeds of one method at one target sparsity: test WER mean ± sample
standard deviation over the finished seeds, the relative change against the dense model, and
the realized sparsity and packed size that `result.json` recorded from the saved weights
(`csp audit`), never from the config. Seeds that did not finish are listed with their reason.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from analysis.experiment import Experiment, Run
from analysis.significance import ALPHA, Bootstrap, paired_bootstrap, pooled_system
from experiments.records import TEST_UTTERANCES
from experiments.reproduce import TUNED_BY
from lightning_modules.pruning.registry import Role, ordered, proposed, registered


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

    runs: list[Run]
    dense_wer: float | None
    best: bool = False

    @property
    def complete(self) -> list[Run]:
        return [run for run in self.runs if run.status == "complete"]

    def _values(self, key: str) -> list[float]:
        values = [getattr(run.result, key) for run in self.complete if run.result is not None]
        return [value for value in values if value is not None]

    @property
    def wer_mean(self) -> float | None:
        return _mean(self._values("test_wer"))

    @property
    def wer_std(self) -> float | None:
        values = self._values("test_wer")
        return statistics.stdev(values) if len(values) >= 2 else None

    @property
    def relative(self) -> float | None:
        """(WER − dense WER) / dense WER, from the means."""
        mean = self.wer_mean
        if mean is None or not self.dense_wer:
            return None
        return (mean - self.dense_wer) / self.dense_wer

    def mean_of(self, key: str) -> float | None:
        return _mean(self._values(key))

    @property
    def problems(self) -> list[Run]:
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
        for by_part in self._values("test_wer_by_part"):
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
    """Rows of methods, columns of target sparsities (0 is the dense model's column)."""

    title: str
    experiment: str
    kind: str  # main or ablation
    sparsities: list[float]
    dense: Entry
    rows: list[Row] = field(default_factory=list)


def _rows(experiment: Experiment, labels: list[tuple[str, str, dict]], dense_wer) -> list[Row]:
    rows = []
    names = variant_names(experiment.variants)
    for label, method, _ in labels:
        entries = {
            sparsity: Entry(
                [r for r in experiment.cells if r.label == label and r.target_sparsity == sparsity],
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


def main_table(experiment: Experiment) -> Table:
    """Every method of the grid (plain methods in the paper's order, then variants of the
    other methods; variants of the proposed method go to the ablation table)."""
    entries = [v for v in experiment.variants if v[0] == v[1] or role(v[1]) != Role.PROPOSED]
    entries.sort(key=lambda v: (v[0] != v[1], order(v[1])))
    dense = Entry([experiment.dense], None)  # no change against itself
    title = f"{experiment.name}: test WER by method and target sparsity"
    table = Table(title, experiment.name, "main", experiment.sparsities, dense)
    table.rows = _rows(experiment, entries, dense.wer_mean)
    return table


def ablation_table(experiment: Experiment) -> Table | None:
    """The proposed method and its labelled variants, when the grid has any: which part
    earns its keep."""
    entries = [v for v in experiment.variants if role(v[1]) == Role.PROPOSED]
    if len(entries) < 2:
        return None
    dense = Entry([experiment.dense], None)
    title = f"{experiment.name}: ablation of {method_title(entries[0][1])}'s parts (test WER)"
    table = Table(title, experiment.name, "ablation", experiment.sparsities, dense)
    table.rows = _rows(experiment, entries, dense.wer_mean)
    return table


@dataclass
class Pairing:
    """One system against another at one target sparsity: the proposed method against a
    baseline, or an ablation variant against full CSP."""

    sparsity: float
    baseline: str | None  # the system compared with
    seeds: list[int]
    differences: list[float]  # the system's test WER − the baseline's, per seed
    verdict: str
    system: str = ""
    bootstrap: Bootstrap | None = None
    bootstrap_note: str = ""  # why there is no bootstrap, when there is none
    best: bool = False  # the compared system has the lowest mean test WER at this sparsity

    @property
    def mean(self) -> float | None:
        return _mean(self.differences)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.differences) if len(self.differences) >= 2 else None

    @property
    def wins(self) -> int:
        return sum(difference < 0 for difference in self.differences)


def _verdict(sparsity: float, proposed: str, baseline: str, differences: list[float]) -> str:
    n = len(differences)
    mean = sum(differences) / n
    at = f"At target sparsity {sparsity:g}"
    spread = "one seed, so no spread: not conclusive" if n == 1 else f"{n} seeds"
    if mean > 0:
        return (
            f"{at}, {proposed} does not win: its test WER is {mean:.3f} higher than "
            f"{baseline}'s ({spread})."
        )
    if mean == 0:
        return f"{at}, {proposed} does not win: it ties with {baseline} ({spread})."
    wins = sum(difference < 0 for difference in differences)
    if wins < n:
        return (
            f"{at}, {proposed} is {-mean:.3f} better than {baseline} on average but wins on "
            f"only {wins} of {n} seeds."
        )
    return f"{at}, {proposed} wins: its test WER is {-mean:.3f} lower than {baseline}'s ({spread})."


def _bootstrap(
    system: str, runs: list[Run], baseline: str, base_runs: list[Run]
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


def bootstrap_text(result: Bootstrap) -> str:
    """`−0.012 [−0.020, −0.004], p = 0.002`."""
    p = f"p < {1 / result.samples:g}" if result.p <= 1 / result.samples else f"p = {result.p:.3g}"
    return f"{result.difference:+.3f} [{result.low:+.3f}, {result.high:+.3f}], {p}"


def _bootstrap_sentence(pairing: Pairing) -> str:
    result = pairing.bootstrap
    if result is None:
        return f" No paired bootstrap: {pairing.bootstrap_note}." if pairing.bootstrap_note else ""
    return (
        f" Paired bootstrap over {result.utterances} utterances × {result.seeds} seed(s): "
        f"{result.verdict} ({bootstrap_text(result)})."
    )


PAIRED_ROLES = (Role.BASELINE, Role.FLOOR, Role.PEER)
"""The roles the proposed method is paired with: the pruning methods it competes with (a
control is a row of the table, not a competitor)."""


def paired_comparison(table: Table) -> list[Pairing]:
    """Per sparsity: the proposed method's seeds paired with those of every compared method
    (`PAIRED_ROLES`) that has a result, the one with the lowest mean WER first
    (`best`)."""
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
        own_runs = {run.seed: run for run in proposed.entries[sparsity].complete}
        if not ranked or not own_runs:
            missing = proposed.name if not own_runs else "every baseline"
            verdict = f"At target sparsity {sparsity:g}, no comparison: {missing} has no result."
            pairings.append(Pairing(sparsity, None, [], [], verdict, proposed.name))
            continue
        for rank, (_, other) in enumerate(ranked):
            pairing = _pair(sparsity, proposed.name, own_runs, other)
            pairing.best = rank == 0
            pairings.append(pairing)
    return pairings


def _pair(sparsity: float, proposed: str, own_runs: dict[int, Run], other: Row) -> Pairing:
    """The proposed method against `other` at `sparsity`, on their shared complete seeds."""
    base_runs = {run.seed: run for run in other.entries[sparsity].complete}
    seeds = sorted(set(own_runs) & set(base_runs))
    if not seeds:
        verdict = (
            f"At target sparsity {sparsity:g}, no comparison: {proposed} and {other.name} "
            "share no complete seed."
        )
        return Pairing(sparsity, other.name, [], [], verdict, proposed)
    differences = [own_runs[s].result.test_wer - base_runs[s].result.test_wer for s in seeds]
    verdict = _verdict(sparsity, proposed, other.name, differences)
    result, note = _bootstrap(
        proposed, [own_runs[s] for s in seeds], other.name, [base_runs[s] for s in seeds]
    )
    pairing = Pairing(sparsity, other.name, seeds, differences, verdict, proposed, result, note)
    pairing.verdict += _bootstrap_sentence(pairing)
    return pairing


def comparison_sentences(table: Table, pairings: list[Pairing]) -> list[str]:
    """What to say under a table. Main table: per sparsity, the verdict against the best
    baseline, then the paired bootstrap's verdict against every baseline in one sentence.
    Ablation table: every variant's verdict."""
    if table.kind != "main":
        return [pairing.verdict for pairing in pairings]
    sentences = []
    for sparsity in table.sparsities:
        here = [p for p in pairings if p.sparsity == sparsity]
        sentences += [p.verdict for p in here if p.best or p.baseline is None]
        tested = [p for p in here if p.bootstrap is not None]
        if len(tested) < 2:
            continue
        better = [p for p in tested if p.bootstrap.significant and p.bootstrap.difference < 0]
        worse = [p for p in tested if p.bootstrap.significant and p.bootstrap.difference > 0]
        groups = {
            "wins against": [p.baseline for p in better],
            "loses against": [p.baseline for p in worse],
            "shows no significant difference with": [
                p.baseline for p in tested if p not in better and p not in worse
            ],
        }
        said = "; ".join(f"{verb} {', '.join(names)}" for verb, names in groups.items() if names)
        sentences.append(
            f"At target sparsity {sparsity:g}, against each of {len(tested)} baselines "
            f"(paired bootstrap, p < {ALPHA:g}): {tested[0].system} {said}."
        )
    return sentences


def comparison_heading(table: Table) -> str:
    """What a table's pairings compare."""
    studied = proposed()
    title = studied.title if studied is not None else "the proposed method"
    if table.kind == "main":
        return f"{title} against each baseline"
    return f"Each variant against full {title}"


def ablation_comparison(table: Table) -> list[Pairing]:
    """Every ablation variant against full CSP (the row with the method's own label), per
    target sparsity, on their shared seeds: does taking the part out change the test WER?"""
    full = next((row for row in table.rows if row.label == row.method), None)
    if full is None:
        return []
    pairings = []
    for row in table.rows:
        if row is full:
            continue
        for sparsity in table.sparsities:
            own = {run.seed: run for run in row.entries[sparsity].complete}
            base = {run.seed: run for run in full.entries[sparsity].complete}
            seeds = sorted(set(own) & set(base))
            at = f"At target sparsity {sparsity:g}, {row.name} against {full.name}"
            if not seeds:
                verdict = f"{at}: no comparison, no complete seed in both."
                pairings.append(Pairing(sparsity, full.name, [], [], verdict, row.name))
                continue
            differences = [own[s].result.test_wer - base[s].result.test_wer for s in seeds]
            mean = sum(differences) / len(differences)
            verdict = f"{at}: test WER {mean:+.3f} on average over {len(seeds)} seed(s)."
            result, note = _bootstrap(
                row.name, [own[s] for s in seeds], full.name, [base[s] for s in seeds]
            )
            pairing = Pairing(sparsity, full.name, seeds, differences, verdict, row.name)
            pairing.bootstrap, pairing.bootstrap_note = result, note
            pairing.verdict += _bootstrap_sentence(pairing)
            pairings.append(pairing)
    return pairings
