"""`csp evaluate` and `csp transcribe` on real models: the WER training logged, per-utterance
records, transcripts of any audio, and refusals that name the file."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from experiments.config import ConfigError, ExperimentConfig
from experiments.evaluate import evaluate
from experiments.train import train
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.data.corpora import corpus_from_path
from lightning_modules.pruning.packing import save_packed
from lightning_modules.pruning.saved import read_saved

BATCH_SECONDS = 20


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny run of a few steps; its result.json (with `run_dir` added)."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    config = ExperimentConfig.model_validate(
        {
            "name": "tiny-evaluate",
            "corpus": {"kind": "manifest", "path": str(tiny_corpus)},
            "model": {"preset": "tiny"},
            "data": {"max_batch_seconds": BATCH_SECONDS},
            "optim": {"learning_rate": 0.01},
            "trainer": {"max_steps": 20, "val_every_n_steps": 10, "checkpoint_every_n_steps": 10},
            "tracking": {"mode": "disabled"},
        }
    )
    train(config, run_dir)
    return {**json.loads((run_dir / "result.json").read_text()), "run_dir": run_dir}


@pytest.fixture(scope="module")
def untrained(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's model at a fixed random initialization, packed: a real model whose greedy
    search emits plenty of (wrong) text, so transcripts are compared character by character
    (a model trained for a few steps only emits blanks)."""
    hyper_parameters = read_saved(trained["checkpoint"]).hyper_parameters
    torch.manual_seed(0)
    module = RNNTSpeechRecognizer(**hyper_parameters)
    path = tmp_path_factory.mktemp("untrained") / "untrained.packed"
    save_packed(path, module.state_dict(), {"hyper_parameters": hyper_parameters})
    return path


def manifest_lines(manifest: Path, split: str) -> list[dict[str, Any]]:
    """The split's manifest records, audio paths made absolute."""
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [
        {**line, "audio": str(manifest.parent / line["audio"])}
        for line in lines
        if line["split"] == split
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def as_logged(value: float) -> float:
    """WER as the module logs it (a float32 tensor), so result.json holds it."""
    return float(np.float32(value))


def test_help_lists_both_commands(csp: Callable) -> None:
    listed = csp("--help").stdout.split("Commands:")[1].splitlines()
    for name in ("evaluate", "transcribe"):
        (line,) = [line for line in listed if line.split()[:1] == [name]]
        assert len(line.split()) > 3 and not line.rstrip().endswith("..."), line
    assert "--batch-seconds" in csp("evaluate", "--help").stdout


def test_evaluate_gives_the_runs_test_wer_from_checkpoint_and_packed_file(
    csp: Callable, trained: dict[str, Any], tiny_corpus: Path, tmp_path: Path
) -> None:
    test = manifest_lines(tiny_corpus, "test")
    outputs = {}
    for label, model in (
        ("checkpoint", Path(trained["checkpoint"])),
        ("packed", trained["run_dir"] / "model.packed"),
    ):
        out = tmp_path / label
        done = csp(
            "evaluate", model, "--corpus", tiny_corpus, "--split", "test",
            "--batch-seconds", BATCH_SECONDS, "--out", out,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        records = read_jsonl(out / "utterances.jsonl")
        assert summary["model_kind"] == label
        # the run's own per-utterance test records: the same decoding, line for line
        assert read_jsonl(trained["run_dir"] / "test_utterances.jsonl") == records
        assert summary["model"] == str(model)
        assert summary["split"] == "test" and summary["beam"] == 0
        assert summary["corpus"] == {"kind": "manifest", "path": str(tiny_corpus)}
        assert summary["utterances"] == len(records) == len(test) == trained["utterances"]["test"]
        assert summary["decode_wall_s"] > 0
        assert as_logged(summary["wer"]) == pytest.approx(trained["test_wer"], abs=1e-9)
        assert summary["wer"] == pytest.approx(trained["test_wer"], abs=1e-6)
        assert done.stdout.splitlines() == [
            f"split test: WER {summary['wer']:.4f} ({summary['words']} words, "
            f"{len(test)} utterances), CER {summary['cer']:.4f}"
        ]

        ids = [record["id"] for record in records]
        assert ids == sorted(line["id"] for line in test)
        words = sum(record["words"] for record in records)
        assert words == summary["words"] == sum(len(line["text"].split()) for line in test)
        errors = sum(record["errors"] for record in records)
        assert errors == pytest.approx(summary["wer"] * words, abs=1e-6)
        chars = sum(record["chars"] for record in records)
        char_errors = sum(record["char_errors"] for record in records)
        assert char_errors / chars == pytest.approx(summary["cer"], abs=1e-12)
        by_id = {line["id"]: line for line in test}
        for record in records:
            line = by_id[record["id"]]
            assert record["reference"] == line["text"]
            for field in ("engine", "voice", "augmentation"):
                assert record[field] == line[field], field
        outputs[label] = records
    assert outputs["checkpoint"] == outputs["packed"]


def test_transcribe_matches_evaluate_at_any_sample_rate(
    csp: Callable, untrained: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """transcribe decodes each file alone: compared with evaluate on batches of one utterance
    (a tiny --batch-seconds), on a test-only manifest."""
    test = manifest_lines(tiny_corpus, "test")[:6]
    manifest = tmp_path / "test-only.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in test))
    out = tmp_path / "out"
    done = csp(
        "evaluate", untrained, "--corpus", manifest, "--batch-seconds", "0.001", "--out", out
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["model_kind"] == "packed"
    hypotheses = {r["id"]: r["hypothesis"] for r in read_jsonl(out / "utterances.jsonl")}
    assert all(hypotheses.values())  # the untrained model emits text for every utterance

    audio, rate = soundfile.read(test[0]["audio"], dtype="float32")
    assert rate == 16_000 and audio.ndim == 1
    low = torchaudio.functional.resample(torch.from_numpy(audio), rate, 8_000).numpy()
    stereo = tmp_path / "copy-8k-stereo.wav"
    soundfile.write(stereo, np.stack([low, 0.5 * low], axis=1), 8_000)

    paths = [line["audio"] for line in test]
    done = csp("transcribe", untrained, *paths, stereo)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == len(paths) + 1
    for line, path, record in zip(lines, paths, test, strict=False):
        assert line == f"{path}\t{hypotheses[record['id']]}"
    path, text = lines[-1].split("\t")
    assert path == str(stereo) and text.strip()


def test_evaluate_with_a_lexicon_spells_only_training_words(
    csp: Callable, untrained: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """Driven by a strong character LM, the untrained model spells text that holds non-words;
    with --lexicon every word it spells is a word of the training transcripts, and the
    summary says how it decoded."""
    train_words = {w for line in manifest_lines(tiny_corpus, "train") for w in line["text"].split()}
    spelled = {}
    fused = ["--beam", "3", "--lm-weight", "1", "--length-bonus", "5"]
    for name, options in (("free", fused), ("lexicon", [*fused, "--lexicon"])):
        out = tmp_path / name
        done = csp("evaluate", untrained, "--corpus", tiny_corpus, *options, "--out", out)
        assert done.returncode == 0, done.stderr[-3000:]
        records = read_jsonl(out / "utterances.jsonl")
        spelled[name] = {w for r in records for w in r["hypothesis"].split()}
    summary = json.loads((tmp_path / "lexicon" / "summary.json").read_text())
    assert summary["decoding"]["lexicon"] and summary["decoding"]["search"] == "beam"
    assert summary["decoding"]["lexicon_words"] == len(train_words)
    assert spelled["free"] - train_words  # unconstrained, it spells non-words
    assert spelled["lexicon"] and spelled["lexicon"] <= train_words

    done = csp("evaluate", untrained, "--corpus", tiny_corpus, "--lexicon")
    assert done.returncode == 2 and "need beam search" in done.stderr, done.stderr


def assert_refused(done: Any, named: Path | str, *expected: str, out: Path | None = None) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and str(named) in done.stderr, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert out is None or not out.exists()


def test_a_missing_model_is_refused(csp: Callable, tiny_corpus: Path, tmp_path: Path) -> None:
    absent, out = tmp_path / "absent.ckpt", tmp_path / "out"
    done = csp("evaluate", absent, "--corpus", tiny_corpus, "--out", out)
    assert_refused(done, absent, "file not found", out=out)
    done = csp("transcribe", absent, manifest_lines(tiny_corpus, "test")[0]["audio"])
    assert_refused(done, absent, "file not found")


def test_a_corpus_at_the_wrong_sample_rate_is_refused(
    csp: Callable, trained: dict[str, Any], tmp_path: Path
) -> None:
    lines = []
    for split in ("train", "dev", "test"):
        audio = tmp_path / f"{split}.wav"
        soundfile.write(audio, np.zeros(8_000, dtype=np.float32), 8_000)
        lines.append({"id": split, "audio": audio.name, "text": "hello world", "split": split})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    done = csp("evaluate", trained["checkpoint"], "--corpus", manifest, "--out", out)
    assert_refused(done, tmp_path / "test.wav", "sample rate 8000 Hz", out=out)


def test_a_packed_file_of_another_shape_is_refused(
    csp: Callable, trained: dict[str, Any], tiny_corpus: Path, tmp_path: Path
) -> None:
    hyper_parameters = read_saved(trained["checkpoint"]).hyper_parameters
    narrower = RNNTSpeechRecognizer(
        **{**hyper_parameters, "model": model_config("tiny", encoder_hidden=32).model_dump()}
    )
    packed = tmp_path / "other-shape.packed"
    save_packed(packed, narrower.state_dict(), {"hyper_parameters": hyper_parameters})
    out = tmp_path / "out"
    done = csp("evaluate", packed, "--corpus", tiny_corpus, "--out", out)
    assert_refused(done, packed, "do not fit", "rnnt.transcriber.forward_lstms", out=out)
    done = csp("transcribe", packed, manifest_lines(tiny_corpus, "test")[0]["audio"])
    assert_refused(done, packed, "do not fit")


def test_a_missing_audio_file_is_refused(
    csp: Callable, trained: dict[str, Any], tiny_corpus: Path, tmp_path: Path
) -> None:
    present = manifest_lines(tiny_corpus, "test")[0]["audio"]
    absent = tmp_path / "absent.wav"
    done = csp("transcribe", trained["checkpoint"], present, absent)
    assert_refused(done, absent, "not found")
    assert done.stdout == ""
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    done = csp("transcribe", trained["checkpoint"], garbage)
    assert_refused(done, garbage, "unreadable audio")


def librispeech_layout(manifest: Path, root: Path, parts: dict[str, tuple[str, int]]) -> None:
    """A LibriSpeech-layout root (SPEAKER/CHAPTER/ID.flac and SPEAKER-CHAPTER.trans.txt) made
    of the tiny corpus's audio: part → (the tiny split it takes, how many utterances)."""
    taken: dict[str, int] = {}
    for number, (part, (split, count)) in enumerate(parts.items()):
        lines = manifest_lines(manifest, split)[taken.get(split, 0) :][:count]
        taken[split] = taken.get(split, 0) + count
        chapter = root / part / str(100 + number) / "7"
        chapter.mkdir(parents=True)
        ids = [f"{100 + number}-7-{index:04d}" for index in range(len(lines))]
        for uid, line in zip(ids, lines, strict=True):
            shutil.copyfile(line["audio"], chapter / f"{uid}.flac")
        transcript = "".join(
            f"{uid} {line['text'].upper()}\n" for uid, line in zip(ids, lines, strict=True)
        )
        (chapter / f"{100 + number}-7.trans.txt").write_text(transcript)


def test_librispeech_test_sets_are_scored_one_by_one(
    untrained: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """A root holding only test-clean and test-other (no training parts), scored on each;
    `--split test` pools them; a single part folder is a corpus too."""
    root = tmp_path / "LibriSpeech"
    librispeech_layout(tiny_corpus, root, {"test-clean": ("test", 3), "test-other": ("test", 2)})
    clean = evaluate(untrained, root, "test-clean", batch_seconds=BATCH_SECONDS, progress=False)
    other = evaluate(untrained, root, "test-other", batch_seconds=BATCH_SECONDS, progress=False)
    both = evaluate(untrained, root, "test", batch_seconds=BATCH_SECONDS, progress=False)
    assert (clean["utterances"], other["utterances"], both["utterances"]) == (3, 2, 5)
    assert both["words"] == clean["words"] + other["words"]
    assert both["wer_by_part"] == {"test-clean": clean["wer"], "test-other": other["wer"]}
    assert clean["wer_by_part"] is None  # one test set: nothing to break down
    alone = evaluate(untrained, root / "test-other", "test", batch_seconds=BATCH_SECONDS)
    assert alone["wer"] == other["wer"]
    with pytest.raises(ConfigError, match="or a part of this corpus: test-clean, test-other"):
        evaluate(untrained, root, "dev-other", batch_seconds=BATCH_SECONDS, progress=False)


def test_a_lhotse_prepared_librispeech_is_read_and_trained_on(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """`lhotse prepare librispeech` output, read as it is: parts mapped to splits by name."""
    from lhotse.recipes import prepare_librispeech

    root = tmp_path / "LibriSpeech"
    parts = {
        "train-clean-100": ("train", 12), "dev-clean": ("dev", 3),
        "test-clean": ("test", 3), "test-other": ("test", 2),
    }  # fmt: skip
    librispeech_layout(tiny_corpus, root, parts)
    prepare_librispeech(root, output_dir=tmp_path / "manifests", num_jobs=1)
    section = corpus_from_path(tmp_path / "manifests")
    assert section["kind"] == "lhotse" and [p["part"] for p in section["test"]] == [
        "test-clean",
        "test-other",
    ]
    config = ExperimentConfig.model_validate(
        {
            "name": "lhotse-librispeech",
            "corpus": section,
            "model": {"preset": "tiny"},
            "data": {"max_batch_seconds": BATCH_SECONDS},
            "trainer": {"max_steps": 2, "val_every_n_steps": 2, "checkpoint_every_n_steps": 2},
            "tracking": {"mode": "disabled"},
        }
    )
    result = train(config, tmp_path / "run")
    assert result.utterances == {"train": 12, "dev": 3, "test": 5}
    scored = {
        part: evaluate(result.checkpoint, tmp_path / "manifests", part, batch_seconds=BATCH_SECONDS)
        for part in ("test-clean", "test-other")
    }
    assert (scored["test-clean"]["utterances"], scored["test-other"]["utterances"]) == (3, 2)
    # the run reports each test set of its test split, as evaluating each alone gives it
    assert result.test_wer_by_part == pytest.approx({p: s["wer"] for p, s in scored.items()})
    errors = sum(s["errors"] for s in scored.values())
    assert result.test_wer == pytest.approx(errors / sum(s["words"] for s in scored.values()))


def test_a_grid_on_librispeech_shows_each_test_set(
    tiny_corpus: Path, tmp_path: Path, csp: Callable
) -> None:
    """`csp reproduce` on a LibriSpeech root with test-clean and test-other: every cell of
    the table, its CSV row and the report's breakdown show both test sets."""
    root = tmp_path / "LibriSpeech"
    parts = {
        "train-clean-100": ("train", 16), "dev-clean": ("dev", 4),
        "test-clean": ("test", 4), "test-other": ("test", 3),
    }  # fmt: skip
    librispeech_layout(tiny_corpus, root, parts)
    done = csp("reproduce", "--grid", "tiny", "--corpus", root, "--runs-dir", tmp_path / "runs")
    assert done.returncode == 0, done.stderr[-3000:]
    report = tmp_path / "runs" / "tiny" / "report"
    table = (report / "table.md").read_text()
    for method in ("Dense", "CSP", "GMP"):  # the main table's rows come first
        row = next(line for line in table.splitlines() if line.startswith(f"| {method} |"))
        assert re.search(r"test-clean \d\.\d{3}, test-other \d\.\d{3}", row), row
    rows = list(csv.DictReader(io.StringIO((report / "table.csv").read_text())))
    for row in rows:
        assert set(json.loads(row["test_wer_by_part"])) == {"test-clean", "test-other"}
    breakdown = list(csv.DictReader(io.StringIO((report / "breakdown.csv").read_text())))
    groups = {r["group"] for r in breakdown if r["grouping"] == "test set"}
    assert groups == {"test-clean", "test-other"}
