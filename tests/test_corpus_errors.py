"""Every kind of bad corpus input gets an error naming the file and the problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from lightning_modules.data.manifest import CorpusError, read_manifest
from lightning_modules.data.readers.librispeech import read_librispeech
from lightning_modules.data.validation import validate_corpus


def tone(path: Path, seconds: float = 0.5, rate: int = 16_000, channels: int = 1) -> None:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t)
    soundfile.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)


def make_corpus(folder: Path, records: list[dict] | None = None) -> Path:
    """A valid three-split corpus of tones; `records` replaces its manifest lines."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    if records is None:
        records = []
        for index, split in enumerate(["train", "train", "dev", "test"]):
            tone(folder / "audio" / f"u{index}.flac")
            records.append(
                {
                    "id": f"u{index}",
                    "audio": f"audio/u{index}.flac",
                    "text": "A tone.",
                    "split": split,
                }
            )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest


def records_of(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def test_valid_corpus_passes_with_durations(tmp_path: Path) -> None:
    utterances = validate_corpus(read_manifest(make_corpus(tmp_path)))
    assert [u.text for u in utterances] == ["a tone"] * 4
    assert all(u.duration == pytest.approx(0.5) for u in utterances)


def break_corpus(tmp_path: Path, how: str) -> tuple[Path, str]:
    """Damage a valid corpus one way; return the manifest and what the error must say."""
    manifest = make_corpus(tmp_path)
    records = records_of(manifest)
    first = tmp_path / "audio" / "u0.flac"
    if how == "missing audio":
        first.unlink()
        return manifest, f"{first}: audio file missing"
    if how == "unreadable audio":
        first.write_bytes(b"this is not a flac file" * 10)
        return manifest, f"{first}: unreadable audio"
    if how == "wrong sample rate":
        tone(first, rate=8_000)
        return manifest, f"{first}: sample rate 8000 Hz, expected 16000 Hz"
    if how == "stereo":
        tone(first, channels=2)
        return manifest, f"{first}: 2 channels, expected mono"
    if how == "empty transcript":
        records[1]["text"] = "  ?! "
    elif how == "non-normalizable transcript":
        records[1]["text"] = "call 911"
    elif how == "duplicate ids":
        records[1]["id"] = "u0"
    elif how == "empty split":
        records = [r for r in records if r["split"] != "dev"]
    make_corpus(tmp_path, records)
    return manifest, {
        "empty transcript": "u1: transcript '  ?! ' is empty",
        "non-normalizable transcript": (
            "u1: transcript 'call 911' holds characters with no spelling"
        ),
        "duplicate ids": "duplicate utterance id 'u0'",
        "empty split": "split 'dev' is empty",
    }[how]


BAD_INPUTS = [
    "missing audio",
    "unreadable audio",
    "wrong sample rate",
    "stereo",
    "empty transcript",
    "non-normalizable transcript",
    "duplicate ids",
    "empty split",
]


@pytest.mark.parametrize("how", BAD_INPUTS)
def test_bad_input_is_named(tmp_path: Path, how: str) -> None:
    manifest, expected = break_corpus(tmp_path, how)
    with pytest.raises(CorpusError) as error:
        validate_corpus(read_manifest(manifest))
    assert expected in str(error.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    manifest = make_corpus(tmp_path)
    (tmp_path / "audio" / "u0.flac").unlink()
    records = records_of(manifest)
    records[3]["text"] = "4 8 15"
    make_corpus(tmp_path, records)
    with pytest.raises(CorpusError, match="2 problem") as error:
        validate_corpus(read_manifest(manifest))
    assert "u0.flac: audio file missing" in str(error.value)
    assert "u3: transcript '4 8 15'" in str(error.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", ":2: not valid JSON"),
        ('{"id": "x", "audio": "a.flac", "split": "train"}', ":2: missing field(s) text"),
        (
            '{"id": "x", "audio": "a.flac", "text": "a", "split": "eval"}',
            ":2: field 'split' is 'eval'",
        ),
        ('["a list"]', ":2: expected a JSON object"),
    ],
)
def test_malformed_manifest_line_is_named(tmp_path: Path, line: str, expected: str) -> None:
    manifest = make_corpus(tmp_path)
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    with pytest.raises(CorpusError, match=str(manifest)) as error:
        read_manifest(manifest)
    assert expected in str(error.value)


def test_librispeech_layout(tmp_path: Path) -> None:
    chapter = tmp_path / "dev-clean" / "84" / "121123"
    chapter.mkdir(parents=True)
    for index in range(2):
        tone(chapter / f"84-121123-000{index}.flac")
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
    )
    utterances = validate_corpus(
        read_librispeech([tmp_path / "dev-clean"], "dev"), required_splits=["dev"]
    )
    assert [(u.id, u.text, u.split) for u in utterances] == [
        ("84-121123-0000", "go do you hear", "dev"),
        ("84-121123-0001", "but in less than five minutes", "dev"),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no \\*.trans.txt"):
        read_librispeech([tmp_path / "empty"], "dev")
    with pytest.raises(CorpusError, match="LibriSpeech folder not found"):
        read_librispeech([tmp_path / "absent"], "dev")


def test_train_stops_before_training_on_bad_corpus(tmp_path: Path, csp: Callable) -> None:
    """The CLI reports the bad file and writes nothing into the run directory."""
    manifest, expected = break_corpus(tmp_path, "wrong sample rate")
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"name: bad\ncorpus: {{kind: manifest, path: {manifest}}}\nmodel: {{preset: tiny}}\n"
    )
    run_dir = tmp_path / "run"
    done = csp("train", "--config", config, "--run-dir", run_dir)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()
