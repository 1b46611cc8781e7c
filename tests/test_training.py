"""Dense RNN-T training end to end on the tiny corpus: learning, decoding, records, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import CSP_COMMAND

from experiments.config import ConfigError, ExperimentConfig
from experiments.evaluate import evaluate
from experiments.metrics import read_metrics
from experiments.train import train
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.data.datamodule import SpeechDataModule
from lightning_modules.data.manifest import read_manifest
from lightning_modules.data.text import ALPHABET
from lightning_modules.data.tokenizer import CharTokenizer
from lightning_modules.data.validation import validate_corpus


def tiny_config(manifest: Path, **trainer: int) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "name": "tiny",
            "corpus": {"kind": "manifest", "path": str(manifest)},
            "model": {"preset": "tiny"},
            "data": {"max_batch_seconds": 20},
            "optim": {"learning_rate": 0.01},
            "trainer": {
                "max_steps": 200,
                "val_every_n_steps": 100,
                "checkpoint_every_n_steps": 50,
                **trainer,
            },
            "decoding": {"beam": 3, "lm_weight": 0.1, "lexicon": True},
        }
    )


@pytest.fixture(scope="module")
def trained_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(tiny_corpus), run_dir)
    return run_dir


def test_records_are_written(trained_run: Path) -> None:
    for name in ("config.yaml", "provenance.json", "metrics.jsonl", "result.json"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    records = read_metrics(trained_run / "metrics.jsonl")
    assert sum("train_loss" in r for r in records) >= 10
    result = json.loads((trained_run / "result.json").read_text())
    assert result["steps"] == 200
    assert result["params"] > 0
    for key in ("dev_wer", "test_wer"):
        assert 0.0 <= result[key] <= 2.0, key
    # WER has no upper bound: beam search of a barely trained model may insert many words
    # (2.56 on some CPUs at 200 steps), so only its range is checked.
    assert 0.0 <= result["test_wer_greedy"] < math.inf
    logged = [r["dev_wer"] for r in records if "dev_wer" in r]
    assert min(logged) == pytest.approx(result["dev_wer"], abs=1e-6)


def test_the_recorded_dev_wer_is_a_fresh_decoding_of_the_chosen_weights(
    trained_run: Path, tiny_corpus: Path
) -> None:
    """The result takes the dev WER the loop measured on the chosen weights instead of
    decoding dev a second time: the number must be the one a fresh decoding gives."""
    result = json.loads((trained_run / "result.json").read_text())
    fresh = evaluate(result["checkpoint"], tiny_corpus, split="dev", batch_seconds=20)
    assert fresh["wer"] == pytest.approx(result["dev_wer"], abs=1e-6)
    validations = [r for r in read_metrics(trained_run / "metrics.jsonl") if "dev_wer" in r]
    assert [r["step"] for r in validations] == [99, 199]  # no second decoding after fit


def test_the_test_decodes_with_the_training_transcripts_lm_and_lexicon(
    trained_run: Path, tiny_corpus: Path
) -> None:
    result = json.loads((trained_run / "result.json").read_text())
    assert result["decoding"]["search"] == "beam" and result["decoding"]["beam"] == 3
    train_texts = [u.text for u in read_manifest(tiny_corpus) if u.split == "train"]
    assert result["decoding"]["lm"]["sentences"] == len(train_texts)
    vocabulary = {word for text in train_texts for word in text.split()}
    assert result["decoding"]["lexicon_words"] == len(vocabulary)
    records = [json.loads(line) for line in (trained_run / "test_utterances.jsonl").open()]
    spelled = {word for record in records for word in record["hypothesis"].split()}
    assert spelled and spelled <= vocabulary


def test_loss_falls(trained_run: Path, tiny_corpus: Path) -> None:
    """On the same dev utterances, the trained model's loss is far below its initial loss.

    Per-batch training losses are too noisy to compare (batches differ in length), so both
    models are scored on the whole dev split.
    """
    trained = RNNTSpeechRecognizer.load_from_checkpoint(
        trained_run / "checkpoints" / "last.ckpt", map_location="cpu"
    ).eval()
    torch.manual_seed(0)
    untrained = RNNTSpeechRecognizer(**trained.hparams).eval()
    data = SpeechDataModule(
        validate_corpus(read_manifest(tiny_corpus)), CharTokenizer(), max_batch_seconds=40
    )
    with torch.no_grad():
        batches = list(data.val_dataloader())
        before = sum(untrained.loss(batch).item() for batch in batches) / len(batches)
        after = sum(trained.loss(batch).item() for batch in batches) / len(batches)
    assert after < 0.6 * before, (before, after)


def test_greedy_and_beam_decoding_return_text(trained_run: Path, tiny_corpus: Path) -> None:
    """A few hundred steps are enough for the tiny model to leave the all-blank stage."""
    last = trained_run / "checkpoints" / "last.ckpt"
    module = RNNTSpeechRecognizer.load_from_checkpoint(last, map_location="cpu").eval()
    data = SpeechDataModule(
        validate_corpus(read_manifest(tiny_corpus)), CharTokenizer(), max_batch_seconds=40
    )
    greedy, beam, ids = [], [], []
    for batch in data.val_dataloader():
        ids += batch["ids"]
        greedy += module.transcribe(batch)
        beam += module.transcribe(batch, beam_width=3)
    assert len(greedy) == len(beam) == len(ids) > 0
    assert any(text.strip() for text in greedy)
    assert any(text.strip() for text in beam)
    assert all(set(text) <= set(ALPHABET) for text in greedy + beam)


def test_existing_run_is_never_overwritten(trained_run: Path, tiny_corpus: Path) -> None:
    with pytest.raises(ConfigError, match="a run already exists here; pass --resume"):
        train(tiny_config(tiny_corpus), trained_run)
    with pytest.raises(ConfigError, match="sections differ: trainer"):
        train(tiny_config(tiny_corpus, max_steps=50), trained_run, resume=True)


def test_killed_run_resumes_to_identical_weights(
    tiny_corpus: Path, tmp_path: Path, cli_env: dict
) -> None:
    """SIGKILL mid-epoch, `--resume`: the final weights equal those of an uninterrupted run."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"name: tiny\ncorpus: {{kind: manifest, path: {tiny_corpus}}}\nmodel: {{preset: tiny}}\n"
        "data: {max_batch_seconds: 40}\n"
        "trainer: {max_steps: 50, val_every_n_steps: 25, checkpoint_every_n_steps: 7}\n"
    )
    command = [*CSP_COMMAND, "train", "--config", str(config)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": cli_env}
    subprocess.run([*command, "--run-dir", str(tmp_path / "whole")], check=True, **quiet)

    run_dir = tmp_path / "killed"
    worker = subprocess.Popen([*command, "--run-dir", str(run_dir)], **quiet)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not (last.exists() and read_step(last) >= 14) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_at = read_step(last)
    assert 0 < killed_at < 50
    resumed_run = subprocess.run(
        [*command, "--run-dir", str(run_dir), "--resume"],
        capture_output=True,
        text=True,
        env=cli_env,
    )
    assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]

    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == whole["global_step"] == 50
    for name, tensor in whole["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name


def read_step(checkpoint: Path) -> int:
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    except (EOFError, RuntimeError):  # caught while Lightning was still writing it
        return -1
