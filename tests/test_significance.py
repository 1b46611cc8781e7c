"""The paired bootstrap (Bisani & Ney 2004) between systems' per-utterance errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from analysis.significance import (
    PairingError,
    System,
    paired_bootstrap,
    pooled_system,
    read_utterances,
)
from experiments.records import RecordError, UtteranceRecord, write_utterance_records


def record(key: str, errors: int, words: int) -> UtteranceRecord:
    """A per-utterance record with `errors` word errors in `words` reference words."""
    reference = " ".join(["word"] * words)
    return UtteranceRecord(
        id=key,
        reference=reference,
        hypothesis=reference,  # the bootstrap reads the counts alone
        errors=errors,
        words=words,
        char_errors=errors,
        chars=len(reference),
    )


def write_records(path: Path, errors: dict[str, int], words: dict[str, int]) -> Path:
    """An `utterances.jsonl` in shuffled order: pairing must go by id, not by line."""
    keys = list(errors)
    random.Random(str(path)).shuffle(keys)
    write_utterance_records(path, [record(key, errors[key], words[key]) for key in keys])
    return path


def corpus(size: int = 60, seed: int = 0) -> tuple[dict[str, int], dict[str, int]]:
    generator = random.Random(seed)
    words = {f"utt{i:03d}": generator.randint(3, 12) for i in range(size)}
    errors = {key: generator.randint(0, count) for key, count in words.items()}
    return errors, words


def test_identical_systems_differ_by_nothing(tmp_path: Path) -> None:
    errors, words = corpus()
    a = pooled_system("a", [write_records(tmp_path / "a.jsonl", errors, words)])
    b = pooled_system("b", [write_records(tmp_path / "b.jsonl", errors, words)])
    result = paired_bootstrap(a, b)
    assert result.difference == 0 and result.low == 0 and result.high == 0
    assert result.p == 1.0 and not result.significant
    assert result.verdict == "no significant difference"


def test_fewer_errors_on_every_utterance_is_significant(tmp_path: Path) -> None:
    errors, words = corpus()
    worse = {key: count + 1 for key, count in errors.items()}
    a = pooled_system("a", [write_records(tmp_path / "a.jsonl", errors, words)])
    b = pooled_system("b", [write_records(tmp_path / "b.jsonl", worse, words)])
    result = paired_bootstrap(a, b)
    assert result.p < 0.01 and result.verdict == "a wins"
    assert result.difference == pytest.approx(a.wer - b.wer)
    assert result.low <= result.difference <= result.high < 0
    assert paired_bootstrap(b, a).verdict == "b loses"


def test_a_small_difference_on_few_utterances_is_not_significant() -> None:
    errors, words = corpus(size=20)
    other = dict(errors)
    first, second = sorted(errors)[:2]
    other[first] += 1  # b: one more error here, one fewer there where it can
    other[second] = max(other[second] - 1, 0)
    result = paired_bootstrap(System("a", errors, words), System("b", other, words))
    assert not result.significant and result.low <= 0 <= result.high


def test_seeds_are_pooled_per_utterance(tmp_path: Path) -> None:
    errors, words = corpus()
    doubled = {key: 2 * count for key, count in errors.items()}
    seeds = [write_records(tmp_path / f"s{seed}.jsonl", errors, words) for seed in range(2)]
    system = pooled_system("a", seeds)
    assert system.seeds == 2 and system.errors == doubled
    assert system.wer == pytest.approx(sum(errors.values()) / sum(words.values()))
    single = pooled_system("b", seeds[:1])
    with pytest.raises(PairingError, match="a pools 2 seed"):
        paired_bootstrap(system, single)


def test_systems_on_different_utterances_are_refused_by_name(tmp_path: Path) -> None:
    errors, words = corpus()
    fewer = {key: value for key, value in errors.items() if key != "utt007"}
    a = System("csp", errors, words)
    b = System("magnitude", fewer, {key: words[key] for key in fewer})
    with pytest.raises(PairingError, match=r"csp and magnitude .*1 only in csp \(utt007\)"):
        paired_bootstrap(a, b)
    with pytest.raises(PairingError, match="other utterances than"):
        pooled_system("csp", [
            write_records(tmp_path / "s0.jsonl", errors, words),
            write_records(tmp_path / "s1.jsonl", fewer, words),
        ])  # fmt: skip


def test_a_bad_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "utterances.jsonl"
    good = json.dumps(record("u1", 1, 3).model_dump())
    path.write_text(f'{good}\n{{"id": "u2"}}\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"utterances.jsonl:2: .*errors: Field required"):
        read_utterances(path)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_utterances(tmp_path / "missing.jsonl")
