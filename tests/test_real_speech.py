"""The real-speech test set (`csp data real`): built from the Debian packages themselves, with
real decoding; test split only, deterministic and resumable."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from lightning_modules.data import real
from lightning_modules.data.manifest import CorpusError, read_manifest
from lightning_modules.data.real import Recording, Skipped, build_real_corpus, spoken_text
from lightning_modules.data.text import normalize_transcript
from lightning_modules.data.validation import validate_corpus

LIMIT = 3
FIELDS = {"id", "audio", "text", "duration", "split", "source", "speaker"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few utterances of each source; tests must not modify it."""
    out = tmp_path_factory.mktemp("real") / "few"
    build_real_corpus(out, limit=LIMIT, progress=False)
    return out


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def manifest_rows(folder: Path) -> list[dict]:
    lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def sidecar(folder: Path) -> dict:
    return json.loads((folder / "corpus.json").read_text(encoding="utf-8"))


def test_the_manifest_is_a_valid_test_only_corpus(corpus: Path) -> None:
    rows = manifest_rows(corpus)
    checked = validate_corpus(read_manifest(corpus / "manifest.jsonl"), required_splits=["test"])
    assert len(checked) == len(rows) == 2 * LIMIT
    assert all(set(row) == FIELDS and row["split"] == "test" for row in rows)
    assert [row["source"] for row in rows] == ["asterisk"] * LIMIT + ["librivox"] * LIMIT
    ids = [row["id"] for row in rows]
    assert ids == sorted(set(ids))
    assert {row["speaker"] for row in rows} == set(real.SPEAKERS.values())
    with pytest.raises(CorpusError, match="split 'train' is empty"):
        validate_corpus(read_manifest(corpus / "manifest.jsonl"))  # not a training corpus


def test_audio_is_16k_mono_flac_matching_the_manifest_and_the_source(corpus: Path) -> None:
    recordings = {r.id: r for r in real.asterisk_recordings() + real.librivox_recordings()}
    for row in manifest_rows(corpus):
        path = corpus / row["audio"]
        info = soundfile.info(str(path))
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "FLAC",
            "PCM_16",
            16_000,
            1,
        )
        assert row["audio"] == f"audio/{row['id']}.flac"
        assert row["duration"] == info.frames / 16_000 > 0.5
        # Lossless: the FLAC holds exactly the samples decoded from the package's file.
        assert recordings[row["id"]].source == row["source"]
        samples, rate = real.decode(recordings[row["id"]])
        assert rate == 16_000
        flac, _ = soundfile.read(str(path), dtype="int16")
        np.testing.assert_array_equal(flac, samples[0])


def test_transcripts_are_normalized_spelled_out_and_long_enough(corpus: Path) -> None:
    for row in manifest_rows(corpus):
        assert row["text"] == normalize_transcript(row["text"])
        assert not any(char.isdigit() for char in row["text"])
        assert len(row["text"].split()) >= real.MIN_WORDS


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("Please press 1 to mute, or 8 to exit.", "please press one to mute or eight to exit"),
        ("Please leave your message. (simple tone sound plays)", "please leave your message"),
        ("<s> he was not an ill disposed young man </s>", "he was not an ill disposed young man"),
        ("Call-Forward on No Answer.", "call forward on no answer"),
        ("M I S D N", "m i s d n"),
    ],
)
def test_notes_are_dropped_and_lone_digits_spelled(raw: str, spoken: str) -> None:
    assert spoken_text(raw) == spoken


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[sound of monkeys screaming]", "non_speech"),
        ("(10 seconds of silence)", "non_speech"),
        ("press 0 for help", "number"),  # "zero" or "oh"
        ("dial 500 to attempt a connection", "number"),
        ("at least a 28.8 kilobit modem", "number"),
        ("3D audio enabled", "number"),
        ("press * to toggle pause, press # to enter", "symbol"),
        ("For more information, visit www.asterisk.org.", "abbreviation"),
        ("the Asterisk open source PBX", "acronym"),
    ],
)
def test_uncertain_spoken_forms_are_skipped_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(Skipped) as skipped:
        spoken_text(raw)
    assert skipped.value.reason == reason and reason in real.SKIP_REASONS


def test_min_words_is_a_parameter_and_changes_only_the_too_short_count() -> None:
    recordings = real.asterisk_recordings() + real.librivox_recordings()
    kept = {}
    for min_words in (1, 3, 8):
        chosen, skipped = real.select(recordings, min_words=min_words, limit=None)
        assert all(len(text.split()) >= min_words for _, text in chosen)
        content = {k: len(v) for k, v in skipped["asterisk"].items() if k != "too_short"}
        kept[min_words] = (len(chosen), content)
    assert kept[1][0] > kept[3][0] > kept[8][0]
    assert kept[1][1] == kept[3][1] == kept[8][1]


def test_corpus_json_records_versions_counts_skips_and_sources(corpus: Path) -> None:
    record = sidecar(corpus)
    assert record["complete"] is True and record["split"] == "test"
    assert (record["min_words"], record["limit"], record["utterances"]) == (3, LIMIT, 2 * LIMIT)
    for package in real.PACKAGES:
        installed = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        ).stdout
        assert record["versions"][package] == installed != ""
    asterisk, librivox = record["subsets"]["asterisk"], record["subsets"]["librivox"]
    assert asterisk["utterances"] == librivox["utterances"] == LIMIT
    assert asterisk["packages"] == ["asterisk-core-sounds-en-g722", "asterisk-core-sounds-en"]
    assert librivox["packages"] == ["pocketsphinx-testdata"]
    assert asterisk["recordings_found"] > 500 and librivox["recordings_found"] == 5
    assert record["hours"] == round(sum(r["duration"] for r in manifest_rows(corpus)) / 3600, 4)
    # Skips are counted over the whole package, each id under its reason.
    for reason, ids in {
        "non_speech": ["asterisk-beep", "asterisk-silence.1"],
        "number": ["asterisk-dictate.forhelp", "asterisk-demo-instruct"],
        "symbol": ["asterisk-dictate.both_help"],
        "too_short": ["asterisk-digits.1", "asterisk-hello"],
    }.items():
        assert set(ids) <= set(asterisk["skipped_ids"][reason])
        assert asterisk["skipped"][reason] == len(asterisk["skipped_ids"][reason])
    assert set(asterisk["skipped"]) <= set(record["skip_reasons"])
    assert "pls-try-call-later" in asterisk["transcripts_without_audio"]


def test_a_rerun_writes_nothing_and_an_interrupted_build_is_completed(
    corpus: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    stamps = {path: path.stat().st_mtime_ns for path in copy.rglob("*")}
    build_real_corpus(copy, limit=LIMIT, progress=False)
    assert {path: path.stat().st_mtime_ns for path in copy.rglob("*")} == stamps
    assert file_hashes(copy) == file_hashes(corpus)

    rows = manifest_rows(copy)  # as a killed run leaves it: some audio, a partial, no manifest
    for row in rows[1::2]:
        (copy / row["audio"]).unlink()
    (copy / "audio" / f".{rows[1]['id']}.flac.partial").write_bytes(b"half a FLAC")
    (copy / "manifest.jsonl").unlink()
    build_real_corpus(copy, limit=LIMIT, progress=False)
    assert file_hashes(copy) == file_hashes(corpus)


def test_a_folder_made_otherwise_is_refused_and_left_alone(corpus: Path, tmp_path: Path) -> None:
    before = file_hashes(corpus)
    with pytest.raises(CorpusError, match=r"limit=3, not 2") as refused:
        build_real_corpus(corpus, limit=2, progress=False)
    assert str(corpus) in str(refused.value)
    with pytest.raises(CorpusError, match=r"min_words=3, not 5"):
        build_real_corpus(corpus, min_words=5, limit=LIMIT, progress=False)
    assert file_hashes(corpus) == before
    stray = tmp_path / "stray"
    (stray / "audio").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no corpus.json"):
        build_real_corpus(stray, progress=False)
    with pytest.raises(ValueError, match="min_words"):
        build_real_corpus(tmp_path / "bad", min_words=0)
    assert not (tmp_path / "bad").exists()


def test_a_missing_package_is_named_with_its_apt_get_command() -> None:
    assert set(real.check_packages()) == set(real.PACKAGES)
    absent = {"csp-no-such-package": Path("/nonexistent"), **real.PACKAGES}
    with pytest.raises(CorpusError) as missing:
        real.check_packages(absent)
    message = str(missing.value)
    assert "csp-no-such-package" in message
    assert "apt-get install -y csp-no-such-package" in message
    assert "asterisk-core-sounds-en " not in message  # installed ones are not named


def test_other_rates_and_channels_are_resampled_to_16k_mono() -> None:
    clip = real.librivox_recordings()[0]
    samples, rate = real.decode(clip)
    as_float = torch.from_numpy(samples.astype(np.float32) / 32768)
    stereo_8k = torchaudio.functional.resample(as_float, rate, 8_000).repeat(2, 1).numpy()
    mono = real.to_16k_mono(stereo_8k, 8_000)
    assert mono.ndim == 1 and mono.shape[0] == samples.shape[1]
    np.testing.assert_array_equal(real.to_16k_mono(samples, rate), samples[0])  # untouched


def test_data_help_lists_real(csp: Callable) -> None:
    group = csp("data", "--help")
    assert group.returncode == 0
    (line,) = [line for line in group.stdout.splitlines() if line.split()[:1] == ["real"]]
    assert not line.rstrip().endswith("...")
    command = csp("data", "real", "--help")
    assert "--min-words" in command.stdout and "--limit" in command.stdout


@pytest.mark.slow
def test_the_whole_corpus_from_the_command_line_is_deterministic(
    csp: Callable, tmp_path: Path
) -> None:
    done = csp("data", "real", "--out", tmp_path / "cli", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ready: {tmp_path / 'cli' / 'manifest.jsonl'}" in done.stdout
    rows = manifest_rows(tmp_path / "cli")
    validate_corpus(read_manifest(tmp_path / "cli" / "manifest.jsonl"), required_splits=["test"])
    record = sidecar(tmp_path / "cli")
    assert record["subsets"]["asterisk"]["utterances"] >= 250
    assert record["subsets"]["librivox"]["utterances"] == 5
    assert record["utterances"] == len(rows) and record["hours"] > 0.25
    for source in ("asterisk", "librivox"):
        counted = record["subsets"][source]
        assert (
            counted["utterances"] + sum(counted["skipped"].values())
            == (counted["recordings_found"])
        )
    build_real_corpus(tmp_path / "again", progress=False)  # a fresh build, same packages
    assert file_hashes(tmp_path / "again") == file_hashes(tmp_path / "cli")


def test_recording_ids_are_unique_and_every_clip_has_a_transcript() -> None:
    recordings: list[Recording] = real.asterisk_recordings() + real.librivox_recordings()
    ids = [recording.id for recording in recordings]
    assert len(ids) == len(set(ids))
    assert all(r.raw_text for r in recordings if r.source == "librivox")
