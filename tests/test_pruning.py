"""The pruning engine: discovery, schedules, masks, every method on two models, resume, DDP."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from conftest import REPO
from pruning_harness import (
    ConformerClassifier,
    fit,
    make_method,
    schedule,
    tiny_data,
    tiny_rnnt,
)

from experiments.metrics import read_metrics
from lightning_modules.asr.rnnt import bf16_lstm_runs_on_this_cpu
from lightning_modules.pruning.audit import audit
from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.masks import magnitude_mask, select_top_k
from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.methods.csp import CompressedSensingPruning
from lightning_modules.pruning.registry import Role
from lightning_modules.pruning.schedules import SparsitySchedule, cubic_sparsity, kept_count
from lightning_modules.pruning.sensing import (
    from_blocks,
    normal_equations,
    recover,
    sensing_matrix,
    to_blocks,
)
from lightning_modules.pruning.targets import PatternError, discover_tensors

ENGINE_METHODS = sorted(name for name, cls in METHODS.items() if issubclass(cls, SparsePruning))
"""Every registered method built on the engine (all but Lightning's own ModelPruning)."""


# ---- schedules and validation -------------------------------------------------------------


def test_cubic_schedule_reaches_the_absolute_target() -> None:
    s = SparsitySchedule(final=0.8, start=10, end=50, every=10)
    assert [s.target(t) for t in (0, 9, 10)] == [0.0, 0.0, 0.0]
    assert s.target(19) == s.target(10)  # held between updates
    assert s.target(20) == pytest.approx(cubic_sparsity(0.25, 0.0, 0.8))
    assert s.target(50) == s.target(10_000) == 0.8
    values = [s.target(t) for t in range(0, 60)]
    assert values == sorted(values)
    assert [t for t in range(60) if s.is_update_step(t)] == [10, 20, 30, 40, 50]
    assert kept_count(1000, 0.8) == 200


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"final": 1.0}, r"final sparsity must lie in \[0, 1\)"),
        ({"final": -0.1}, r"final sparsity must lie in \[0, 1\)"),
        ({"start": 10, "end": 10}, r"end \(t1=10\) must be after start \(t0=10\)"),
        ({"every": 0}, "update interval `every` must be ≥ 1"),
        ({"kind": "exponential"}, "schedule kind must be one of"),
    ],
)
def test_impossible_schedules_fail_at_construction(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SparsitySchedule(**{"final": 0.5, "start": 0, "end": 10, **arguments})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sparsity_weight": -1.0}, "sparsity_weight must be a non-negative number"),
        ({"reconstruction_weight": -0.5}, "reconstruction_weight must be a non-negative"),
        ({"sensing_ratio": 0.0}, r"sensing_ratio must lie in \(0, 1\]"),
        ({"sensing_ratio": 1.5}, r"sensing_ratio must lie in \(0, 1\]"),
        ({"block_size": 0}, "block_size must be an integer ≥ 1"),
        ({"sensing": "fourier"}, "sensing must be one of"),
        ({"error_threshold": 0.0}, "error_threshold must be > 0"),
    ],
)
def test_bad_csp_options_fail_at_construction(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompressedSensingPruning(schedule(), **options)


@pytest.mark.parametrize("numel", [1000, 70_000, 524_288])
def test_banded_top_k_selects_exactly_what_topk_selects(numel: int) -> None:
    values = torch.randn(numel, generator=torch.Generator().manual_seed(numel))
    values[: numel // 3] = -1.0  # a third tied at the bottom, like entries already pruned
    for k in (0, 1, numel // 10, numel // 2, 2 * numel // 3 + 1, numel - 5, numel):
        chosen = select_top_k(values, k)
        reference = torch.zeros(numel, dtype=torch.bool)
        reference[torch.topk(values, k).indices] = True
        assert int(chosen.sum()) == k
        if k:
            assert values[chosen].min() == values[reference].min()
            assert values[~chosen].max() <= values[chosen].min() if k < numel else True


# ---- discovery --------------------------------------------------------------------------


def test_discovery_covers_lstm_linear_attention_and_convolutions() -> None:
    rnnt = {t.name for t in discover_tensors(tiny_rnnt(10))}
    assert "rnnt.transcriber.backward_lstms.1.weight_ih_l0" in rnnt
    assert "rnnt.predictor.lstm.weight_hh_l0" in rnnt
    assert "rnnt.joiner.linear.weight" in rnnt or any(n.startswith("rnnt.joiner") for n in rnnt)
    assert not any("bias" in n or "embedding" in n for n in rnnt)

    conformer = {t.name for t in discover_tensors(ConformerClassifier())}
    assert "encoder.conformer_layers.0.self_attn.in_proj_weight" in conformer
    assert "encoder.conformer_layers.0.self_attn.out_proj.weight" in conformer
    assert "encoder.conformer_layers.0.conv_module.sequential.2.weight" in conformer  # depthwise
    assert not any("norm" in n or "bias" in n for n in conformer)

    chosen = discover_tensors(ConformerClassifier(), include=["*self_attn*"], exclude=["*out_*"])
    assert {t.name.rsplit(".", 1)[-1] for t in chosen} == {"in_proj_weight"}


def test_pattern_matching_nothing_fails_before_training(tiny_corpus: Path) -> None:
    method = make_method("gmp", schedule(), include=["rnnt.transcriber.gru*"])
    module = tiny_rnnt(5)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(PatternError, match=r"include pattern 'rnnt.transcriber.gru\*'"):
        fit(module, [method], max_steps=5, data=tiny_data(tiny_corpus))
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


# ---- every method reaches its target and keeps pruned weights at zero ---------------------


class ZeroWatch(pl.Callback):
    """After each optimizer step, checks that everything pruned so far is still exactly zero,
    and records whether Adam's first moment was non-zero there (what would revive them)."""

    def __init__(self, method: pl.Callback) -> None:
        self.method = method
        self.checked = 0
        self.moments_could_revive = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not getattr(self.method, "pruning_started", False):
            return
        optimizer = trainer.optimizers[0]
        for tensor in self.method.tensors:
            mask = self.method.masks[tensor.name]
            assert torch.all(tensor.parameter[~mask] == 0), tensor.name
            moment = optimizer.state.get(tensor.parameter, {}).get("exp_avg")
            if moment is not None and bool((moment[~mask] != 0).any()):
                self.moments_could_revive = True
        self.checked += 1


@pytest.mark.parametrize("name", ENGINE_METHODS)
def test_engine_methods_reach_target_on_the_rnnt(
    name: str, tiny_corpus: Path, tmp_path: Path
) -> None:
    method = make_method(name, schedule(final=0.7, start=2, end=8, every=2))
    watch = ZeroWatch(method)
    # bf16 autocast all the same where oneDNN has no bf16 LSTM (no AVX-512): torch's own kernels
    kernels = nullcontext() if bf16_lstm_runs_on_this_cpu() else torch.backends.mkldnn.flags(False)
    with kernels:
        fit(
            tiny_rnnt(14),
            [method, watch],
            max_steps=14,
            data=tiny_data(tiny_corpus),
            metrics=tmp_path / "metrics.jsonl",
            accumulate_grad_batches=2,
            gradient_clip_val=0.5,
            precision="bf16-mixed",
        )
    realized = {t.name: float((t.parameter == 0).float().mean()) for t in method.tensors}
    for tensor in method.tensors:
        target = 1 - kept_count(tensor.numel, 0.7) / tensor.numel
        assert realized[tensor.name] == pytest.approx(target, abs=0.5 / tensor.numel)
    # IMP restarts Adam's moments at every rewind: none are left that could revive a weight
    assert watch.checked >= 6 and (watch.moments_could_revive or name == "imp")

    records = read_metrics(tmp_path / "metrics.jsonl")
    updates = [r for r in records if "pruning/target_sparsity" in r]
    assert updates and updates[-1]["pruning/sparsity"] == pytest.approx(
        sum((t.parameter == 0).sum().item() for t in method.tensors)
        / sum(t.numel for t in method.tensors)
    )
    assert all("pruning/mask_checksum" in r for r in updates)


@pytest.mark.slow  # over 5 s
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_prunes_a_torchaudio_conformer(name: str) -> None:
    # torch's pruning hooks never run for attention's out_proj, so Lightning's callback
    # refuses it (tested below); every method prunes the same set here
    exclude = ["*.out_proj.weight"]
    method = make_method(name, schedule(final=0.6, start=2, end=8, every=2), exclude=exclude)
    fit(ConformerClassifier(batches=4), [method], max_steps=16)  # 4 epochs of 4 steps
    tensors = method.tensors
    assert any(t.name.endswith("in_proj_weight") for t in tensors)
    total = sum(t.numel for t in tensors)
    zeros = sum(int((t.parameter == 0).sum()) for t in tensors)
    assert zeros / total == pytest.approx(0.6, abs=len(tensors) / total)


def test_model_pruning_refuses_attention_output_projections() -> None:
    method = make_method("model_pruning", schedule())
    with pytest.raises(ValueError, match="cannot prune encoder.conformer_layers.0.self_attn.out"):
        fit(ConformerClassifier(batches=1), [method], max_steps=2)


def test_model_pruning_reaches_absolute_target_on_the_rnnt(tiny_corpus: Path) -> None:
    method = make_method("model_pruning", schedule(final=0.7, start=2, end=8, every=2))
    data = tiny_data(tiny_corpus)
    data.setup("fit")
    epoch = len(data.train_dataloader())
    fit(tiny_rnnt(3 * epoch), [method], max_steps=3 * epoch, data=data)
    lstm = [t for t in method.tensors if "lstm" in t.name]
    assert lstm, "ModelPruning must see the LSTM weights"
    for tensor in method.tensors:
        zeros = int((getattr(tensor.module, tensor.attribute) == 0).sum())
        assert abs(zeros - math.floor(0.7 * tensor.numel)) <= 1, tensor.name


def test_a_model_pruning_run_prunes_at_every_schedule_interval(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    """Lightning's ModelPruning prunes at epoch ends; in a run of `csp train` its epochs last
    one schedule interval, so it updates its masks as often as the step-clock methods (here
    at steps 2, 4, 6, 8 and 10) instead of once per pass over the corpus."""
    from experiments.config import ExperimentConfig
    from experiments.train import train

    base = {
        "corpus": {"kind": "manifest", "path": str(tiny_corpus)},
        "model": {"preset": "tiny"},
        "data": {"max_batch_seconds": 20},
        "tracking": {"mode": "disabled"},
    }
    dense = train(
        ExperimentConfig.model_validate(
            {**base, "name": "dense", "trainer": {"max_steps": 2, "val_every_n_steps": 2}}
        ),
        tmp_path / "dense",
    )
    pruning = {
        "method": "model_pruning",
        "sparsity": 0.6,
        "schedule": {"kind": "cubic", "start": 0, "end": 10, "every": 2},
    }
    config = {
        **base,
        "name": "model-pruning",
        "init_from": dense.checkpoint,
        "pruning": pruning,
        "trainer": {"max_steps": 14, "val_every_n_steps": 14, "checkpoint_every_n_steps": 7},
    }
    result = train(ExperimentConfig.model_validate(config), tmp_path / "run")
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    targets = [r["pruning/target_sparsity"] for r in records if "pruning/target_sparsity" in r]
    assert len(targets) >= 6  # an epoch end every 2 of the 14 steps
    rising = sorted(set(targets))
    assert len(rising) == 5 and rising[-1] == pytest.approx(0.6)
    reached = [r["pruning/sparsity"] for r in records if "pruning/sparsity" in r]
    assert reached == pytest.approx(targets, abs=0.01)  # each update reaches its target
    assert result.realized_sparsity == pytest.approx(0.6, abs=0.01)


# ---- CSP's compressed-sensing step --------------------------------------------------------


def test_recovery_finds_the_support_of_exactly_sparse_weights() -> None:
    """k-sparse blocks measured with ρ = 0.75 (far above the ~2·k/n·log(n/k) limit at 10%
    density) are recovered from scratch, support and values."""
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(96, 64, generator=generator)
    k = weight.numel() // 10
    keep = torch.randperm(weight.numel(), generator=generator)[:k]
    sparse = torch.zeros(weight.numel())
    sparse[keep] = weight.flatten()[keep]
    blocks = to_blocks(sparse.view(96, 64), 64)
    phi = sensing_matrix("gaussian", 48, 64, seed=0, name="w")
    allowed = torch.ones_like(blocks, dtype=torch.bool)
    estimate, support = recover(
        *normal_equations(blocks @ phi.T, phi), k, allowed, torch.zeros_like(blocks), 200
    )
    assert torch.equal(from_blocks(support, sparse).flatten(), sparse != 0)
    assert torch.allclose(estimate, blocks, atol=1e-4)


@pytest.mark.slow  # over 5 s
def test_csp_sense_recovers_the_support_of_k_sparse_weights() -> None:
    module = tiny_rnnt(5)
    method = CompressedSensingPruning(schedule(), sensing_ratio=0.75, recovery_iterations=30)
    method.setup(pl.Trainer(logger=False), module, "fit")
    tensor = method.tensors[0]
    with torch.no_grad():
        k = kept_count(tensor.numel, 0.9)
        tensor.parameter.mul_(magnitude_mask(tensor.parameter, k))
    sensed = method.sense(tensor.name, k)
    assert torch.equal(sensed.support, tensor.parameter != 0)
    assert sensed.error < 1e-4


def test_identity_sensing_selects_the_magnitude_top_k() -> None:
    module = tiny_rnnt(5)
    method = CompressedSensingPruning(schedule(), sensing="identity", sensing_ratio=0.3)
    method.setup(pl.Trainer(logger=False), module, "fit")
    assert method.sensing_ratio == 1.0
    for tensor in method.tensors:
        k = kept_count(tensor.numel, 0.6)
        support = method.sense(tensor.name, k).support
        assert torch.equal(support, magnitude_mask(tensor.parameter, k)), tensor.name


def test_csp_logs_errors_terms_and_waits_above_the_error_threshold(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    method = CompressedSensingPruning(
        schedule(final=0.8, start=2, end=10, every=2),
        error_threshold=0.05,  # nothing is compressible that well: every tensor waits
        sparsity_weight=10.0,
        reconstruction_weight=10.0,
    )
    fit(
        tiny_rnnt(12),
        [method],
        max_steps=12,
        data=tiny_data(tiny_corpus),
        metrics=tmp_path / "m.jsonl",
    )
    records = read_metrics(tmp_path / "m.jsonl")
    updates = [r for r in records if "csp/waiting_tensors" in r]
    assert [r["step"] for r in updates] == [2, 4, 6, 8, 10]
    waiting = [r["csp/waiting_tensors"] for r in updates]
    assert waiting[1] == len(method.tensors) and waiting[-1] == 0  # cut at t1 at the latest
    assert updates[1]["pruning/sparsity"] == 0.0 < updates[-1]["pruning/sparsity"]
    assert all(0 < r["csp/error_mean"] < 1.5 for r in updates[1:])
    terms = [r for r in records if "csp/sparsity_term" in r]
    assert terms and all(r["csp/reconstruction_term"] >= 0 for r in terms)
    assert any(r["csp/sparsity_term"] > 0 for r in terms)


# ---- resume and DDP ---------------------------------------------------------------------


class Crash(Exception):
    pass


class CrashAt(pl.Callback):
    """Stops training at a step as a crash would: nothing is saved beyond the last checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"crashed at step {self.step}")


RESUMED = [
    *(pytest.param(name, {}, id=name) for name in ENGINE_METHODS),
    # killed at step 7: the checkpoint of step 6 holds the statistics of the sensing at step
    # 6, gathered at steps 4 and 5 on the weights of those steps
    pytest.param("csp", {"sensing": "activation"}, id="csp-activation"),
]


@pytest.mark.parametrize(("name", "options"), RESUMED)
def test_resumed_run_ends_with_the_same_masks(
    name: str, options: dict, tiny_corpus: Path, tmp_path: Path
) -> None:
    def run(directory: Path, callbacks: list, ckpt: Path | None = None) -> pl.Callback:
        method = make_method(name, schedule(final=0.7, start=2, end=10, every=2), **options)
        saver = pl.callbacks.ModelCheckpoint(
            dirpath=directory, every_n_train_steps=3, save_top_k=0, save_last=True
        )
        fit(
            tiny_rnnt(14),
            [method, saver, *callbacks],
            max_steps=14,
            data=tiny_data(tiny_corpus),
            ckpt_path=ckpt,
            enable_checkpointing=True,
        )
        return method

    whole = run(tmp_path / "whole", [])
    with pytest.raises(Crash):
        run(tmp_path / "killed", [CrashAt(7)])
    last = tmp_path / "killed" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 6
    resumed = run(tmp_path / "killed", [], ckpt=last)
    assert whole.masks.keys() == resumed.masks.keys()
    for key, mask in whole.masks.items():
        assert torch.equal(mask, resumed.masks[key]), key


@pytest.mark.parametrize("name", ["csp", "sparsegpt"])  # SparseGPT: calibration on every rank
def test_two_process_ddp_holds_identical_masks(
    name: str, tiny_corpus: Path, tmp_path: Path
) -> None:
    script = REPO / "tests" / "pruning_harness.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tiny_corpus), str(tmp_path), name],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"masks-rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert any(not bool(mask.all()) for mask in ranks[0].values())
    checksums = [
        r["pruning/mask_checksum"]
        for r in read_metrics(tmp_path / "metrics.jsonl")
        if "pruning/mask_checksum" in r
    ]
    assert checksums and checksums[-1] > 0


@pytest.mark.parametrize("name", ["csp", "model_pruning"])
def test_audit_of_the_saved_weights_equals_the_logged_sparsity(
    name: str, tiny_corpus: Path, tmp_path: Path
) -> None:
    method = make_method(name, schedule(final=0.75, start=0, end=6, every=2))
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=0, save_last=True)
    data = tiny_data(tiny_corpus)
    data.setup("fit")
    steps = len(data.train_dataloader())  # one epoch, so ModelPruning prunes once
    fit(
        tiny_rnnt(steps),
        [method, saver],
        max_steps=steps,
        data=data,
        metrics=tmp_path / "m.jsonl",
        enable_checkpointing=True,
    )
    logged = [r for r in read_metrics(tmp_path / "m.jsonl") if "pruning/sparsity" in r][-1]
    report = audit(tmp_path / "last.ckpt")
    assert report["prunable"]["tensors"] == len(method.tensors)
    assert report["prunable"]["sparsity"] == pytest.approx(logged["pruning/sparsity"], abs=1e-9)
    assert report["prunable"]["sparsity"] == pytest.approx(0.75, abs=1e-3)
    # pruned entries are +0.0, so the packed size is at the floor (-0.0 would be stored)
    assert report["prunable"]["packed_bytes"] <= report["prunable"]["floor_bytes"]
    for tensor in method.tensors:
        saved = report["tensors"][tensor.name]["sparsity"]
        assert saved == pytest.approx(logged[f"pruning/sparsity/{tensor.name}"], abs=1e-9)


def test_methods_registry_names_match_the_tables() -> None:
    assert all(METHODS[name].name == name for name in METHODS)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in METHODS:  # the README's method table lists every registered method
        assert f"`{name}`" in readme, f"README.md does not list the method {name!r}"
    # a method off the engine is a tool run as it ships (Lightning's ModelPruning)
    assert all(name in ENGINE_METHODS or METHODS[name].role == Role.PEER for name in METHODS)
