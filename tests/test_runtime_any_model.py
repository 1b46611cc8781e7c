"""Speed of any pruned model: a model that is not our recognizer, pruned, packed, loaded back
and measured; the report names the Linears sped up and the parts it could not speed up.

Timings on a loaded machine are noise, so these tests check what runs where, the outputs
and the bytes, never a speed-up value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from lightning_modules.asr.loading import ModelFileError
from lightning_modules.pruning.packing import save_packed
from lightning_modules.pruning.saved import default_prunable
from lightning_modules.runtime import measure_saved, measure_speed
from lightning_modules.runtime.any_model import FELL_BACK

LINEARS = ["head.0", "head.2", "head.4"]
UNCOVERED = {
    "conv.weight": "Conv1d",
    "lstm.weight_ih_l0": "LSTM",
    "lstm.weight_hh_l0": "LSTM",
    "attention.in_proj_weight": "MultiheadAttention",
    "attention.out_proj.weight": "NonDynamicallyQuantizableLinear",  # read, never called
}


class Tagger(nn.Module):
    """Conv1d, LSTM and attention (outside the generic path), then a Linear head (inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 16, 3, padding=1)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.attention = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        h, _ = self.lstm(h)
        h, _ = self.attention(h, h, h, need_weights=False)
        return self.head(h)


def tagger() -> Tagger:
    """The factory `csp bench --model-factory` calls."""
    return Tagger()


def pruned_packed(path: Path, sparsity: float = 0.9) -> Tagger:
    """A Tagger with each prunable tensor magnitude-pruned to `sparsity`, saved packed."""
    torch.manual_seed(0)
    model = Tagger()
    state = model.state_dict()
    with torch.no_grad():
        for name in default_prunable(state):
            weight = state[name]
            keep = round((1 - sparsity) * weight.numel())
            threshold = weight.abs().flatten().kthvalue(weight.numel() - keep).values
            weight.masked_fill_(weight.abs() <= threshold, 0.0)  # +0.0: -0.0 packs as data
    save_packed(path, model.state_dict(), {"pattern": "unstructured"})
    return model


def inputs() -> torch.Tensor:
    return torch.randn(4, 20, 8, generator=torch.Generator().manual_seed(1))


def test_a_packed_non_recognizer_runs_its_linears_sparse_and_names_what_it_could_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tagger.packed"
    pruned = pruned_packed(path)
    loaded = Tagger()
    report = measure_saved(path, loaded, inputs(), formats="csr", repeats=1, threads=1)
    assert torch.equal(loaded.head[2].weight, pruned.head[2].weight)  # the file's weights
    assert report.sped_up == LINEARS and report.forced == "csr" and not report.fell_back
    shapes = [layer.input_shape for layer in report.layers]
    assert shapes == [(4, 20, 32), (4, 20, 128), (4, 20, 128)]
    assert {part.name: part.module for part in report.not_sped_up} == UNCOVERED
    reasons = {part.name: part.reason for part in report.not_covered}
    assert "nn.Linear only" in reasons["lstm.weight_hh_l0"]
    assert "not called" in reasons["attention.out_proj.weight"]
    assert report.outputs_match and report.max_abs_difference < 1e-4
    sizes = report.weight_bytes
    assert sizes["packed"] < sizes["dense"] / 3  # 90 % zeros, bitmask encoding
    assert sizes["linear_sparse"] < sizes["linear_dense"]
    assert min(report.seconds.values()) > 0 and report.speedup > 0
    json.dumps(report.as_dict())  # plain data


def test_auto_measures_each_linear_and_says_why_any_stays_dense(tmp_path: Path) -> None:
    model = pruned_packed(tmp_path / "tagger.packed")
    x = inputs()
    report = measure_speed(model, lambda m: m(x), repeats=1, threads=1)  # a callable input
    assert [layer.name for layer in report.layers] == LINEARS
    assert all(set(layer.seconds) >= {"dense", "csr"} for layer in report.layers)
    dense_linears = {p.name: p.reason for p in report.not_sped_up if p.name in LINEARS}
    assert sorted(report.sped_up + list(dense_linears)) == LINEARS
    for reason in dense_linears.values():
        assert reason.startswith("dense measured fastest") or reason == FELL_BACK
    assert report.fell_back == (report.seconds["sparse"] > 0.95 * report.seconds["dense"])
    assert report.outputs_match
    assert "sped up" in report.summary() or "dense:" in report.summary()


def test_weights_of_another_shape_are_refused_naming_the_file_and_tensor(tmp_path: Path) -> None:
    path = tmp_path / "tagger.packed"
    pruned_packed(path)
    wider = Tagger()
    wider.head[4] = nn.Linear(128, 12)
    with pytest.raises(ModelFileError, match=r"tagger\.packed.*head\.4\.weight"):
        measure_saved(path, wider, inputs(), repeats=1)


def test_csp_bench_measures_another_model_with_its_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.bench import bench

    path = tmp_path / "tagger.packed"
    pruned_packed(path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    runner = CliRunner()
    refused = runner.invoke(bench, [str(path), "--corpus", str(tmp_path)])
    assert refused.exit_code != 0
    assert "no RNNTSpeechRecognizer hyper-parameters" in str(refused.exception)
    assert "--model-factory" in str(refused.exception)
    out = tmp_path / "bench.json"
    command = [str(path), "--model-factory", "test_runtime_any_model:tagger"]
    command += ["--input-shape", "2,10,8", "--format", "csr", "--repeats", "1", "--out", str(out)]
    done = runner.invoke(bench, command)
    assert done.exit_code == 0, done.output
    assert "sped up: head.0 (csr)" in done.output and "lstm.weight_ih_l0 [LSTM]" in done.output
    record = json.loads(out.read_text())
    assert record["sped_up"] == LINEARS and record["input_shape"] == [2, 10, 8]
