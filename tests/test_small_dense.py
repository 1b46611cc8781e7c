"""Zhu & Gupta's small-dense control: widths matched to a pruned model's non-zeros, and a row of
the paper table next to the pruning methods."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import CSP_COMMAND, offline_env

from experiments.config import TokenizerSection
from experiments.reproduce import GRIDS
from experiments.small_dense import (
    matched_small_dense,
    nonzero_count,
    parameter_count,
    vocab_size,
)
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config


@pytest.mark.parametrize("preset", ["small", "tiny"])
def test_matched_widths_have_the_pruned_models_non_zero_count(preset: str) -> None:
    config = model_config(preset, ctc_weight=0.5)
    vocab = vocab_size(TokenizerSection())
    dense = parameter_count(config, vocab)
    previous = dense
    for sparsity in (0.5, 0.8, 0.9):
        matched, target = matched_small_dense(config, vocab, sparsity)
        assert target == nonzero_count(config, vocab, sparsity) < dense
        params = parameter_count(matched, vocab)
        assert abs(params - target) / target < 0.03, (sparsity, params, target)
        assert params < previous
        previous = params
        assert matched.encoder_layers == config.encoder_layers  # depth kept, widths scaled
        assert matched.encoder_hidden < config.encoder_hidden


def test_the_control_is_a_row_of_the_table(reproduced: Path, tiny_corpus: Path) -> None:
    """A grid sharing the tiny grid's dense model, with GMP and the control at s = 0.5."""
    grid = yaml.safe_load((GRIDS / "tiny.yaml").read_text(encoding="utf-8"))
    grid.update(name="tiny-control", dense_from="tiny", methods={"gmp": {}}, small_dense=True)
    runs = reproduced.parent
    path = runs / "tiny-control.yaml"
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")
    done = subprocess.run(
        [*CSP_COMMAND, "reproduce", "--grid", str(path), "--corpus", str(tiny_corpus)]
        + ["--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=900,
        env=offline_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reused" in done.stdout  # the tiny grid's dense model: no second dense training
    assert "| Small dense (Zhu & Gupta) |" in done.stdout and "| GMP |" in done.stdout

    cells = json.loads((runs / "tiny-control" / "results.json").read_text())["cells"]
    control = next(c for c in cells if c["label"] == "small_dense")
    pruned = next(c for c in cells if c["label"] == "gmp")
    assert control["status"] == "complete" and control["target_sparsity"] == 0.5
    config = yaml.safe_load((Path(control["run_dir"]) / "config.yaml").read_text())
    assert config["init_from"] is None  # from scratch
    assert config["trainer"]["max_steps"] == 60 + 24  # the dense plus the pruning budget
    module = RNNTSpeechRecognizer.load_from_checkpoint(pruned["checkpoint"], map_location="cpu")
    non_zeros = sum(int((p != 0).sum()) for p in module.parameters())
    assert abs(control["params"] - non_zeros) / non_zeros < 0.05, (control["params"], non_zeros)
