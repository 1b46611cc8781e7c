"""Is one system's WER really lower than another's? The paired bootstrap over utterances.

Bisani & Ney, "Bootstrap estimates for confidence intervals in ASR performance evaluation",
ICASSP 2004: resample the test utterances with replacement, recompute both systems' pooled
WER on each resample, and read the distribution of their difference. Pairing by utterance
removes the variance that the two systems share (hard utterances are hard for both), so it
detects far smaller differences than comparing seed means does.

A system here is one or more runs (seeds) evaluated on the same utterances; its errors on an
utterance are summed over its seeds, so the seeds are pooled and the utterance stays the
resampled unit. Both systems must have been evaluated on exactly the same utterance ids and
the same number of seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.records import read_utterance_records

SAMPLES = 10_000
"""Bootstrap resamples: the p-value resolves down to 1/SAMPLES."""
LEVEL = 0.95
ALPHA = 0.05
MAX_LISTED_IDS = 3


class PairingError(ValueError):
    """Two systems that cannot be paired: different utterances or seed counts."""


@dataclass(frozen=True)
class System:
    """Word errors and reference words per utterance id, summed over the system's seeds."""

    name: str
    errors: dict[str, int]
    words: dict[str, int]
    seeds: int = 1

    @property
    def wer(self) -> float:
        return sum(self.errors.values()) / max(sum(self.words.values()), 1)


def read_utterances(path: str | Path) -> dict[str, tuple[int, int]]:
    """Utterance id → (errors, words) of one per-utterance file (`read_utterance_records`)."""
    return {record.id: (record.errors, record.words) for record in read_utterance_records(path)}


def pooled_system(name: str, paths: Sequence[str | Path]) -> System:
    """One system from the per-utterance records of its seeds (same utterances in each)."""
    if not paths:
        raise ValueError(f"{name}: no per-utterance records to pool")
    runs = [read_utterances(path) for path in paths]
    ids = set(runs[0])
    for path, run in zip(paths[1:], runs[1:], strict=True):
        if set(run) != ids:
            raise PairingError(f"{name}: {path} holds other utterances than {paths[0]}")
    errors = {key: sum(run[key][0] for run in runs) for key in ids}
    words = {key: sum(run[key][1] for run in runs) for key in ids}
    return System(name, errors, words, len(runs))


@dataclass(frozen=True)
class Bootstrap:
    """WER(a) − WER(b) with its bootstrap interval and two-sided p-value."""

    a: str
    b: str
    difference: float
    low: float
    high: float
    p: float
    utterances: int
    seeds: int
    samples: int

    @property
    def significant(self) -> bool:
        return self.p < ALPHA

    @property
    def verdict(self) -> str:
        """`a wins`, `a loses` or `no significant difference` (at p < ALPHA)."""
        if not self.significant:
            return "no significant difference"
        return f"{self.a} wins" if self.difference < 0 else f"{self.a} loses"

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "a": self.a,
            "b": self.b,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p": self.p,
            "verdict": self.verdict,
            "utterances": self.utterances,
            "seeds": self.seeds,
            "samples": self.samples,
        }


def _check_pairable(a: System, b: System) -> list[str]:
    if a.seeds != b.seeds:
        raise PairingError(f"{a.name} pools {a.seeds} seed(s), {b.name} {b.seeds}")
    only_a, only_b = sorted(set(a.errors) - set(b.errors)), sorted(set(b.errors) - set(a.errors))
    if only_a or only_b:
        listed = [
            f"{len(ids)} only in {system.name} ({', '.join(ids[:MAX_LISTED_IDS])}"
            f"{', ...' if len(ids) > MAX_LISTED_IDS else ''})"
            for system, ids in ((a, only_a), (b, only_b))
            if ids
        ]
        raise PairingError(
            f"{a.name} and {b.name} were evaluated on different utterances: {'; '.join(listed)}"
        )
    return sorted(a.errors)


def paired_bootstrap(a: System, b: System, samples: int = SAMPLES, seed: int = 0) -> Bootstrap:
    """WER(a) − WER(b) over resamples of the shared utterances (Bisani & Ney 2004).

    p is two-sided: twice the share of resamples on the far side of zero from the observed
    difference (1 when the systems never differ), at least 1/`samples` when none is there."""
    ids = _check_pairable(a, b)
    if not ids:
        raise PairingError(f"{a.name} and {b.name}: no utterances to compare")
    errors_a = np.array([a.errors[key] for key in ids], dtype=np.float64)
    errors_b = np.array([b.errors[key] for key in ids], dtype=np.float64)
    words = np.array([a.words[key] for key in ids], dtype=np.float64)
    if not np.array_equal(words, [b.words[key] for key in ids]):
        raise PairingError(f"{a.name} and {b.name} have different references for the same ids")
    generator = np.random.default_rng(seed)
    chosen = generator.integers(0, len(ids), size=(samples, len(ids)))
    total = np.maximum(words[chosen].sum(axis=1), 1)
    differences = (errors_a[chosen].sum(axis=1) - errors_b[chosen].sum(axis=1)) / total
    observed = float((errors_a.sum() - errors_b.sum()) / max(words.sum(), 1))
    if not differences.any():
        p = 1.0
    else:
        beyond = (differences >= 0) if observed < 0 else (differences <= 0)
        p = min(1.0, max(2 * float(beyond.mean()), 1 / samples))
    low, high = np.quantile(differences, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Bootstrap(
        a.name, b.name, observed, float(low), float(high), p, len(ids), a.seeds, samples
    )
