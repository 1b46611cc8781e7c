"""Checking a corpus before any training: every problem is reported with the file it is in."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

import soundfile

from lightning_modules.data.manifest import SPLITS, CorpusError, Utterance
from lightning_modules.data.text import TranscriptError, normalize_transcript

MAX_LISTED_PROBLEMS = 20


def validate_corpus(
    utterances: Iterable[Utterance],
    sample_rate: int = 16_000,
    required_splits: Iterable[str] = SPLITS,
) -> list[Utterance]:
    """Return the utterances with normalized transcripts and durations read from the audio.

    Reads every audio header (not the samples: fast) and raises one `CorpusError` that lists
    every problem found: duplicate ids, missing or unreadable audio, a wrong sample rate or
    channel count, empty or non-normalizable transcripts, and required splits left empty.
    """
    utterances = list(utterances)
    problems: list[str] = []
    duplicates = [uid for uid, count in Counter(u.id for u in utterances).items() if count > 1]
    problems += [f"duplicate utterance id {uid!r}" for uid in sorted(duplicates)]
    checked = []
    for utterance in utterances:
        try:
            text = normalize_transcript(utterance.text)
        except TranscriptError as error:
            problems.append(f"{utterance.id}: {error}")
            continue
        if not utterance.audio.is_file():
            problems.append(f"{utterance.audio}: audio file missing (utterance {utterance.id})")
            continue
        try:
            info = soundfile.info(str(utterance.audio))
        except (soundfile.LibsndfileError, RuntimeError) as error:
            problems.append(f"{utterance.audio}: unreadable audio ({error})")
            continue
        if info.samplerate != sample_rate:
            problems.append(
                f"{utterance.audio}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
            )
        elif info.channels != 1:
            problems.append(f"{utterance.audio}: {info.channels} channels, expected mono")
        elif info.frames == 0:
            problems.append(f"{utterance.audio}: audio holds no samples")
        else:
            duration = info.frames / info.samplerate
            checked.append(dataclasses.replace(utterance, text=text, duration=duration))
    present = Counter(u.split for u in utterances)
    problems += [f"split {split!r} is empty" for split in required_splits if not present[split]]
    if problems:
        listed = problems[:MAX_LISTED_PROBLEMS]
        more = len(problems) - len(listed)
        raise CorpusError(
            f"{len(problems)} problem(s) in the corpus:\n  "
            + "\n  ".join(listed)
            + (f"\n  ... and {more} more" if more else "")
        )
    return checked
