"""Real human speech for evaluation only, built from Debian packages (`csp data real`).

The training corpus is synthetic (TTS), so a model's WER on held-out TTS voices says little
about human speech. This test-only corpus is the out-of-domain check, never a tuning target:

- ``asterisk``: the English telephony prompts of Asterisk, read by one speaker (Allison
  Smith), stored as 16 kHz G.722 (package asterisk-core-sounds-en-g722), with their
  transcripts (package asterisk-core-sounds-en);
- ``librivox``: five LibriVox clips of *Sense and Sensibility* with transcripts (package
  pocketsphinx-testdata).

A prompt is kept only when its transcript says exactly what is spoken, in the project's
alphabet: bracketed notes are dropped and lone digits 1-9 are spelled out; a prompt holding
anything whose spoken form is a guess (other numbers, symbols, dotted abbreviations, acronyms)
is skipped, and ``corpus.json`` counts the skips by reason. The output is 16 kHz mono FLAC,
``manifest.jsonl`` (split ``test``) and ``corpus.json``, written like the TTS corpus: each
file under a temporary name then renamed, so a re-run converts only what is missing and
rewrites nothing that is already right.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile
import torch
import torchaudio
from tqdm import tqdm

from lightning_modules.data.manifest import (
    CorpusError,
    claim_corpus_folder,
    write_json_atomic,
    write_jsonl_atomic,
)
from lightning_modules.data.text import TranscriptError, normalize_transcript

SAMPLE_RATE = 16_000
MIN_WORDS = 3
"""Default shortest transcript kept: one- and two-word prompts are mostly isolated words."""
FORMAT_VERSION = 1
"""Bump whenever the same packages would give different audio or a different manifest."""

ASTERISK_AUDIO = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
LIBRIVOX_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
PACKAGES = {
    "asterisk-core-sounds-en-g722": ASTERISK_AUDIO,
    "asterisk-core-sounds-en": ASTERISK_TRANSCRIPTS,
    "pocketsphinx-testdata": LIBRIVOX_DIR / "transcription",
}
"""Each Debian package the corpus reads, and a file or folder that shows it is installed."""

SUBSETS: dict[str, dict[str, Any]] = {
    "asterisk": {
        "packages": ["asterisk-core-sounds-en-g722", "asterisk-core-sounds-en"],
        "audio": str(ASTERISK_AUDIO),
        "transcripts": str(ASTERISK_TRANSCRIPTS),
        "original_format": "G.722, 16 kHz mono, decoded with PyAV",
        "speaker": "Allison Smith (en_US_f_Allison), telephony prompts",
        "license": "CC-BY-SA-3.0 (/usr/share/doc/asterisk-core-sounds-en/copyright)",
    },
    "librivox": {
        "packages": ["pocketsphinx-testdata"],
        "audio": str(LIBRIVOX_DIR),
        "transcripts": str(LIBRIVOX_DIR / "transcription"),
        "original_format": "WAV, resampled to 16 kHz mono with torchaudio when it is not",
        "speaker": "one LibriVox reader, Sense and Sensibility chapter 1 (Jane Austen)",
        "license": "LibriVox recordings are public domain (/usr/share/doc/pocketsphinx-testdata)",
    },
}
"""Where each subset comes from, recorded in corpus.json."""
SPEAKERS = {"asterisk": "asterisk-allison", "librivox": "librivox-sense-and-sensibility-01"}

SKIP_REASONS = {
    "no_transcript": "the recording has no line in the transcript file",
    "non_speech": "the transcript is only a bracketed note (tones, silence, beeps)",
    "symbol": "a symbol whose spoken form is a guess (* # @ & % $ + = /)",
    "number": "a number other than a lone digit 1-9 (multi-digit, decimal, 0, inside a word)",
    "abbreviation": "a dotted abbreviation or address (A.M., www.asterisk.org)",
    "acronym": "an upper-case acronym: spelled letter by letter or read as a word, unknown which",
    "not_normalizable": "the transcript has no spelling in the project's alphabet",
    "too_short": "fewer words than the minimum",
}
"""Why a prompt is left out, in the order the checks run (the first that applies counts)."""

_NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_SILENT = frozenset(".,;:!?'\"-`…‘’“”")
_LONE_DIGIT = re.compile(r"(?<![\w.,])[1-9](?![\w])(?![.,]\d)")
_DIGIT_WORDS = {
    "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
    "6": "six", "7": "seven", "8": "eight", "9": "nine",
}  # fmt: skip
"""Lone digits as spoken; no dependency spells numbers, and only 1-9 are read unambiguously."""
_DOTTED = re.compile(r"[A-Za-z]\.[A-Za-z]")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")
_LIBRIVOX_LINE = re.compile(r"^(?P<text>.*)\((?P<id>[^()\s]+)\)\s*$")
_PARTIAL = ".partial"


class Skipped(Exception):
    """A prompt left out of the corpus; `reason` is a key of `SKIP_REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Recording:
    """One source recording and its transcript as the package gives it (None when absent)."""

    id: str
    source: str
    path: Path
    raw_text: str | None


def check_packages(packages: Mapping[str, Path] = PACKAGES) -> dict[str, str]:
    """Return the version of each package; fail before any work if one is not installed.

    The error names every missing package and the one apt-get command that installs them,
    so `csp` can print it as the fix.
    """
    versions, missing = {}, []
    for package, marker in packages.items():
        version = _installed_version(package)
        if version is None or not marker.exists():
            missing.append(package)
        else:
            versions[package] = version
    if missing:
        raise CorpusError(
            f"the real-speech corpus needs the Debian package(s) {', '.join(missing)}, "
            f"not installed; install with: sudo apt-get install -y {' '.join(missing)}"
        )
    return versions


def _installed_version(package: str) -> str | None:
    """The package's version per dpkg, or None if dpkg does not list it as installed."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Status}\t${Version}", package],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:  # not a Debian system: nothing is installed the Debian way
        return None
    status, _, version = done.stdout.partition("\t")
    return version if done.returncode == 0 and status.endswith(" installed") else None


def tool_versions() -> dict[str, str]:
    """Versions of the libraries that shape the audio bytes: decoder, resampler, FLAC encoder."""
    return {
        "av": av.__version__,
        "ffmpeg (libavcodec)": ".".join(map(str, av.library_versions["libavcodec"])),
        "libsndfile": soundfile.__libsndfile_version__,
        "soundfile": metadata.version("soundfile"),
        "torchaudio": metadata.version("torchaudio"),
    }


def spoken_text(raw: str) -> str:
    """The normalized transcript of what is spoken, or `Skipped` when that would be a guess.

    Bracketed notes (``[beep]``, ``(10 seconds of silence)``, ``<beep>``) are not speech.
    A lone digit 1-9 is read as its word in these prompts ("press 1" is "press one"); any
    other number (500, 1234, 28.8, 0: "zero" or "oh"), a symbol, a dotted abbreviation or
    an acronym has more than one plausible spoken form, so the prompt is skipped rather
    than scored against a transcript that may be wrong. Punctuation dropped here is silent.
    """
    text = _NOTE.sub(" ", raw)
    if not text.strip(" .,;:!?-…"):
        raise Skipped("non_speech")
    if any(not (c.isalnum() or c.isspace() or c in _SILENT) for c in text):
        raise Skipped("symbol")
    text = _LONE_DIGIT.sub(lambda digit: _DIGIT_WORDS[digit.group()], text)
    if any(c.isdigit() for c in text):
        raise Skipped("number")
    if _DOTTED.search(text):
        raise Skipped("abbreviation")
    if _ACRONYM.search(text):
        raise Skipped("acronym")
    try:
        return normalize_transcript(text)
    except TranscriptError:
        raise Skipped("not_normalizable") from None


def asterisk_transcripts(path: Path = ASTERISK_TRANSCRIPTS) -> dict[str, str]:
    """Prompt name (``vm-options``, ``digits/1``) to its text, from the ``name: text`` lines.

    Lines starting with ``;`` are comments. A name given twice is a broken file, not a
    choice to make silently.
    """
    transcripts: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith(";"):
                continue
            name, colon, text = line.partition(":")
            if not colon or not name.strip():
                raise CorpusError(f"{path}:{number}: expected 'name: text', got {line.strip()!r}")
            if name.strip() in transcripts:
                raise CorpusError(f"{path}:{number}: prompt {name.strip()!r} given twice")
            transcripts[name.strip()] = text.strip()
    return transcripts


def asterisk_recordings(audio_dir: Path = ASTERISK_AUDIO) -> list[Recording]:
    """Every G.722 prompt with its transcript line, if it has one.

    The id keeps the prompt's name, its folder joined with a dot (``digits/1`` becomes
    ``asterisk-digits.1``): readable, and no two names can give the same id.
    """
    transcripts = asterisk_transcripts()
    recordings = []
    for path in sorted(audio_dir.rglob("*.g722")):
        name = path.relative_to(audio_dir).with_suffix("").as_posix()
        if "." in name:
            raise CorpusError(f"{path}: a dot in the prompt name would make its id ambiguous")
        uid = "asterisk-" + name.replace("/", ".")
        recordings.append(Recording(uid, "asterisk", path, transcripts.get(name)))
    return recordings


def asterisk_transcripts_without_audio(audio_dir: Path = ASTERISK_AUDIO) -> list[str]:
    """Prompt names the transcript file lists but the G.722 package has no recording of.

    Nothing to skip (there is no audio), but recorded, so a shrinking package is noticed.
    """
    names = {p.relative_to(audio_dir).with_suffix("").as_posix() for p in audio_dir.rglob("*.g722")}
    return sorted(set(asterisk_transcripts()) - names)


def librivox_recordings(data_dir: Path = LIBRIVOX_DIR) -> list[Recording]:
    """The LibriVox clips of pocketsphinx-testdata, from its Sphinx-style transcription.

    Each line is ``<s> words </s> (clip)``: the ``(clip)`` names the WAV; the sentence tags
    are bracketed notes that `spoken_text` drops.
    """
    transcripts = {}
    path = data_dir / "transcription"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        found = _LIBRIVOX_LINE.match(line)
        if found is None:
            raise CorpusError(f"{path}:{number}: expected '<s> text </s> (clip)', got {line!r}")
        transcripts[found["id"]] = found["text"]
    return [
        Recording(f"librivox-{wav.stem}", "librivox", wav, transcripts.get(wav.stem))
        for wav in sorted(data_dir.glob("*.wav"))
    ]


def select(
    recordings: list[Recording], min_words: int, limit: int | None
) -> tuple[list[tuple[Recording, str]], dict[str, dict[str, list[str]]]]:
    """The recordings kept with their transcripts, and the ids skipped per source and reason.

    Kept recordings are sorted by id; `limit` keeps the first of each source (the skips
    are still counted over the whole package, so they do not depend on the limit).
    """
    kept: list[tuple[Recording, str]] = []
    skipped: dict[str, dict[str, list[str]]] = {source: {} for source in SUBSETS}
    per_source: Counter[str] = Counter()
    for recording in sorted(recordings, key=lambda r: r.id):
        try:
            if recording.raw_text is None:
                raise Skipped("no_transcript")
            text = spoken_text(recording.raw_text)
            if len(text.split()) < min_words:
                raise Skipped("too_short")
        except Skipped as skip:
            skipped[recording.source].setdefault(skip.reason, []).append(recording.id)
            continue
        if limit is None or per_source[recording.source] < limit:
            kept.append((recording, text))
            per_source[recording.source] += 1
    return kept, skipped


def decode(recording: Recording) -> tuple[np.ndarray, int]:
    """The recording's samples, shape (channels, frames), and its sample rate.

    G.722 has no container, so PyAV is told the format; it decodes to 16-bit samples.
    WAV (and anything else) is read by soundfile, in 16-bit when it is 16-bit.
    """
    if recording.path.suffix == ".g722":
        with av.open(str(recording.path), format="g722") as container:
            stream = container.streams.audio[0]
            frames = [frame.to_ndarray() for frame in container.decode(stream)]
            rate = stream.codec_context.sample_rate
        if not frames:
            raise CorpusError(f"{recording.path}: PyAV decoded no audio")
        samples = np.concatenate(frames, axis=1)
        if frames[0].dtype != np.int16 or samples.shape[0] != stream.codec_context.channels:
            raise CorpusError(f"{recording.path}: expected packed 16-bit samples from PyAV")
        return samples, rate
    info = soundfile.info(str(recording.path))
    dtype = "int16" if info.subtype == "PCM_16" else "float32"
    samples, rate = soundfile.read(str(recording.path), dtype=dtype, always_2d=True)
    return samples.T, rate


def to_16k_mono(samples: np.ndarray, rate: int) -> np.ndarray:
    """Samples (channels, frames) as 16 kHz mono: untouched when they already are.

    Channels are averaged and other rates resampled with torchaudio (band-limited sinc),
    in float; 16-bit input that needs neither comes back bit for bit.
    """
    if samples.shape[0] == 1 and rate == SAMPLE_RATE:
        return samples[0]
    audio = torch.from_numpy(samples.astype(np.float32))
    if samples.dtype == np.int16:
        audio = audio / 32768.0
    audio = audio.mean(dim=0)
    if rate != SAMPLE_RATE:
        audio = torchaudio.functional.resample(audio, rate, SAMPLE_RATE)
    return np.clip(audio.numpy(), -1.0, 32767 / 32768)


def write_flac(samples: np.ndarray, out: Path) -> None:
    """Write 16 kHz mono 16-bit FLAC under a temporary name, then rename it into place.

    So a FLAC that exists is complete: an interrupted run leaves only a ``.partial``.
    """
    partial = out.with_name(f".{out.name}{_PARTIAL}")
    soundfile.write(partial, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(partial, out)


def _write_manifest(path: Path, records: list[dict[str, Any]]) -> None:
    """Write the manifest atomically, unless it already holds exactly these records."""
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            if [json.loads(line) for line in lines] == records:
                return
        except json.JSONDecodeError:
            pass  # a damaged manifest is simply written again
    write_jsonl_atomic(path, records)


def _settings(min_words: int, limit: int | None) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "min_words": min_words, "limit": limit}


def _record(recording: Recording, text: str, out_dir: Path) -> dict[str, Any]:
    """The manifest line of one converted recording; its duration read from the FLAC."""
    audio = f"audio/{recording.id}.flac"
    frames = soundfile.info(str(out_dir / audio)).frames
    return {
        "id": recording.id,
        "audio": audio,
        "text": text,
        "duration": frames / SAMPLE_RATE,
        "split": "test",
        "source": recording.source,
        "speaker": SPEAKERS[recording.source],
    }


def _summary(
    records: list[dict[str, Any]], skipped: dict[str, dict[str, list[str]]], found: Counter[str]
) -> dict[str, Any]:
    """Per subset: where it comes from, recordings found, kept, hours and skips by reason."""
    summary = {}
    for source, origin in SUBSETS.items():
        rows = [r for r in records if r["source"] == source]
        reasons = skipped[source]
        summary[source] = {
            **origin,
            "recordings_found": found[source],
            "utterances": len(rows),
            "words": sum(len(r["text"].split()) for r in rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "skipped": {
                reason: len(reasons[reason]) for reason in SKIP_REASONS if reason in reasons
            },
            "skipped_ids": {
                reason: reasons[reason] for reason in SKIP_REASONS if reason in reasons
            },
        }
    return summary


def build_real_corpus(
    out_dir: str | Path,
    min_words: int = MIN_WORDS,
    limit: int | None = None,
    progress: bool = True,
) -> Path:
    """Build (or finish building) the real-speech test corpus in `out_dir`; return its manifest.

    `min_words` is the shortest transcript kept; `limit` keeps at most that many utterances
    per source, sorted by id (for quick checks). The packages and arguments are checked
    before anything is written; FLACs already in the folder are kept.
    """
    if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < 1:
        raise ValueError(f"min_words must be a positive integer, got {min_words!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    versions = {**check_packages(), **tool_versions()}
    out_dir = Path(out_dir)
    settings = _settings(min_words, limit)
    expected = {"kind": "real", **settings, "versions": versions}
    resumed = claim_corpus_folder(out_dir, expected, "a real-speech corpus") is not None
    recordings = asterisk_recordings() + librivox_recordings()
    kept, skipped = select(recordings, min_words, limit)

    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    header = {"kind": "real", **settings, "versions": versions}
    if not resumed:
        write_json_atomic(out_dir / "corpus.json", {**header, "complete": False})
    for stale in (out_dir / "audio").glob(f".*{_PARTIAL}"):  # left by an interrupted run
        stale.unlink()
    todo = [(r, t) for r, t in kept if not (out_dir / "audio" / f"{r.id}.flac").exists()]
    for recording, _ in tqdm(todo, desc="real speech", unit="utt", disable=not progress):
        samples = to_16k_mono(*decode(recording))
        write_flac(samples, out_dir / "audio" / f"{recording.id}.flac")

    records = [_record(recording, text, out_dir) for recording, text in kept]
    manifest = out_dir / "manifest.jsonl"
    _write_manifest(manifest, records)
    found = Counter(recording.source for recording in recordings)
    summary = _summary(records, skipped, found)
    summary["asterisk"]["transcripts_without_audio"] = asterisk_transcripts_without_audio()
    sidecar = {
        **header,
        "split": "test",
        "purpose": "evaluation only: real human speech for models trained on synthetic speech",
        "skip_reasons": SKIP_REASONS,
        "utterances": len(records),
        "hours": round(sum(r["duration"] for r in records) / 3600, 4),
        "subsets": summary,
        "complete": True,
    }
    write_json_atomic(out_dir / "corpus.json", sidecar)
    return manifest
