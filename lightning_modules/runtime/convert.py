"""Turning a (pruned) RNN-T into its runtime: each part of the decoding path runs in the
implementation and storage format that a measurement on its own shape and calls found
fastest.

The calls are recorded, not assumed: one greedy decoding of a sample batch, with forward
hooks, gives the input shape each part sees (the encoder's over all frames at once, the
prediction network's and joiner's one step at a time). Then:

- every Linear is timed in each allowed format (`formats.choose_format`) at that shape;
- an LSTM encoder (`StackedLSTMTranscriber`) and the prediction network's LSTM are timed
  as they are (the fused dense kernel) and stepped in Python with their matrices in the
  chosen formats (`SparseLSTMTranscriber`, `SparseLSTM`); the faster one runs.

`formats=("dense",)` gives the best dense runtime (a fused kernel is slow for one step at a
time, so the prediction network may gain without any sparsity): the fair baseline of the
sparse one. What was chosen, and the times compared, is the `RuntimeReport`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lightning_modules.asr.decoding import greedy_decode
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.rnnt import StackedLSTMTranscriber
from lightning_modules.pruning.sparsity_patterns import SparsityPattern, Unstructured
from lightning_modules.runtime.formats import (
    FORMATS,
    REQUIRED_GAIN,
    FormatChoice,
    SparseMatrix,
    candidate_formats,
    choose_format,
    median_seconds,
)
from lightning_modules.runtime.layers import (
    SparseLinear,
    SparseLSTM,
    SparseLSTMTranscriber,
    block_diagonal,
)


@dataclass
class LayerChoice:
    """One part of the runtime: what runs it, and the measured seconds per call."""

    name: str
    kind: str  # "linear", "lstm" or "transcriber"
    input_shape: tuple[int, ...]
    runs: str  # "dense" (the original module) or the formats of the stepped matrices
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RuntimeReport:
    layers: list[LayerChoice]
    decode_seconds: dict[str, float] = field(default_factory=dict)
    """The whole-model check of `build_runtimes`: seconds to decode the sample batch."""
    fell_back: bool = False
    """Whether the whole-model check found the parts' choices no faster than dense."""

    @property
    def replaced(self) -> list[str]:
        return [layer.name for layer in self.layers if layer.runs != "dense"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": [
                vars(layer) | {"input_shape": list(layer.input_shape)} for layer in self.layers
            ],
            "decode_seconds": self.decode_seconds,
            "fell_back": self.fell_back,
        }


Call = tuple[tuple[tuple[int, ...], ...], bool]
"""Shapes of a module's tensor arguments in its first call, and whether any call passed a
recurrent state."""


def record_calls(
    recognizer: RNNTSpeechRecognizer, features: torch.Tensor, lengths: torch.Tensor
) -> dict[str, Call]:
    """Module name → its `Call`, for the encoder and every Linear and LSTM that greedy
    decoding of the batch calls."""
    calls: dict[str, Call] = {}
    handles = []
    for name, module in recognizer.rnnt.named_modules():
        if isinstance(module, nn.Linear | nn.LSTM | StackedLSTMTranscriber):

            def hook(module: nn.Module, args: tuple, name: str = name) -> None:
                shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
                first, had_state = calls.get(name, (shapes, False))
                state = isinstance(module, nn.LSTM) and len(args) > 1 and args[1] is not None
                calls[name] = (first, had_state or state)

            handles.append(module.register_forward_pre_hook(hook))
    try:
        greedy_decode(recognizer.rnnt, features, lengths, recognizer.tokenizer.blank)
    finally:
        for handle in handles:
            handle.remove()
    return calls


@dataclass(frozen=True)
class Plan:
    """Which formats the matrices may use, and whether choices are measured or forced."""

    pattern: SparsityPattern
    formats: tuple[str, ...] | None  # None: every candidate
    measure: bool

    def matrix(self, weight: torch.Tensor, columns: int) -> SparseMatrix:
        choice = self.choose(weight, columns)
        return SparseMatrix.build(weight, choice.format, choice.block)

    def choose(self, weight: torch.Tensor, columns: int) -> FormatChoice:
        allowed = [
            (name, block)
            for name, block in candidate_formats(weight, self.pattern)
            if self.formats is None or name in self.formats
        ]
        if self.measure:
            return choose_format(weight, columns, self.pattern, allowed=allowed)
        if not allowed:  # a forced format this matrix cannot hold (BSR blocks that do not tile)
            allowed = [("csr", None)] if weight.device.type == "cpu" else [("dense", None)]
        name, block = allowed[-1]  # the most specialized allowed format
        return FormatChoice(name, block, {})


def linear_runtime(
    name: str, linear: nn.Linear, call: Call, plan: Plan
) -> tuple[nn.Module, LayerChoice]:
    """`linear` itself where the plan keeps it dense, else a `SparseLinear` in the chosen
    format, for calls of the recorded input shape."""
    shape = call[0][0]
    columns = int(torch.tensor(shape[:-1]).prod())
    choice = plan.choose(linear.weight, columns)
    layer = LayerChoice(name, "linear", shape, choice.format, choice.seconds)
    if choice.format == "dense":
        return linear, layer
    matrix = SparseMatrix.build(linear.weight, choice.format, choice.block)
    return SparseLinear(linear, matrix), layer


def _faster(
    name: str,
    kind: str,
    shape: tuple[int, ...],
    original: nn.Module,
    stepped: nn.Module,
    formats: list[str],
    arguments: tuple,
    plan: Plan,
) -> tuple[nn.Module, LayerChoice]:
    """The stepped module unless the original (fused) one measures faster."""
    runs = " ".join(formats)
    if not plan.measure:
        return stepped, LayerChoice(name, kind, shape, runs)
    with torch.no_grad():
        seconds = {
            "fused": median_seconds(lambda: original(*arguments)),
            "stepped": median_seconds(lambda: stepped(*arguments)),
        }
    if seconds["stepped"] > REQUIRED_GAIN * seconds["fused"]:
        return original, LayerChoice(name, kind, shape, "dense", seconds)
    return stepped, LayerChoice(name, kind, shape, runs, seconds)


def _lstm(name: str, lstm: nn.LSTM, call: Call, plan: Plan) -> tuple[nn.Module, LayerChoice]:
    shape, has_state = call[0][0], call[1]
    batch, steps = shape[0], shape[1]
    inputs, hiddens, formats = [], [], []
    for layer in range(lstm.num_layers):
        inputs.append(plan.matrix(getattr(lstm, f"weight_ih_l{layer}"), batch * steps))
        hiddens.append(plan.matrix(getattr(lstm, f"weight_hh_l{layer}"), batch))
        formats += [f"ih{layer}:{inputs[-1].format}", f"hh{layer}:{hiddens[-1].format}"]
    state = None
    if has_state:
        zeros = torch.zeros(lstm.num_layers, batch, lstm.hidden_size)
        state = (zeros, zeros)
    stepped = SparseLSTM(lstm, inputs, hiddens)
    return _faster(name, "lstm", shape, lstm, stepped, formats, (torch.randn(shape), state), plan)


def _transcriber(
    name: str, transcriber: StackedLSTMTranscriber, call: Call, plan: Plan
) -> tuple[nn.Module, LayerChoice]:
    (features_shape, lengths_shape), _ = call
    batch = features_shape[0]
    steps = -(-features_shape[1] // transcriber.stack)
    directions = [transcriber.forward_lstms]
    if transcriber.backward_lstms is not None:
        directions.append(transcriber.backward_lstms)
    inputs, hiddens, formats = [], [], []
    for layer in range(len(transcriber.forward_lstms)):
        inputs.append([plan.matrix(d[layer].weight_ih_l0, batch * steps) for d in directions])
        recurrent = block_diagonal([d[layer].weight_hh_l0 for d in directions])
        hiddens.append(plan.matrix(recurrent, batch))
        formats += [f"ih{layer}:{inputs[-1][0].format}", f"hh{layer}:{hiddens[-1].format}"]
    stepped = SparseLSTMTranscriber(transcriber, inputs, hiddens)
    arguments = (torch.randn(features_shape), torch.full(lengths_shape, features_shape[1]))
    return _faster(
        name, "transcriber", features_shape, transcriber, stepped, formats, arguments, plan
    )


def set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` where `root.get_submodule(name)` finds it."""
    parent_name, _, attribute = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attribute, module)


@torch.no_grad()
def build_runtime(
    recognizer: RNNTSpeechRecognizer,
    features: torch.Tensor,
    lengths: torch.Tensor,
    pattern: SparsityPattern | None = None,
    formats: Sequence[str] | None = None,
    measure: bool = True,
) -> tuple[RNNTSpeechRecognizer, RuntimeReport]:
    """A copy of `recognizer` (eval mode) whose decoding path runs as measured fastest on
    calls like those of decoding this batch.

    `formats` limits the matrix formats (default: dense, CSR, BSR for a block pattern, 2:4 on
    a GPU); `measure=False` forces the last allowed format everywhere and steps every LSTM
    (CSR where a forced BSR does not tile a matrix): to see what a format does, and to test it.
    """
    unknown = sorted(set(formats or ()) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; choose from {FORMATS}")
    plan = Plan(pattern or Unstructured(), tuple(formats) if formats else None, measure)
    runtime = copy.deepcopy(recognizer).eval()
    calls = record_calls(runtime, features, lengths)
    encoder = next(
        (n for n in calls if isinstance(runtime.rnnt.get_submodule(n), StackedLSTMTranscriber)),
        None,
    )
    layers = []
    for name, call in calls.items():
        if encoder is not None and name.startswith(encoder + ".") and "lstms" in name:
            continue  # stepped with the encoder as a whole
        module = runtime.rnnt.get_submodule(name)
        if isinstance(module, StackedLSTMTranscriber):
            replacement, choice = _transcriber(name, module, call, plan)
        elif isinstance(module, nn.LSTM):
            replacement, choice = _lstm(name, module, call, plan)
        else:
            replacement, choice = linear_runtime(name, module, call, plan)
        layers.append(choice)
        if replacement is not module:
            set_module(runtime.rnnt, name, replacement)
    return runtime, RuntimeReport(layers)


def _decode_seconds(
    recognizer: RNNTSpeechRecognizer, features: torch.Tensor, lengths: torch.Tensor
) -> float:
    blank = recognizer.tokenizer.blank
    with torch.no_grad():
        return median_seconds(lambda: greedy_decode(recognizer.rnnt, features, lengths, blank))


def build_runtimes(
    recognizer: RNNTSpeechRecognizer,
    features: torch.Tensor,
    lengths: torch.Tensor,
    pattern: SparsityPattern | None = None,
) -> tuple[tuple[RNNTSpeechRecognizer, RuntimeReport], tuple[RNNTSpeechRecognizer, RuntimeReport]]:
    """The best dense runtime and the sparse runtime, checked as a whole: parts measured
    faster alone can be slower together (they share the caches), so the sparse runtime
    decodes the sample batch against the dense one and falls back to it unless it is
    faster by `REQUIRED_GAIN`. Returns ((dense, report), (sparse, report))."""
    dense, dense_report = build_runtime(recognizer, features, lengths, pattern, ("dense",))
    sparse, report = build_runtime(recognizer, features, lengths, pattern)
    report.decode_seconds = {
        "dense": _decode_seconds(dense, features, lengths),
        "sparse": _decode_seconds(sparse, features, lengths),
    }
    if report.decode_seconds["sparse"] > REQUIRED_GAIN * report.decode_seconds["dense"]:
        report.fell_back = True
        sparse = dense
    return (dense, dense_report), (sparse, report)
