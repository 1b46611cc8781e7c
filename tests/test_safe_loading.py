"""Files a user names load as weights only: a checkpoint whose unpickling would run code is
refused, naming the file, by every command that reads one, and the code never runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_corpus_errors import make_corpus

from experiments.config import ConfigError, ExperimentConfig, dump_config
from experiments.evaluate import evaluate
from experiments.records import CHECKPOINTS, CONFIG, LAST_CHECKPOINT
from experiments.train import build_module, build_tokenizer, load_start_weights, train
from lightning_modules.pruning.audit import audit
from lightning_modules.pruning.export import export_packed
from lightning_modules.pruning.saved import SavedFileError, load_checkpoint


def leave_marker(path: str) -> None:
    """What the hostile file calls when unpickled: a file appears, so the test can tell."""
    Path(path).touch()


class Hostile:
    """Unpickles by calling `leave_marker`, as a payload would call `os.system`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return leave_marker, (str(self.marker),)


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    """A file shaped like a Lightning checkpoint that runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": {}, "hyper_parameters": {}, "global_step": 2, "payload": Hostile(marker)},
        path,
    )
    return path


def tone_config(manifest: Path, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "name": "tones",
            "corpus": {"kind": "manifest", "path": str(manifest)},
            "model": {"preset": "tiny"},
            "data": {"max_batch_seconds": 20},
            "trainer": {
                "max_steps": 4,
                "val_every_n_steps": 2,
                "checkpoint_every_n_steps": 2,
                "bench_utterances": 0,
            },
            "tracking": {"mode": "disabled"},
            **fields,
        }
    )


def test_the_hostile_file_runs_code_when_loaded_unsafely(tmp_path: Path) -> None:
    """The control: the file the other tests refuse does run code under a full unpickle."""
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "hostile.ckpt", marker)
    torch.load(path, weights_only=False)  # the file was written by this test
    assert marker.exists()


def refused_by_name(error: pytest.ExceptionInfo[Exception], path: Path) -> None:
    message = str(error.value)
    assert str(path) in message and "refused" in message and "run code" in message, message


def test_load_checkpoint_refuses_a_file_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "hostile.ckpt", marker)
    with pytest.raises(SavedFileError) as error:
        load_checkpoint(path)
    refused_by_name(error, path)
    assert "leave_marker" in str(error.value)  # what it would have called
    assert not marker.exists()


@pytest.mark.parametrize("command", ["export", "audit", "evaluate"])
def test_commands_refuse_a_model_file_that_would_run_code(command: str, tmp_path: Path) -> None:
    marker, out = tmp_path / "marker", tmp_path / "out"
    path = hostile_checkpoint(tmp_path / "hostile.ckpt", marker)
    manifest = make_corpus(tmp_path / "corpus")
    read: dict[str, Callable[[], object]] = {
        "export": lambda: export_packed(path, out),
        "audit": lambda: audit(path),
        "evaluate": lambda: evaluate(path, manifest, out=out, progress=False),
    }
    with pytest.raises((SavedFileError, ConfigError)) as error:
        read[command]()
    refused_by_name(error, path)
    assert not marker.exists() and not out.exists()


def test_training_refuses_an_init_from_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "dense.ckpt", marker)
    config = tone_config(make_corpus(tmp_path / "corpus"), init_from=str(path))
    with pytest.raises(ConfigError, match="^init_from: ") as error:
        train(config, tmp_path / "run")
    refused_by_name(error, path)
    assert not marker.exists()


def test_resume_refuses_a_last_checkpoint_that_would_run_code(tmp_path: Path) -> None:
    marker, run_dir = tmp_path / "marker", tmp_path / "run"
    config = tone_config(make_corpus(tmp_path / "corpus"))
    run_dir.mkdir()
    (run_dir / CONFIG).write_text(dump_config(config), encoding="utf-8")
    path = hostile_checkpoint(run_dir / CHECKPOINTS / LAST_CHECKPOINT, marker)
    with pytest.raises(ConfigError, match="^resume: ") as error:
        train(config, run_dir, resume=True)
    refused_by_name(error, path)
    assert not marker.exists()


@pytest.mark.slow  # trains on tones
def test_our_own_checkpoints_resume_and_start_runs_as_weights_only(tmp_path: Path) -> None:
    """A run's checkpoints hold only tensors and plain data: they start a pruning run
    (`init_from`) and resume (Lightning reads them with weights_only=True too)."""
    manifest = make_corpus(tmp_path / "corpus")
    dense = train(tone_config(manifest), tmp_path / "dense", score_test=False)
    last = tmp_path / "dense" / CHECKPOINTS / LAST_CHECKPOINT
    pruning = tone_config(
        manifest,
        name="pruned",
        init_from=str(last),
        pruning={
            "method": "gmp",
            "sparsity": 0.5,
            "schedule": {"kind": "cubic", "start": 0, "end": 2, "every": 2},
        },
    )
    module = build_module(pruning, build_tokenizer(pruning, []))
    load_start_weights(module, last)
    saved = load_checkpoint(last)["state_dict"]
    assert all(torch.equal(saved[name], value) for name, value in module.state_dict().items())
    train(pruning, tmp_path / "pruned", score_test=False)
    for config, run_dir in ((tone_config(manifest), "dense"), (pruning, "pruned")):
        resumed = train(config, tmp_path / run_dir, resume=True, score_test=False)
        assert resumed.resumed and resumed.steps == dense.steps == 4
