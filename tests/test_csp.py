"""CSP's data-driven sensing and the scale of its gradient terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from pruning_harness import fit, schedule, tiny_data, tiny_rnnt
from torch import nn

from experiments.metrics import read_metrics
from lightning_modules.pruning.calibration import _lstm_inputs
from lightning_modules.pruning.methods.csp import CompressedSensingPruning
from lightning_modules.pruning.schedules import SparsitySchedule, kept_count
from lightning_modules.pruning.sensing import normal_equations, recover


def k_sparse(rows: int, cols: int, density: float, generator: torch.Generator) -> torch.Tensor:
    weight = torch.randn(rows, cols, generator=generator)
    keep = torch.randperm(weight.numel(), generator=generator)[: int(density * weight.numel())]
    sparse = torch.zeros(weight.numel())
    sparse[keep] = weight.flatten()[keep]
    return sparse.view(rows, cols)


def recover_from_activations(
    inputs: torch.Tensor, outputs: torch.Tensor, k: int, iterations: int = 300
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation sensing from inputs A (n × d) and pre-activations Y (n × rows) alone: the
    measurements of row r are Y[:, r] = A w_r, so Φ = A; recovery starts from zero."""
    correlation, gram = normal_equations(outputs.T, inputs)
    start = torch.zeros_like(correlation)
    allowed = torch.ones_like(start, dtype=torch.bool)
    return recover(correlation[None], gram[None], k, allowed[None], start[None], iterations)


@pytest.mark.slow  # over 5 s
def test_activation_sensing_recovers_a_sparse_linear_from_its_inputs_and_outputs() -> None:
    """Fewer calibration inputs (40) than input features (64): a compressed measurement of
    each row, which only the sparsity of the weights makes solvable."""
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 32, bias=False)
    with torch.no_grad():
        layer.weight.copy_(k_sparse(32, 64, 0.08, generator))
    inputs = torch.randn(40, 64, generator=generator)
    with torch.no_grad():
        outputs = layer(inputs)
    k = int((layer.weight != 0).sum())
    estimate, support = recover_from_activations(inputs, outputs, k)
    assert torch.equal(support[0], layer.weight != 0)
    assert torch.allclose(estimate[0], layer.weight, atol=1e-4)


@pytest.mark.slow  # over 5 s
@pytest.mark.parametrize("attribute", ["weight_ih_l0", "weight_hh_l0"])
def test_activation_sensing_recovers_a_sparse_lstm_gate_block(attribute: str) -> None:
    """The inputs the calibration hooks see (the layer input for `weight_ih`, the previous
    hidden state for `weight_hh`) and the gate block's pre-activations give its support."""
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():  # the LSTM's own initialization, independent of test order
        torch.manual_seed(1)
        lstm = nn.LSTM(48, 32, batch_first=True)
    hidden = lstm.hidden_size
    gate = slice(2 * hidden, 3 * hidden)  # the cell-candidate block of (i, f, g, o)
    block = k_sparse(hidden, getattr(lstm, attribute).shape[1], 0.1, generator)
    with torch.no_grad():
        getattr(lstm, attribute)[gate] = block
    # 160 steps: the hidden states of a random LSTM are correlated, 40 left some draws ill-posed
    sequence = torch.randn(4, 40, 48, generator=generator)
    with torch.no_grad():
        inputs = _lstm_inputs(lstm, sequence, None)[attribute].reshape(-1, block.shape[1])
    pre_activations = inputs @ block.T
    estimate, support = recover_from_activations(inputs, pre_activations, int((block != 0).sum()))
    assert torch.equal(support[0], block != 0)
    assert torch.allclose(estimate[0], block, atol=1e-3)


def test_activation_sensing_reproduces_the_layer_outputs_of_the_rnnt(tiny_corpus: Path) -> None:
    """On the tiny RNN-T, every tensor's activation-sensing reconstruction at 50% loses less
    of its layer's output than magnitude pruning to the same support size does."""
    data = tiny_data(tiny_corpus)
    method = CompressedSensingPruning(
        SparsitySchedule(final=0.5, start=0, end=2, every=1),
        sensing="activation",
        calibration_batches=1,
        sparsity_weight=0.0,
        reconstruction_weight=0.0,
    )
    fit(tiny_rnnt(1), [method], max_steps=1, data=data)
    hessians = method._hessians
    for tensor in method.tensors:
        weight = tensor.parameter.detach()
        sensed = method.sense(tensor.name, kept_count(tensor.numel, 0.5))
        gram = hessians[tensor.name][0]
        rows = weight.reshape(weight.shape[0], -1)

        def output_error(
            approximation: torch.Tensor, rows: torch.Tensor = rows, gram: torch.Tensor = gram
        ) -> float:
            difference = rows - approximation.reshape(rows.shape)
            return float(((difference @ gram) * difference).sum() / ((rows @ gram) * rows).sum())

        magnitude = rows * (rows.abs() >= rows.abs().flatten().kthvalue(rows.numel() // 2)[0])
        assert sensed.error**2 == pytest.approx(output_error(sensed.reconstruction), rel=1e-3)
        assert output_error(sensed.reconstruction) < output_error(magnitude), tensor.name


class GradientProbe(pl.Callback):
    """Copies every prunable gradient before CSP adds its terms (`before`), and measures the
    norm of what CSP added against the task gradient's (`after`)."""

    def __init__(self, method: CompressedSensingPruning, role: str, shared: dict) -> None:
        self.method, self.role, self.shared = method, role, shared

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer) -> None:
        for tensor in self.method.tensors:
            grad = tensor.parameter.grad
            if self.role == "before":
                self.shared[tensor.name] = grad.clone()
            else:
                task = self.shared[tensor.name]
                ratio = float((grad - task).norm() / task.norm())
                self.shared.setdefault("ratios", []).append(ratio)


@pytest.mark.parametrize("term", ["sparsity_weight", "reconstruction_weight"])
def test_a_term_of_weight_one_pulls_as_hard_as_the_task_gradient(
    term: str, tiny_corpus: Path, tmp_path: Path
) -> None:
    """λ = 1 gives a term gradient of the task gradient's norm on every tensor, on tensors of
    very different sizes; the logged ratio says the same."""
    options = {"sparsity_weight": 0.0, "reconstruction_weight": 0.0, term: 1.0}
    method = CompressedSensingPruning(
        schedule(final=0.7, start=4, end=8, every=2), regularization_start=0, **options
    )
    shared: dict = {}
    probes = [
        GradientProbe(method, "before", shared),
        method,
        GradientProbe(method, "after", shared),
    ]
    fit(
        tiny_rnnt(4), probes, max_steps=4, data=tiny_data(tiny_corpus), metrics=tmp_path / "m.jsonl"
    )
    sizes = {tensor.numel for tensor in method.tensors}
    assert max(sizes) / min(sizes) > 10
    assert len(shared["ratios"]) == 4 * len(method.tensors)
    assert shared["ratios"] == pytest.approx([1.0] * len(shared["ratios"]), rel=1e-4)
    label = term.removesuffix("_weight")
    logged = [r for r in read_metrics(tmp_path / "m.jsonl") if f"csp/{label}_term" in r]
    assert logged
    for tensor in method.tensors:
        values = [r[f"csp/grad_ratio/{label}/{tensor.name}"] for r in logged]
        assert values == pytest.approx([1.0] * len(values), rel=1e-4), tensor.name


def test_activation_calibration_is_spread_over_the_steps_before_each_sensing(
    tiny_corpus: Path,
) -> None:
    """Sensing at 4, 8 and 12 with two calibration batches: the training batches of steps 2
    and 3, 6 and 7, 10 and 11 are watched, and no batch is gathered at a sensing step."""
    method = CompressedSensingPruning(
        SparsitySchedule(final=0.6, start=4, end=12, every=4),
        sensing="activation",
        calibration_batches=2,
    )
    fit(tiny_rnnt(13), [method], max_steps=13, data=tiny_data(tiny_corpus))
    assert [step for step, _ in method.calibration.history] == [2, 3, 6, 7, 10, 11]
    assert method.calibration.refresh_step == 12
    assert all(not bool(mask.all()) for mask in method.masks.values())


def test_lstm_hidden_states_read_from_the_output_equal_a_second_run() -> None:
    """Watching the training forward, a one-layer LSTM's recurrent inputs come from its
    output; they are the vectors that re-running the layer exposes."""
    torch.manual_seed(0)
    lstm = nn.LSTM(6, 5, batch_first=True)
    sequence = torch.randn(3, 7, 6)
    state = (torch.randn(1, 3, 5), torch.randn(1, 3, 5))
    output = lstm(sequence, state)
    from_output = _lstm_inputs(lstm, sequence, state, output)
    rerun = _lstm_inputs(lstm, sequence, state)
    for name in ("weight_ih_l0", "weight_hh_l0"):
        assert torch.allclose(from_output[name], rerun[name], atol=1e-6), name
