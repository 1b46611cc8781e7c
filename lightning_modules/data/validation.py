"""Checking a corpus before any training: every problem is reported with the file it is in."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import soundfile

from lightning_modules.data.manifest import SPLITS, Utterance, problems_error
from lightning_modules.data.text import TranscriptError, normalize_transcript

SEGMENT_END_TOLERANCE = 0.025
"""Seconds a segment may end past the end of its file (times rounded in the segment list);
such a segment is cut at the end of the file. One ending later is an error."""


def validate_corpus(
    utterances: Iterable[Utterance],
    sample_rate: int = 16_000,
    required_splits: Iterable[str] = SPLITS,
) -> list[Utterance]:
    """Return the utterances with normalized transcripts and durations read from the audio.

    Reads every audio header (not the samples: fast; once per file, however many segments it
    holds) and raises one `CorpusError` that lists every problem found: duplicate ids,
    missing or unreadable audio, a wrong sample rate or channel count, a segment (an
    utterance with an `offset`) that does not lie within its file, empty or non-normalizable
    transcripts, and required splits left empty.
    """
    utterances = list(utterances)
    problems: list[str] = []
    duplicates = [uid for uid, count in Counter(u.id for u in utterances).items() if count > 1]
    problems += [f"duplicate utterance id {uid!r}" for uid in sorted(duplicates)]
    headers: dict[Path, tuple[int, int] | str] = {}
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
        if utterance.audio not in headers:
            headers[utterance.audio] = _header(utterance.audio, sample_rate)
        header = headers[utterance.audio]
        if isinstance(header, str):
            problems.append(header)
            continue
        if utterance.offset is None:
            duration = header[1] / header[0]
        else:
            duration = _segment_duration(utterance, *header, problems)
            if duration is None:
                continue
        checked.append(dataclasses.replace(utterance, text=text, duration=duration))
    present = Counter(u.split for u in utterances)
    problems += [f"split {split!r} is empty" for split in required_splits if not present[split]]
    if problems:
        raise problems_error(problems)
    return checked


def _header(audio: Path, sample_rate: int) -> tuple[int, int] | str:
    """The audio file's sample rate and frame count, or the problem with it (the same for
    all its utterances)."""
    try:
        info = soundfile.info(str(audio))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        return f"{audio}: unreadable audio ({error})"
    if info.samplerate != sample_rate:
        return f"{audio}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
    if info.channels != 1:
        return f"{audio}: {info.channels} channels, expected mono"
    if info.frames == 0:
        return f"{audio}: audio holds no samples"
    return info.samplerate, info.frames


def _segment_duration(
    utterance: Utterance, rate: int, frames: int, problems: list[str]
) -> float | None:
    """The length of a segment that lies within its file (cut at the file's end if it ends
    within `SEGMENT_END_TOLERANCE` past it), or None with the problem added."""
    where = f"{utterance.audio}: segment of utterance {utterance.id}"
    span = (utterance.offset, 1.0 if utterance.duration is None else utterance.duration)
    if not all(map(math.isfinite, span)) or span[0] < 0 or span[1] <= 0:
        problems.append(
            f"{where} has offset {utterance.offset} s and duration {utterance.duration} s; "
            "expected an offset >= 0 and a duration > 0"
        )
        return None
    start, stop = utterance.frame_span(rate)
    stop = frames if stop is None else stop
    if start >= frames or stop > frames + round(SEGMENT_END_TOLERANCE * rate):
        problems.append(
            f"{where} ({start / rate:.3f}-{stop / rate:.3f} s) runs past the end of the file "
            f"({frames / rate:.3f} s)"
        )
        return None
    if stop <= start:
        problems.append(f"{where} is shorter than one sample ({utterance.duration} s)")
        return None
    return (min(stop, frames) - start) / rate
