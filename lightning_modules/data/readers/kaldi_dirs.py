"""The kaldi corpus kind: one Kaldi data directory per split (wav.scp, text, optional segments
and utt2spk), as Kaldi recipes and `lhotse kaldi export` write them.

The files are read here, line by line, so that every problem is named with its file and line
(lhotse's `load_kaldi_data_dir` reads them too, but opens every audio file and names no lines):

- ``wav.scp``: ``<recording-id> <audio path>``. A path relative to the working directory (as
  Kaldi tools read it) or absolute. The decoder pipes that recipes and lhotse write for
  compressed audio are recognized and the one file they decode is read directly, never
  through a shell: ``flac -c -d -s PATH |`` (Kaldi's LibriSpeech recipe), ``sox PATH -t wav
  - |`` and ``ffmpeg ... -i PATH ... pipe:1 |`` (lhotse's ``export_to_kaldi``), with or
  without options. The decoded file must be 16 kHz mono like any other entry (the pipe's
  own conversions are not run). Any other command, a pipe with a shell construct (``;``,
  ``$(...)``, backquotes, redirections, a second ``|``), Kaldi archives (``x.ark:123``) and
  stdin (``-``) are refused with their line, since their audio is not one plain file.
- ``text``: ``<utterance-id> <transcript>``; these ids are the corpus's utterances.
- ``segments`` (optional): ``<utterance-id> <recording-id> <start> <end>`` in seconds (an end
  of -1: the end of the file). Without it every recording is one utterance of the same id.
- ``utt2spk`` (optional): ``<utterance-id> <speaker-id>``, kept as the ``speaker`` metadata.

Other files (``spk2utt``, ``feats.scp``, ``utt2dur``, ...) are not read.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from lightning_modules.data.corpora import CorpusSection, one_or_many, register_corpus
from lightning_modules.data.manifest import SPLITS, CorpusError, Utterance, problems_error

REQUIRED = ("wav.scp", "text")
_ARCHIVE = re.compile(r"\.ark:\d+$")


KaldiDirs = Annotated[list[Path], BeforeValidator(one_or_many), Field(min_length=1)]


@register_corpus
class KaldiCorpus(CorpusSection):
    """Kaldi data directories (wav.scp, text, optional segments, utt2spk), per split."""

    kind: Literal["kaldi"] = "kaldi"
    train: KaldiDirs
    dev: KaldiDirs
    test: KaldiDirs

    def read(self) -> list[Utterance]:
        return [
            utterance
            for split in SPLITS
            for folder in getattr(self, split)
            for utterance in read_kaldi_dir(folder, split)
        ]

    @classmethod
    def from_path(cls, path: Path) -> dict[str, Any] | None:
        """A folder whose `train`, `dev` and `test` sub-folders each hold wav.scp and text
        (a recipe's ``data/`` folder)."""
        if not all((path / split / name).is_file() for split in SPLITS for name in REQUIRED):
            return None
        return {"kind": "kaldi", **{split: [str(path / split)] for split in SPLITS}}


class _Table:
    """One Kaldi table file: the first field of a line is its key, the rest its value."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.rows: dict[str, tuple[str, str]] = {}
        """Key → (where: the file and line, value)."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise CorpusError(f"{path}: not UTF-8 text ({error})") from None
        first: dict[str, int] = {}
        for number, line in enumerate(lines, start=1):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            key, value = fields[0], fields[1].strip() if len(fields) > 1 else ""
            if key in first:
                problems.append(
                    f"{path}:{number}: duplicate id {key!r} (first on line {first[key]})"
                )
                continue
            first[key] = number
            self.rows[key] = (f"{path}:{number}", value)


@dataclass(frozen=True)
class _Unit:
    """What an utterance id of `text` names: a recording (no segments) or a segment of one."""

    where: str
    audio: Path | None  # None: refused, and reported at its line (of wav.scp or segments)
    offset: float | None = None
    end: float | None = None
    recording: str | None = None


def read_kaldi_dir(folder: str | Path, split: str) -> list[Utterance]:
    """Utterances of one Kaldi data directory, in the order of its `text` file.

    Raises one `CorpusError` listing every problem found, each with its file and line.
    Whether the audio exists and is readable, and whether each segment lies within its file,
    is checked later by `validate_corpus`, with the others.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: Kaldi data directory not found (split {split!r})")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise CorpusError(
            f"{folder}: no {' or '.join(missing)} (split {split!r}); a Kaldi data directory "
            "holds wav.scp and text"
        )
    problems: list[str] = []
    wav_scp = _Table(folder / "wav.scp", problems)
    units = {
        key: _Unit(where, _audio_path(where, key, value, problems))
        for key, (where, value) in wav_scp.rows.items()
    }
    if (folder / "segments").is_file():
        segments = _Table(folder / "segments", problems)
        units = _segments(segments, units, wav_scp.path, problems)
        source = segments.path
    else:
        source = wav_scp.path
    text = _Table(folder / "text", problems)
    for key, unit in units.items():
        if key not in text.rows:
            problems.append(f"{unit.where}: no transcript for {key!r} in {text.path}")
    speakers = _Table(folder / "utt2spk", problems) if (folder / "utt2spk").is_file() else None
    utterances = []
    for key, (where, transcript) in text.rows.items():
        unit = units.get(key)
        if not transcript:
            problems.append(f"{where}: empty transcript for utterance {key!r}")
        elif unit is None:
            problems.append(f"{where}: utterance {key!r} is not in {source}")
        elif unit.audio is None:
            continue  # refused, and reported at its line of wav.scp or segments
        elif speakers is not None and key not in speakers.rows:
            problems.append(f"{where}: utterance {key!r} has no speaker in {speakers.path}")
        else:
            meta = {} if speakers is None else {"speaker": speakers.rows[key][1]}
            if unit.recording is not None:
                meta["recording"] = unit.recording
            duration = None if unit.offset is None or unit.end is None else unit.end - unit.offset
            utterances.append(
                Utterance(key, unit.audio, transcript, split, duration, meta, unit.offset)
            )
    if problems:
        raise problems_error(problems, str(folder))
    return utterances


def _audio_path(where: str, key: str, value: str, problems: list[str]) -> Path | None:
    """The audio file of a wav.scp entry, or None with the problem added (not a plain file)."""
    if value.endswith("|"):
        decoded, why = decoder_input(value[:-1])
        if decoded is not None:
            return Path(decoded)
        problems.append(
            f"{where}: recording {key!r} is a command that is not read ({value!r}): {why}; "
            "write its audio to a file and list that file"
        )
    elif _ARCHIVE.search(value):
        problems.append(
            f"{where}: recording {key!r} is in a Kaldi archive ({value!r}); list an audio file"
        )
    elif not value or value == "-" or len(value.split()) > 1:
        problems.append(f"{where}: recording {key!r}: {value!r} is not one audio file path")
    else:
        return Path(value)
    return None


_SHELL_CONSTRUCTS = re.compile(r"[;&|`<>()]|\$")
"""Characters that make a command more than one decoder reading one file."""
_SOX_VALUES = {"-t", "--type", "-r", "--rate", "-c", "--channels", "-b", "--bits", "-e",
               "--encoding", "-v", "--volume"}  # fmt: skip
_FFMPEG_FLAGS = {"-y", "-n", "-nostdin", "-hide_banner", "-vn"}


def decoder_input(command: str) -> tuple[str | None, str]:
    """The one file a recognized decoder pipe (flac, sox, ffmpeg; see the module docstring)
    decodes to standard output, or None and why the command is not read."""
    if _SHELL_CONSTRUCTS.search(command):
        return None, "it holds a shell construct"
    try:
        program, *arguments = shlex.split(command)
    except ValueError as error:  # unbalanced quotes
        return None, f"it does not parse ({error})"
    reader = {"flac": _flac_input, "sox": _sox_input, "ffmpeg": _ffmpeg_input}.get(
        Path(program).name
    )
    if reader is None:
        return None, "only flac, sox and ffmpeg decoder pipes are recognized"
    return reader(arguments)


def _flac_input(arguments: list[str]) -> tuple[str | None, str]:
    """`flac -c -d [-s] PATH`: decode (-d) to standard output (-c)."""
    short = {c for a in arguments if a.startswith("-") and not a.startswith("--") for c in a[1:]}
    long = {a for a in arguments if a.startswith("--")}
    files = [a for a in arguments if not a.startswith("-")]
    decodes = "d" in short or "--decode" in long
    to_stdout = "c" in short or "--stdout" in long
    if not (decodes and to_stdout) or len(files) != 1:
        return None, "a flac pipe decodes one file to standard output (flac -c -d -s FILE)"
    return files[0], ""


def _sox_input(arguments: list[str]) -> tuple[str | None, str]:
    """`sox [options] PATH [format options] -`: no effects after the output."""
    files, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in _SOX_VALUES:
            skip = True
        elif argument == "-" or not argument.startswith("-"):
            files.append(argument)
    if len(files) != 2 or files[1] != "-" or files[0] == "-" or arguments[-1] != "-":
        return None, "a sox pipe converts one file to standard output (sox FILE -t wav -)"
    return files[0], ""


def _ffmpeg_input(arguments: list[str]) -> tuple[str | None, str]:
    """`ffmpeg [options] -i PATH [options] pipe:1` (or `-`), channel 0 of the input only."""
    inputs = [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == "-i"]
    if len(inputs) != 1 or inputs[0] in ("-", "pipe:", "pipe:0"):
        return None, "an ffmpeg pipe reads one input file (-i FILE)"
    if arguments[-1] not in ("-", "pipe:", "pipe:1"):
        return None, "an ffmpeg pipe writes to standard output (pipe:1)"
    for i, argument in enumerate(arguments[:-1]):
        if argument == "-map_channel" and arguments[i + 1] != "0.0.0":
            return None, f"it selects channel {arguments[i + 1]!r}; only mono files are read"
    return inputs[0], ""


def _segments(
    segments: _Table, recordings: dict[str, _Unit], wav_scp: Path, problems: list[str]
) -> dict[str, _Unit]:
    """The utterances of a segments file, each a segment of a recording of wav.scp."""
    units = {}
    for key, (where, value) in segments.rows.items():
        units[key] = _Unit(where, None)  # until its line is found good
        fields = value.split()
        if len(fields) != 3:
            problems.append(
                f"{where}: expected '<utterance> <recording> <start> <end>', got {key} {value}"
            )
            continue
        recording, *times = fields
        try:
            start, end = map(float, times)
        except ValueError:
            problems.append(f"{where}: start and end of {key!r} are not numbers ({value!r})")
            continue
        if not (math.isfinite(start) and math.isfinite(end)):
            problems.append(f"{where}: start and end of {key!r} are not finite ({value!r})")
            continue
        if start < 0 or not (end > start or end == -1):
            problems.append(
                f"{where}: segment {key!r} from {start} s to {end} s; expected "
                "0 <= start < end (or end -1: the end of the file)"
            )
            continue
        if recording not in recordings:
            problems.append(
                f"{where}: recording {recording!r} of utterance {key!r} is not in {wav_scp}"
            )
            continue
        end_or_none = None if end == -1 else end
        units[key] = _Unit(where, recordings[recording].audio, start, end_or_none, recording)
    return units
