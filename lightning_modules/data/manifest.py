"""The corpus manifest: one JSON object per line, one line per utterance.

Required fields: ``id``, ``audio`` (a path, relative to the manifest's folder or absolute),
``text`` and ``split`` (``train``, ``dev`` or ``test``). ``duration`` (seconds) is optional;
any other field (engine, voice, speed, ...) is kept as metadata. Any corpus of audio + text
plugs in by writing this file.

A line with ``offset`` (seconds into the file) is a segment: the utterance is the ``duration``
seconds of audio from there (to the end of the file without ``duration``). Without
``offset`` the utterance is the whole file, and ``duration`` is only informative (the file's
own length is used).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "dev", "test")
REQUIRED_FIELDS = ("id", "audio", "text", "split")
SPAN = ("duration", "offset")
MAX_LISTED_PROBLEMS = 20


class CorpusError(ValueError):
    """Bad corpus input; the message names the file and the problem."""


def problems_error(problems: Sequence[str], where: str = "the corpus") -> CorpusError:
    """One `CorpusError` listing every problem found in `where` (the first 20 of them)."""
    listed = list(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - len(listed)
    return CorpusError(
        f"{len(problems)} problem(s) in {where}:\n  "
        + "\n  ".join(listed)
        + (f"\n  ... and {more} more" if more else "")
    )


@dataclass(frozen=True)
class Utterance:
    """One utterance's audio and transcript, as a reader found it (not yet validated).

    With `offset` None the utterance is the whole `audio` file (a `duration` a reader gives
    is only informative: validation sets the file's). With an `offset` (seconds into the
    file) it is a segment: `duration` seconds from there, or to the end of the file when
    `duration` is None. Validated utterances always carry their length in `duration`.
    """

    id: str
    audio: Path
    text: str
    split: str
    duration: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    offset: float | None = None

    def frame_span(self, sample_rate: int) -> tuple[int, int | None]:
        """The first frame of this utterance in its file, and the frame after its last
        (None: the end of the file), at the file's `sample_rate`."""
        if self.offset is None:
            return 0, None
        start = round(self.offset * sample_rate)
        if self.duration is None:
            return start, None
        return start, start + round(self.duration * sample_rate)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a manifest, resolving audio paths against the manifest's folder.

    Malformed lines, missing fields and unknown splits raise `CorpusError` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: manifest not found")
    utterances = []
    for where, record in read_json_lines(path, CorpusError):
        if not isinstance(record, dict):
            raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [name for name in REQUIRED_FIELDS if name not in record]
        if missing:
            raise CorpusError(f"{where}: missing field(s) {', '.join(missing)}")
        if record["split"] not in SPLITS:
            raise CorpusError(
                f"{where}: field 'split' is {record['split']!r}, expected one of {SPLITS}"
            )
        duration, offset = record.get("duration"), record.get("offset")
        if duration is not None and not _is_number(duration):
            raise CorpusError(f"{where}: field 'duration' is {duration!r}, not a number")
        if offset is not None and not (_is_number(offset) and offset >= 0):
            raise CorpusError(f"{where}: field 'offset' is {offset!r}, not a number >= 0")
        if offset is not None and duration is not None and duration <= 0:
            raise CorpusError(f"{where}: field 'duration' is {duration!r}, not > 0")
        meta = {k: v for k, v in record.items() if k not in (*REQUIRED_FIELDS, *SPAN)}
        utterances.append(
            Utterance(
                id=str(record["id"]),
                audio=path.parent / str(record["audio"]),
                text=str(record["text"]),
                split=record["split"],
                duration=None if duration is None else float(duration),
                meta=meta,
                offset=None if offset is None else float(offset),
            )
        )
    return utterances


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _write_atomically(path: str | Path, text: str) -> None:
    """Write `text` through a temporary file and a rename, so a reader never sees half a
    file; a file that already holds exactly `text` is left alone (its time stamp too)."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_lines(path: Path, error: type[Exception]) -> Iterator[tuple[str, Any]]:
    """(`PATH:LINE`, its value) for every non-empty line of a JSON-lines file; a line that is
    not JSON raises `error` naming the file and the line."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as problem:
                raise error(f"{where}: not valid JSON ({problem.msg})") from None
            yield where, value


def write_jsonl_atomic(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Records as JSON lines, written atomically (`_write_atomically`)."""
    lines = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n" for record in records)
    _write_atomically(path, "".join(lines))


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """One JSON document (indented, keys sorted), written atomically (`_write_atomically`):
    the one writer of sidecars, summaries and run records."""
    _write_atomically(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def claim_corpus_folder(
    out_dir: Path, expected: Mapping[str, Any], what: str = "a corpus"
) -> dict[str, Any] | None:
    """The saved `corpus.json` of the corpus being built in `out_dir` (None: a new folder)
    when every `expected` field matches it; any other folder is refused, saying to choose
    another one, so no audio of other settings is ever mixed in."""
    sidecar = out_dir / "corpus.json"
    if not sidecar.exists():
        if (out_dir / "manifest.jsonl").exists() or (out_dir / "audio").exists():
            raise CorpusError(f"{out_dir} holds files but no corpus.json; choose an empty --out")
        return None
    saved = json.loads(sidecar.read_text(encoding="utf-8"))
    for key, value in expected.items():
        if saved.get(key) != value:
            raise CorpusError(
                f"{out_dir} holds {what} made with {key}={saved.get(key)!r}, not {value!r}; "
                "choose another --out or delete that folder"
            )
    return saved
