"""Sparse export and audit: lossless packing near the size floor, audits from the saved weights.

A tiny RNN-T is pruned by magnitude to 0.8 per prunable tensor and saved by a real Lightning
`Trainer` with a real pruning callback holding the masks, as a pruning run saves it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_modules.asr.loading import load_recognizer
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.pruning.accounting import floor_bytes, sparsity_summary
from lightning_modules.pruning.audit import audit, format_report
from lightning_modules.pruning.masks import apply_mask, magnitude_mask
from lightning_modules.pruning.methods.magnitude import OneShotMagnitudePruning
from lightning_modules.pruning.packing import (
    PackedFormatError,
    load_packed,
    pack_state_dict,
    pack_tensor,
    save_packed,
    unpack_state_dict,
    unpack_tensor,
)
from lightning_modules.pruning.saved import DEFAULT_RULE, SavedFileError
from lightning_modules.pruning.schedules import SparsitySchedule, kept_count
from lightning_modules.pruning.targets import discover_tensors

SPARSITY = 0.8


def tiny_module() -> RNNTSpeechRecognizer:
    torch.manual_seed(0)
    return RNNTSpeechRecognizer(model=model_config("tiny").model_dump(), max_steps=100)


def prune_by_magnitude(module: pl.LightningModule, sparsity: float) -> dict[str, torch.Tensor]:
    """Each prunable tensor keeps its largest-magnitude entries; returns the masks."""
    masks = {}
    for tensor in discover_tensors(module):
        mask = magnitude_mask(tensor.parameter, kept_count(tensor.numel, sparsity))
        apply_mask(tensor.parameter.data, mask)
        masks[tensor.name] = mask
    return masks


def synthetic_batch() -> dict:
    generator = torch.Generator().manual_seed(1)
    return {
        "ids": ["a", "b"],
        "texts": ["abc", "de"],
        "audio": 0.1 * torch.randn(2, 16_000, generator=generator),
        "audio_lengths": torch.tensor([16_000, 11_000]),
        "tokens": torch.randint(1, 20, (2, 5), generator=generator),
        "token_lengths": torch.tensor([5, 3]),
    }


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous().reshape(-1).view(torch.uint8)


def assert_bit_identical(left: dict, right: dict) -> None:
    assert list(left) == list(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert left[name].shape == right[name].shape, name
        assert torch.equal(bits(left[name]), bits(right[name])), name


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lightning checkpoint of the tiny RNN-T pruned to 0.8, with the callback's masks."""
    module = tiny_module()
    masks = prune_by_magnitude(module, SPARSITY)
    method = OneShotMagnitudePruning(
        SparsitySchedule(final=SPARSITY, start=0, end=0, kind="one_shot")
    )
    method.masks, method.last_update_step = masks, 0  # as after its one-shot update
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=0,
        callbacks=[method],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=DataLoader([synthetic_batch()], batch_size=None))
    path = tmp_path_factory.mktemp("export") / "pruned.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def packed(checkpoint: Path) -> Path:
    from lightning_modules.pruning.export import export_packed

    out = checkpoint.with_suffix(".packed")
    export_packed(checkpoint, out)
    return out


def expected_sparsity(numel: int) -> float:
    return math.floor(SPARSITY * numel) / numel


# ---- the format -------------------------------------------------------------------------


def test_every_dtype_and_odd_value_round_trips_bit_exactly() -> None:
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(37, 29, generator=generator)
    weights[weights.abs() < 1.0] = 0
    weights[0, :4] = torch.tensor([-0.0, float("nan"), float("inf"), -float("inf")])
    state = {
        "float32": weights,
        "float16": weights.half(),
        "bfloat16": weights.bfloat16(),
        "float64": weights.double(),
        "int64": (weights.nan_to_num(0, 0, 0) * 10).long(),
        "bool": weights != 0,
        "scalar": torch.tensor(3.5),
        "zero_scalar": torch.tensor(0.0),
        "empty": torch.zeros(0, 4),
        "all_zero": torch.zeros(300, 300),
        "transposed": weights.t(),  # not contiguous
    }
    assert_bit_identical(unpack_state_dict(pack_state_dict(state)), state)
    negative_zero = unpack_tensor(pack_tensor(state["float32"]))[0, 0]
    assert torch.signbit(negative_zero)  # -0.0 is kept, not dropped as a zero


def sparse_tensor(numel: int, sparsity: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    tensor = torch.randn(numel, generator=generator)
    tensor[torch.randperm(numel, generator=generator)[: round(sparsity * numel)]] = 0
    return tensor


@pytest.mark.parametrize(
    ("sparsity", "expected"),
    [(0.0, "dense"), (0.02, "dense"), (0.05, "bitmask"), (0.5, "bitmask"), (0.9, "delta")],
)
def test_the_smallest_format_is_chosen(sparsity: float, expected: str) -> None:
    tensor = sparse_tensor(80_000, sparsity)
    packed = pack_tensor(tensor)
    nonzeros = int((tensor != 0).sum())
    assert packed.format == expected
    assert packed.nonzeros == nonzeros
    assert packed.nbytes <= floor_bytes(tensor.numel(), nonzeros, 4)
    if expected != "delta":
        assert packed.nbytes == floor_bytes(tensor.numel(), nonzeros, 4)
    assert torch.equal(unpack_tensor(packed), tensor)


def test_positions_are_indexed_when_gaps_are_long_or_the_tensor_small() -> None:
    # 99% sparse with evenly spread non-zeros 100 apart: one delta byte each beats 4-byte indices
    spread = torch.zeros(100_000)
    spread[::100] = 1.5
    assert pack_tensor(spread).format == "delta"
    assert pack_tensor(spread).nbytes == 1000 * (1 + 4)
    # clustered non-zeros with gaps of 10,000: indices (4 bytes) beat 40 escape bytes a gap
    clustered = torch.zeros(100_000)
    clustered[::10_000] = 2.0
    assert pack_tensor(clustered).format == "index"
    assert pack_tensor(clustered).nbytes == 10 * (4 + 4)
    # under 256 entries positions fit one byte: index ties with delta and wins the tie
    small = sparse_tensor(200, 0.99)
    assert pack_tensor(small).format == "index"
    for tensor in (spread, clustered, small):
        assert torch.equal(unpack_tensor(pack_tensor(tensor)), tensor)


def test_delta_escapes_cover_every_gap_length() -> None:
    """Gaps on both sides of the one-byte limit (255) decode to the same positions."""
    gaps = torch.tensor([1, 254, 255, 256, 509, 510, 511, 765, 766, 1, 1, 3000, 2])
    positions = torch.cumsum(gaps, 0) - 1
    tensor = torch.zeros(70_000, dtype=torch.float16)
    tensor[positions] = torch.arange(1, len(gaps) + 1, dtype=torch.float16)
    packed = pack_tensor(tensor)
    assert packed.format == "delta"
    assert torch.equal(bits(unpack_tensor(packed)), bits(tensor))


def test_a_damaged_file_is_refused_and_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.packed"
    state = {"w": sparse_tensor(5000, 0.7)}
    size = save_packed(path, state, {"note": "first"})
    assert path.stat().st_size == size
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "flipped.packed").write_bytes(data)
    with pytest.raises(PackedFormatError, match="CRC mismatch"):
        load_packed(tmp_path / "flipped.packed")
    (tmp_path / "short.packed").write_bytes(data[:20])
    with pytest.raises(PackedFormatError, match="truncated"):
        load_packed(tmp_path / "short.packed")

    with pytest.raises(TypeError, match="metadata must be plain JSON"):
        save_packed(path, state, {"note": object()})
    assert load_packed(path)[1]["note"] == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "flipped.packed",
        "short.packed",
        "weights.packed",
    ]


# ---- export and rebuild -------------------------------------------------------------------


def test_export_rebuilds_the_module_with_identical_weights_and_outputs(
    checkpoint: Path, packed: Path
) -> None:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state_dict, metadata = load_packed(packed)
    assert_bit_identical(state_dict, saved["state_dict"])
    assert metadata["hyper_parameters"] == saved["hyper_parameters"]
    assert metadata["format_version"] == 1
    assert metadata["prunable"] == [t.name for t in discover_tensors(tiny_module())]

    reference = RNNTSpeechRecognizer.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    rebuilt, saved = load_recognizer(packed)
    assert saved.kind == "packed"
    assert not rebuilt.training
    batch = synthetic_batch()
    with torch.no_grad():
        assert torch.equal(rebuilt.loss(batch), reference.loss(batch))
        features, lengths = reference.frontend(batch["audio"], batch["audio_lengths"])
        tokens = torch.nn.functional.pad(batch["tokens"], (1, 0))
        expected = reference.rnnt(features, lengths, tokens, batch["token_lengths"] + 1)[0]
        actual = rebuilt.rnnt(features, lengths, tokens, batch["token_lengths"] + 1)[0]
    assert torch.equal(actual, expected)


def test_packed_file_is_within_a_header_of_the_floor(checkpoint: Path, packed: Path) -> None:
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    summary = sparsity_summary(state_dict)
    size = packed.stat().st_size
    header = len(json.dumps(list(state_dict))) + 64 * len(state_dict) + 1024
    assert size <= summary["floor_bytes"] + header
    assert size <= 1.02 * summary["floor_bytes"]
    assert size < 0.4 * summary["dense_bytes"]  # 80% of nearly all weights gone


# ---- audit --------------------------------------------------------------------------------


def test_audit_of_the_checkpoint_recounts_the_applied_sparsity(checkpoint: Path) -> None:
    report = audit(checkpoint)
    names = [t.name for t in discover_tensors(tiny_module())]
    assert report["kind"] == "checkpoint"
    assert report["prunable_rule"] == "checkpoint pruning masks"
    assert report["file_bytes"] == checkpoint.stat().st_size
    assert [n for n, entry in report["tensors"].items() if entry["prunable"]] == names
    for name in names:
        entry = report["tensors"][name]
        assert entry["sparsity"] == expected_sparsity(entry["numel"]), name
        assert entry["mask_sparsity"] == entry["sparsity"]
        assert entry["mask_violations"] == 0
        assert entry["format"] == "bitmask"
        assert entry["packed_bytes"] == entry["floor_bytes"]
    biases = [e for n, e in report["tensors"].items() if n.endswith("bias")]
    assert biases and all(e["format"] == "dense" and not e["prunable"] for e in biases)
    prunable, model = report["prunable"], report["model"]
    assert prunable["tensors"] == len(names)
    assert prunable["sparsity"] == pytest.approx(SPARSITY, abs=1e-4)
    assert 0 < model["sparsity"] < prunable["sparsity"]  # biases and embedding stay dense
    assert model["numel"] > prunable["numel"]
    assert prunable["packed_bytes"] == prunable["floor_bytes"]
    assert prunable["floor_over_dense"] == pytest.approx(0.2 + 1 / 32, abs=1e-3)
    table = format_report(report)
    assert "prunable set" in table and "whole model" in table
    assert all(name in table for name in names)


def test_audit_of_the_packed_file_agrees_with_the_checkpoint(
    checkpoint: Path, packed: Path
) -> None:
    from_checkpoint, from_packed = audit(checkpoint), audit(packed)
    assert from_packed["kind"] == "packed"
    assert from_packed["prunable_rule"] == "packed metadata"
    assert from_packed["file_bytes"] == packed.stat().st_size
    assert from_packed["file_over_dense"] < from_checkpoint["file_over_dense"]
    for key in ("prunable", "model"):
        for field in ("numel", "nonzeros", "sparsity", "dense_bytes", "packed_bytes"):
            assert from_packed[key][field] == from_checkpoint[key][field], (key, field)


def test_audit_catches_a_pruned_weight_revived_and_falls_back_to_the_name_rule(
    checkpoint: Path, tmp_path: Path
) -> None:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    name = "rnnt.transcriber.forward_lstms.0.weight_hh_l0"
    mask = next(s["masks"] for s in saved["callbacks"].values() if "masks" in s)[name]
    pruned = (~mask).nonzero()[0].tolist()
    saved["state_dict"][name][tuple(pruned)] = 0.5
    torch.save(saved, tmp_path / "tampered.ckpt")
    tampered = audit(tmp_path / "tampered.ckpt")
    assert tampered["tensors"][name]["mask_violations"] == 1
    assert tampered["prunable"]["mask_violations"] == 1

    bare = {"state_dict": saved["state_dict"], "hyper_parameters": saved["hyper_parameters"]}
    torch.save(bare, tmp_path / "no_callbacks.ckpt")
    report = audit(tmp_path / "no_callbacks.ckpt")
    assert report["prunable_rule"] == DEFAULT_RULE
    chosen = [n for n, entry in report["tensors"].items() if entry["prunable"]]
    assert chosen == [t.name for t in discover_tensors(tiny_module())]
    assert "mask_violations" not in report["prunable"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        (b"\x00garbage\xff" * 100, "not a Lightning checkpoint or packed weights file"),
        ({"weights": [1, 2]}, "not a Lightning checkpoint (it has no state_dict)"),
    ],
)
def test_unusable_files_are_refused_by_name(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(SavedFileError, match=re.escape(message)) as error:
        audit(path)
    assert str(path) in str(error.value)


# ---- the commands -------------------------------------------------------------------------


@pytest.mark.slow  # over 5 s
def test_csp_audit_json_and_table(csp: Callable, checkpoint: Path) -> None:
    done = csp("audit", checkpoint, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["prunable_rule"] == "checkpoint pruning masks"
    entries = [e for e in report["tensors"].values() if e["prunable"]]
    assert len(entries) == len(discover_tensors(tiny_module()))
    assert all(e["sparsity"] == expected_sparsity(e["numel"]) for e in entries)
    assert report["prunable"]["sparsity"] == pytest.approx(SPARSITY, abs=1e-4)

    table = csp("audit", checkpoint)
    assert table.returncode == 0
    assert "prunable set" in table.stdout
    assert "rnnt.transcriber.forward_lstms.0.weight_ih_l0" in table.stdout


def test_csp_export_writes_the_packed_file_and_prints_its_size(
    csp: Callable, checkpoint: Path, packed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.packed"
    done = csp("export", checkpoint, "--out", out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == packed.read_bytes()  # deterministic
    printed = {
        line.split()[0]: int(line.split()[1].replace(",", ""))
        for line in done.stdout.splitlines()[1:]
    }
    assert printed["packed"] == out.stat().st_size
    assert printed["floor"] < printed["packed"] < 0.4 * printed["dense"]


@pytest.mark.slow  # over 5 s
def test_csp_names_a_missing_or_foreign_file(csp: Callable, tmp_path: Path) -> None:
    garbage = tmp_path / "notes.ckpt"
    garbage.write_text("not a checkpoint\n")
    for args, message in [
        (["audit", tmp_path / "absent.ckpt"], "absent.ckpt: file not found"),
        (["export", garbage, "--out", tmp_path / "x.packed"], "not a Lightning checkpoint"),
    ]:
        done = csp(*args)
        assert done.returncode == 2
        assert message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.packed").exists()
    helped = csp("--help").stdout
    assert "export" in helped and "audit" in helped
