"""The sparse runtime: same logits and transcripts as the masked dense model, refusals that
name the tensor, and `csp bench` end to end on the tiny model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import CSP_COMMAND, REPO

from experiments.bench import batch_features, decode_all
from lightning_modules.asr.loading import ModelFileError, load_weights
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.pruning.packing import save_packed
from lightning_modules.pruning.saved import read_saved
from lightning_modules.pruning.sparsity_patterns import parse_pattern
from lightning_modules.pruning.targets import discover_tensors
from lightning_modules.runtime.convert import build_runtime
from lightning_modules.runtime.formats import REQUIRED_GAIN, SparseMatrix, choose_format
from lightning_modules.runtime.layers import SparseLinear, SparseLSTM, SparseLSTMTranscriber

LOGIT_TOLERANCE = 1e-4
"""Sparse and dense products sum in different orders: float32 logits agree to about 1e-6
here; 1e-4 (absolute, logits of order 1-10) leaves room for other CPUs."""


def pruned_tiny(spec: str, sparsity: float = 0.75, **overrides) -> RNNTSpeechRecognizer:
    torch.manual_seed(0)
    model = RNNTSpeechRecognizer(model=model_config("tiny", **overrides).model_dump()).eval()
    pattern = parse_pattern(spec)
    with torch.no_grad():
        for tensor in discover_tensors(model):
            weight = tensor.parameter
            weight.mul_(pattern.select(weight.abs(), round((1 - sparsity) * weight.numel())))
    return model


def noise(count: int = 4) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(16_000 + 2_000 * i, generator=generator) for i in range(count)]


@pytest.mark.slow  # over 5 s
@pytest.mark.parametrize(
    ("spec", "format"), [("unstructured", "csr"), ("2:4", "csr"), ("4x4", "bsr")]
)
def test_sparse_runtime_gives_the_masked_dense_models_logits_and_transcripts(
    spec: str, format: str
) -> None:
    dense = pruned_tiny(spec)
    batches = batch_features(dense, noise(), 2)
    runtime, report = build_runtime(
        dense, *batches[0], parse_pattern(spec), formats=(format,), measure=False
    )
    kinds = {type(m) for m in runtime.rnnt.modules()}
    assert {SparseLSTMTranscriber, SparseLSTM, SparseLinear} <= kinds  # the sparse path runs
    assert all(layer.runs != "dense" for layer in report.layers)
    features, lengths = batches[0]
    with torch.no_grad():
        expected, _ = dense.rnnt.transcribe(features, lengths)
        encoded, _ = runtime.rnnt.transcribe(features, lengths)
        assert torch.allclose(encoded, expected, atol=LOGIT_TOLERANCE)
        tokens = torch.zeros(2, 3, dtype=torch.long)
        ones = torch.full((2,), 3)
        predicted, _, _ = dense.rnnt.predict(tokens, ones, None)
        runtime_predicted, _, _ = runtime.rnnt.predict(tokens, ones, None)
        assert torch.allclose(runtime_predicted, predicted, atol=LOGIT_TOLERANCE)
        logits, _, _ = dense.rnnt.join(expected, lengths, predicted, ones)
        runtime_logits, _, _ = runtime.rnnt.join(encoded, lengths, runtime_predicted, ones)
        assert torch.allclose(runtime_logits, logits, atol=LOGIT_TOLERANCE)
    assert decode_all(runtime, batches) == decode_all(dense, batches)


def test_measured_choice_keeps_dense_where_sparse_does_not_pay() -> None:
    dense_weight = torch.randn(64, 32)  # nothing pruned: CSR only adds indices
    choice = choose_format(dense_weight, columns=1)
    assert set(choice.seconds) == {"dense", "csr"}
    if choice.format != "dense":  # sparse only when clearly faster
        assert choice.seconds[choice.format] <= REQUIRED_GAIN * choice.seconds["dense"]
    sparse_weight = torch.randn(512, 512) * (torch.rand(512, 512) < 0.02)
    matrix = SparseMatrix.build(sparse_weight, "csr")
    assert matrix.nbytes < SparseMatrix.build(sparse_weight, "dense").nbytes / 5
    x = torch.randn(512, 3)
    assert torch.allclose(matrix.matmul(x), sparse_weight @ x, atol=1e-5)


def test_a_model_exported_at_a_pattern_is_refused_by_a_model_of_another_shape(
    tmp_path: Path,
) -> None:
    model = pruned_tiny("2:4")
    path = tmp_path / "tiny-2of4.packed"
    save_packed(
        path, model.state_dict(), {"hyper_parameters": dict(model.hparams), "pattern": "2:4"}
    )
    saved = read_saved(path)
    assert saved.pattern == "2:4" and not saved.pattern_breaks()
    wider = RNNTSpeechRecognizer(model=model_config("tiny", encoder_hidden=96).model_dump())
    with pytest.raises(ModelFileError, match=r"tiny-2of4.packed.*forward_lstms\.0\.weight_ih_l0"):
        load_weights(wider, saved)
    save_packed(
        path, model.state_dict(), {"hyper_parameters": dict(model.hparams), "pattern": "1:4"}
    )
    with pytest.raises(ModelFileError, match=r"recorded pattern 1:4 does not hold on rnnt\."):
        load_weights(RNNTSpeechRecognizer(**model.hparams), read_saved(path))


def test_csp_bench_measures_the_tiny_model(tiny_corpus: Path, tmp_path: Path, cli_env) -> None:
    model = pruned_tiny("4x4", sparsity=0.8)
    path = tmp_path / "tiny-4x4.packed"
    save_packed(
        path, model.state_dict(), {"hyper_parameters": dict(model.hparams), "pattern": "4x4"}
    )
    out = tmp_path / "bench.json"
    command = [*CSP_COMMAND, "bench", str(path), "--corpus", str(tiny_corpus), "--batch", "1,4"]
    command += ["--utterances", "4", "--repeats", "1", "--threads", "1", "--out", str(out)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=cli_env, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "speed-up" in done.stdout
    record = json.loads(out.read_text())
    assert record["pattern"] == "4x4" and record["utterances"] == 4
    assert [row["batch"] for row in record["results"]] == [1, 4]
    for row in record["results"]:
        assert row["transcripts_equal"]
        assert row["speedup"] == pytest.approx(row["dense"]["seconds"] / row["sparse"]["seconds"])
        assert (
            row["dense"]["rtf"] > 0
            and row["sparse"]["weight_bytes"] <= row["dense"]["weight_bytes"]
        )
        assert row["dense"]["weights_read_per_audio_s"] > 0
        assert {layer["name"] for layer in row["runtime"]["layers"]} >= {"joiner.output"}

    bad = subprocess.run(
        [*CSP_COMMAND, "bench", str(tmp_path / "missing.packed"), "--corpus", str(tiny_corpus)],
        capture_output=True, text=True, env=cli_env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "missing.packed" in bad.stderr


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="2:4 semi-structured kernels need a CUDA GPU"
)
def test_two_of_four_runs_on_semi_structured_kernels_on_a_gpu() -> None:
    from lightning_modules.runtime.formats import candidate_formats, semi_structured_available

    device = torch.device("cuda")
    if not semi_structured_available(device):
        pytest.skip("this GPU has no 2:4 sparse tensor cores (compute capability < 8.0)")
    weight = torch.randn(256, 256, device=device, dtype=torch.float16)
    weight *= parse_pattern("2:4").select(weight.abs(), weight.numel() // 2)
    assert ("semi_structured", None) in candidate_formats(weight, parse_pattern("2:4"))
    matrix = SparseMatrix.build(weight, "semi_structured")
    x = torch.randn(256, 64, device=device, dtype=torch.float16)
    assert torch.allclose(matrix.matmul(x), weight @ x, atol=1e-2, rtol=1e-2)
