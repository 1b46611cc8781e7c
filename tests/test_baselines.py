"""The modern baselines: movement, Wanda, SparseGPT, IMP with rewinding, and their
calibration statistics, each checked against an independent computation."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_modules.pruning.calibration import _lstm_inputs, collect_input_statistics
from lightning_modules.pruning.masks import magnitude_mask, row_top_k_mask, top_k_mask
from lightning_modules.pruning.methods.imp import IterativeMagnitudePruning
from lightning_modules.pruning.methods.movement import MovementPruning
from lightning_modules.pruning.methods.sparsegpt import SparseGPTPruning, sparsegpt_prune
from lightning_modules.pruning.methods.wanda import WandaPruning
from lightning_modules.pruning.targets import discover_tensors
from tests.pruning_harness import fit, make_method, schedule, tiny_data, tiny_rnnt


class LinearModel(nn.Module):
    """One Linear layer and a calibration step that feeds it the given inputs."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.layer.weight.copy_(weight)

    def calibration_step(self, batch: torch.Tensor) -> None:
        self.layer(batch)

    def transfer_batch_to_device(self, batch: torch.Tensor, device: object, index: int):
        return batch

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def statistics_of(model: LinearModel, batches: list[torch.Tensor]):
    tensors = discover_tensors(model)
    return collect_input_statistics(model, tensors, batches, model.calibration_step)["layer.weight"]


def correlated_inputs(count: int, dim: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=generator) * 0.6 + torch.eye(dim)
    scale = torch.logspace(-1, 1, dim)
    return (torch.randn(count, dim, generator=generator) @ mixing) * scale


# ---- Wanda ------------------------------------------------------------------------------


def test_wanda_keeps_the_hand_computed_top_scores_of_each_row() -> None:
    weight = torch.tensor([[1.0, -2.0, 3.0, 0.5], [4.0, 0.1, -0.2, 1.0]])
    inputs = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.1, 2.0], [3.0, 0.0, 0.0, 0.0]])
    # ‖X_j‖₂ = [√10, 1, 0.1, √8]; scores row 0: [3.16, 2, 0.3, 1.41], row 1: [12.6, 0.1, 0.02, 2.83]
    model = LinearModel(weight)
    statistics = statistics_of(model, [inputs[:2], inputs[2:]])
    assert statistics.count == 3
    norms = inputs.double().norm(dim=0)
    torch.testing.assert_close(statistics.input_norms()[0], norms)
    method = WandaPruning(schedule(final=0.5, start=0, end=1))
    mask = method.choose(model.layer.weight, statistics, 4, torch.ones(2, 4, dtype=torch.bool))
    expected = torch.tensor([[True, True, False, False], [True, False, False, True]])
    assert torch.equal(mask, expected)
    # magnitude alone would keep a different pair in row 0: the inputs matter
    assert not torch.equal(magnitude_mask(weight[0], 2), expected[0])


def test_row_top_k_spreads_the_kept_count_over_rows_and_respects_pruned_entries() -> None:
    scores = torch.arange(12.0).view(3, 4)
    previous = torch.tensor([[True] * 4, [True, False, False, False], [True] * 4])
    mask = row_top_k_mask(scores, 7, previous)
    assert int(mask.sum()) == 7
    assert not bool((mask & ~previous).any())
    assert mask.sum(1).tolist() == [4, 1, 2]  # quotas 3, 2, 2; row 1 has one left: row 0 takes it


# ---- SparseGPT --------------------------------------------------------------------------


def test_sparsegpt_reconstructs_the_output_better_than_magnitude() -> None:
    torch.manual_seed(0)
    dim, outputs = 48, 24
    inputs = correlated_inputs(512, dim)
    weight = torch.randn(outputs, dim)
    model = LinearModel(weight)
    statistics = statistics_of(model, list(inputs.split(128)))
    k = weight.numel() // 4  # sparsity 0.75
    method = SparseGPTPruning(schedule(final=0.75, start=0, end=1), block_size=16)
    mask = method.choose(model.layer.weight, statistics, k, torch.ones_like(weight, dtype=bool))
    pruned = model.layer.weight.detach()
    assert int(mask.sum()) == k and bool((pruned[~mask] == 0).all())
    magnitude = weight * magnitude_mask(weight, k)
    error = (inputs @ (weight - pruned).T).norm()
    magnitude_error = (inputs @ (weight - magnitude).T).norm()
    assert error < 0.85 * magnitude_error, (error, magnitude_error)  # 0.70 when written


def dense_sequential_obs(weight: torch.Tensor, hessian: torch.Tensor, keep: torch.Tensor):
    """The OBS updates SparseGPT approximates, computed directly: column by column, a pruned
    weight is set to zero and the not-yet-processed columns F of its row move by
    −w_j [H_F⁻¹]_{:,j} / [H_F⁻¹]_jj, with H_F⁻¹ the inverse of H restricted to F."""
    weight = weight.clone().double()
    for column in range(weight.shape[1]):
        rest = list(range(column, weight.shape[1]))
        inverse = torch.linalg.inv(hessian[rest][:, rest])
        for row in range(weight.shape[0]):
            if not keep[row, column]:
                update = weight[row, column] / inverse[0, 0] * inverse[0]
                weight[row, rest] -= update
    return weight


def test_sparsegpt_matches_an_independent_dense_obs_solution() -> None:
    torch.manual_seed(1)
    dim, outputs = 10, 6
    inputs = correlated_inputs(200, dim, seed=1).double()
    hessian = inputs.T @ inputs / len(inputs)
    weight = torch.randn(outputs, dim, dtype=torch.float64)
    alive = torch.ones(outputs, dim, dtype=torch.bool)
    dampening = 1e-3
    for block_size in (dim, 4):  # one block, and lazy batches of 4 columns
        updated, keep = sparsegpt_prune(weight, hessian, 30, alive, block_size, dampening)
        damped = hessian + dampening * hessian.diagonal().mean() * torch.eye(dim).double()
        expected = dense_sequential_obs(weight, damped, keep)
        assert int((~keep).sum()) == 30
        torch.testing.assert_close(updated, expected * keep, atol=1e-9, rtol=1e-7)


# ---- calibration hooks on LSTMs ---------------------------------------------------------


def test_lstm_statistics_hold_layer_inputs_and_previous_hidden_states() -> None:
    """Checked against a manual unroll with LSTMCells carrying the same weights."""
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True)
    input = torch.randn(3, 7, 5)
    inputs = _lstm_inputs(lstm, input, None)

    def unroll(sequence: torch.Tensor, suffix: str) -> tuple[torch.Tensor, torch.Tensor]:
        cell = nn.LSTMCell(sequence.shape[-1], 4)
        with torch.no_grad():
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, kind).copy_(getattr(lstm, f"{kind}{suffix}"))
        h = c = torch.zeros(sequence.shape[0], 4)
        previous, outputs = [], []
        for step in range(sequence.shape[1]):
            previous.append(h)
            h, c = cell(sequence[:, step], (h, c))
            outputs.append(h)
        return torch.stack(previous, 1), torch.stack(outputs, 1)

    layer_input = input
    for layer in range(2):
        forward_previous, forward = unroll(layer_input, f"_l{layer}")
        backward_previous, backward = unroll(layer_input.flip(1), f"_l{layer}_reverse")
        torch.testing.assert_close(inputs[f"weight_ih_l{layer}"], layer_input)
        torch.testing.assert_close(inputs[f"weight_hh_l{layer}"], forward_previous)
        torch.testing.assert_close(inputs[f"weight_ih_l{layer}_reverse"], layer_input.flip(1))
        torch.testing.assert_close(inputs[f"weight_hh_l{layer}_reverse"], backward_previous)
        layer_input = torch.cat([forward, backward.flip(1)], -1)


def test_calibration_reaches_every_prunable_tensor_of_the_rnnt(tiny_corpus: Path) -> None:
    module = tiny_rnnt(10)
    data = tiny_data(tiny_corpus)
    batches = data.calibration_batches(2, seed=3)
    assert [b["ids"] for b in batches] == [b["ids"] for b in data.calibration_batches(2, 3)]
    train_ids = {u.id for u in data.splits["train"]}
    assert all(set(b["ids"]) <= train_ids for b in batches)  # never dev or test
    tensors = discover_tensors(module)
    statistics = collect_input_statistics(module, tensors, batches, module.calibration_step)
    assert set(statistics) == {t.name for t in tensors}
    for tensor in tensors:
        rows = tensor.parameter.reshape(tensor.parameter.shape[0], -1)
        assert statistics[tensor.name].dim == rows.shape[1], tensor.name
        assert statistics[tensor.name].count > 0
    assert module.training  # calibration ran in eval mode and restored training mode


# ---- movement ---------------------------------------------------------------------------


class ToyRegression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(6, 3)


def test_movement_scores_accumulate_minus_weight_times_gradient() -> None:
    torch.manual_seed(0)
    model = ToyRegression()
    method = MovementPruning(schedule(final=0.5, start=5, end=9))
    method.tensors = discover_tensors(model)
    method._by_name = {t.name: t for t in method.tensors}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = torch.zeros(3, 6)
    for _ in range(3):
        optimizer.zero_grad()
        x = torch.randn(8, 6)
        model.layer(x).pow(2).sum().backward()
        expected -= model.layer.weight.detach() * model.layer.weight.grad
        method.adjust_gradients(model, 0)
        optimizer.step()
    torch.testing.assert_close(method.scores["layer.weight"], expected)
    method.masks = {"layer.weight": torch.ones(3, 6, dtype=torch.bool)}
    mask = method.compute_masks(5, {"layer.weight": 9})["layer.weight"]
    assert torch.equal(mask, top_k_mask(expected, 9))  # the highest scores, not magnitudes


# ---- IMP with rewinding -----------------------------------------------------------------


def test_imp_rewinds_kept_weights_to_the_rewind_point(tiny_corpus: Path) -> None:
    seen: dict[int, dict[str, torch.Tensor]] = {}

    class Snapshot(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen[trainer.global_step] = {
                n: p.detach().clone() for n, p in pl_module.named_parameters()
            }

    method = IterativeMagnitudePruning(
        schedule(final=0.8, start=4, end=10), rounds=3, rewind_step=1
    )
    assert method.round_ends == [4, 7, 10]
    # the method runs first: what Snapshot sees at a round's end is the rewound network
    fit(tiny_rnnt(12), [method, Snapshot()], max_steps=12, data=tiny_data(tiny_corpus))
    rewind = seen[1]
    for end in method.round_ends:
        after = seen[end]
        for tensor in method.tensors:
            kept = after[tensor.name] != 0
            torch.testing.assert_close(after[tensor.name][kept], rewind[tensor.name][kept])
        bias = "rnnt.predictor.lstm.bias_ih_l0"
        torch.testing.assert_close(after[bias], rewind[bias])  # every parameter rewinds
    sparsity = [
        float((seen[end]["rnnt.joiner.output.weight"] == 0).float().mean()) for end in (4, 7, 10)
    ]
    assert sparsity[0] < sparsity[1] < sparsity[2] == pytest.approx(0.8, abs=0.01)
    assert method.snapshot is None  # nothing left to rewind to after the last round


# ---- options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("wanda", {"calibration_batches": 0}, "calibration_batches"),
        ("sparsegpt", {"calibration_batches": -2}, "calibration_batches"),
        ("sparsegpt", {"dampening": 0}, "dampening"),
        ("sparsegpt", {"block_size": 0}, "block_size"),
        ("imp", {"rewind_step": 5}, "rewind_step"),
        ("imp", {"rounds": 0}, "rounds"),
        ("imp", {"rounds": 9}, "rounds 9 cannot reach the target"),
    ],
)
def test_bad_baseline_options_fail_at_construction(
    method: str, options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_method(method, schedule(final=0.7, start=2, end=8, every=2), **options)


@pytest.mark.parametrize("name", ["wanda", "sparsegpt"])
def test_gradual_data_aware_pruning_recalibrates_at_every_update(
    name: str, tiny_corpus: Path
) -> None:
    method = make_method(
        name, schedule(final=0.6, start=2, end=8, every=2), gradual=True, calibration_batches=2
    )
    fit(tiny_rnnt(10), [method], max_steps=10, data=tiny_data(tiny_corpus))
    assert [step for step, _ in method.calibration.history] == [2, 4, 6, 8]
    assert method.calibration.batches == 2 and method.calibration.examples > 0
    total = sum(t.numel for t in method.tensors)
    zeros = sum(int((t.parameter == 0).sum()) for t in method.tensors)
    assert zeros / total == pytest.approx(0.6, abs=len(method.tensors) / total)
    one_shot = make_method(name, schedule(final=0.6, start=2, end=8, every=2))
    assert one_shot.schedule.kind == "one_shot"  # the default prunes once, at the start
