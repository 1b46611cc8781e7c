"""The corpus manifest: one JSON object per line, one line per utterance.

Required fields: ``id``, ``audio`` (a path, relative to the manifest's folder or absolute),
``text`` and ``split`` (``train``, ``dev`` or ``test``). ``duration`` (seconds) is optional;
any other field (engine, voice, speed, ...) is kept as metadata. Any corpus of audio + text
plugs in by writing this file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "dev", "test")
REQUIRED_FIELDS = ("id", "audio", "text", "split")


class CorpusError(ValueError):
    """Bad corpus input; the message names the file and the problem."""


@dataclass(frozen=True)
class Utterance:
    """One recording and its transcript, as a reader found it (not yet validated)."""

    id: str
    audio: Path
    text: str
    split: str
    duration: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a manifest, resolving audio paths against the manifest's folder.

    Malformed lines, missing fields and unknown splits raise `CorpusError` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: manifest not found")
    utterances = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorpusError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
            missing = [name for name in REQUIRED_FIELDS if name not in record]
            if missing:
                raise CorpusError(f"{where}: missing field(s) {', '.join(missing)}")
            if record["split"] not in SPLITS:
                raise CorpusError(
                    f"{where}: field 'split' is {record['split']!r}, expected one of {SPLITS}"
                )
            duration = record.get("duration")
            if duration is not None and not isinstance(duration, int | float):
                raise CorpusError(f"{where}: field 'duration' is {duration!r}, not a number")
            meta = {k: v for k, v in record.items() if k not in (*REQUIRED_FIELDS, "duration")}
            utterances.append(
                Utterance(
                    id=str(record["id"]),
                    audio=path.parent / str(record["audio"]),
                    text=str(record["text"]),
                    split=record["split"],
                    duration=None if duration is None else float(duration),
                    meta=meta,
                )
            )
    return utterances


def write_jsonl_atomic(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write records as JSONL through a temporary file, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
