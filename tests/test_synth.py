"""The offline TTS corpus: deterministic, held-out test voices and sentences, resumable."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import soundfile

from lightning_modules.data.manifest import SPLITS, CorpusError, read_manifest
from lightning_modules.data.synth import CORPUS_SIZES, render_corpus
from lightning_modules.data.synth import engines as engines_module
from lightning_modules.data.synth import render as render_module
from lightning_modules.data.synth.engines import MissingToolError
from lightning_modules.data.text import normalize_transcript

ENGINES = {"espeak-ng", "flite", "festival", "piper", "hibari"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus for seed 0, rendered by two workers; tests must not modify it."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    render_corpus(out, size="tiny", seed=0, workers=2, progress=False)
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


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_whatever_the_worker_count(
    corpus: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    render_corpus(again, size="tiny", seed=0, workers=1, progress=False)
    assert (again / "manifest.jsonl").read_bytes() == (corpus / "manifest.jsonl").read_bytes()
    assert file_hashes(again) == file_hashes(corpus)


@pytest.mark.slow
def test_test_split_holds_out_voices_and_sentences(corpus: Path) -> None:
    rows = manifest_rows(corpus)
    voices = {
        split: {(r["engine"], r["voice"]) for r in rows if r["split"] == split} for split in SPLITS
    }
    texts = {split: {r["text"] for r in rows if r["split"] == split} for split in SPLITS}
    assert all(voices[split] for split in SPLITS), "every split holds utterances"
    assert not voices["test"] & (voices["train"] | voices["dev"])
    assert not texts["test"] & texts["train"]
    assert not texts["dev"] & texts["train"]
    assert {r["engine"] for r in rows} == ENGINES
    assert {r["source"] for r in rows} == {"assistant"}  # the default text
    assert 150 <= len(rows) <= 200
    card = json.loads((corpus / "corpus.json").read_text())["data_card"]
    assert card["test_sentences_in_train"] == card["test_voices_in_train_or_dev"] == 0
    assert card["vocabulary"]["train"] == len({w for r in rows if r["split"] == "train"
                                               for w in r["text"].split()})  # fmt: skip
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


@pytest.mark.slow
def test_audio_and_transcripts_match_the_manifest(corpus: Path) -> None:
    utterances = read_manifest(corpus / "manifest.jsonl")
    for utterance in utterances:
        info = soundfile.info(str(utterance.audio))
        assert (info.format, info.subtype) == ("FLAC", "PCM_16")
        assert (info.samplerate, info.channels) == (16_000, 1)
        assert info.frames / 16_000 == pytest.approx(utterance.duration, abs=1e-6)
        assert utterance.audio == corpus / "audio" / utterance.split / f"{utterance.id}.flac"
        assert normalize_transcript(utterance.text) == utterance.text
        augmentation = utterance.meta["augmentation"]
        assert ("noise" in augmentation) == (utterance.meta["snr_db"] is not None)
        assert ("reverb" in augmentation) == (utterance.meta["rt60_s"] is not None)
    sidecar = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
    assert (sidecar["size"], sidecar["seed"], sidecar["complete"]) == ("tiny", 0, True)
    expected = vars(CORPUS_SIZES["tiny"])
    assert {split: sidecar["splits"][split]["utterances"] for split in SPLITS} == expected


@pytest.mark.slow
def test_rerun_skips_finished_files_and_completes_an_interrupted_render(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    audio = sorted(copy.glob("audio/*/*.flac"))
    mtimes = {path: path.stat().st_mtime_ns for path in audio}

    def must_not_render(*args: object) -> None:
        raise AssertionError("a finished corpus was rendered again")

    with monkeypatch.context() as patch:
        patch.setattr(render_module, "_render_all", must_not_render)
        render_corpus(copy, size="tiny", seed=0, progress=False)
    assert {path: path.stat().st_mtime_ns for path in audio} == mtimes

    rows = manifest_rows(copy)
    for engine in sorted(ENGINES):  # a few files of every engine, as a killed render leaves
        for row in [r for r in rows if r["engine"] == engine][1:6:2]:
            (copy / row["audio"]).unlink()
    (copy / "manifest.jsonl").unlink()
    render_corpus(copy, size="tiny", seed=0, workers=2, progress=False)
    assert file_hashes(copy) == file_hashes(corpus)


@pytest.mark.slow
def test_a_folder_with_another_corpus_is_refused(corpus: Path) -> None:
    before = file_hashes(corpus)
    with pytest.raises(CorpusError, match=r"seed=0, not 1") as refused:
        render_corpus(corpus, size="tiny", seed=1, progress=False)
    assert str(corpus) in str(refused.value)
    with pytest.raises(CorpusError, match=r"size='tiny', not 'small'"):
        render_corpus(corpus, size="small", seed=0, progress=False)
    assert file_hashes(corpus) == before


@pytest.mark.parametrize(
    ("arguments", "named"),
    [({"size": "huge"}, "'huge'"), ({"seed": -1}, "seed"), ({"workers": 0}, "workers")],
)
def test_bad_arguments_are_named_before_anything_is_written(
    tmp_path: Path, arguments: dict, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        render_corpus(tmp_path / "corpus", **{"size": "tiny", **arguments})
    assert not (tmp_path / "corpus").exists()


def test_a_missing_engine_names_its_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        engines_module.shutil,
        "which",
        lambda name: None if name == "festival" else real_which(name),
    )
    with pytest.raises(MissingToolError, match=r"festival \(package festival\).*apt-get install"):
        render_corpus(tmp_path / "corpus", size="tiny")
    assert not (tmp_path / "corpus").exists()
