"""Speed and size of any pruned model against its dense twin, on inputs the user gives.

The RNN-T runtime (`convert`) knows our recognizer's decoding path; a user's own model has
none we know, so the generic path covers what every architecture shares: `nn.Linear`. One
call of the model on the inputs, with forward hooks, records the shape each Linear sees;
each is timed in every allowed format at that shape (`Plan`, `formats.choose_format`) and
runs in the fastest (`SparseLinear`), dense if no sparse format wins by `REQUIRED_GAIN`.
Then the whole sparse model is timed against the dense one, alternately, and falls back to
dense unless it is at least 5 % faster, as the RNN-T runtime does: parts faster alone can be
slower together. Outputs are compared; prunable tensors the generic path cannot speed up
(LSTMs, convolutions, `nn.MultiheadAttention`'s projections, Linears dense measured faster
for) are listed with the reason.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_modules.asr.loading import load_weights
from lightning_modules.pruning.packing import pack_state_dict
from lightning_modules.pruning.saved import default_prunable, read_saved
from lightning_modules.pruning.sparsity_patterns import SparsityPattern, Unstructured, parse_pattern
from lightning_modules.runtime.convert import LayerChoice, Plan, linear_runtime, set_module
from lightning_modules.runtime.formats import FORMATS, REQUIRED_GAIN, median_seconds
from lightning_modules.runtime.layers import SparseLinear

Inputs = torch.Tensor | tuple[Any, ...] | Callable[[nn.Module], Any]
"""What to run the model on: one tensor, a tuple of positional arguments, or a callable
that runs the model it is given (for `generate`, keyword arguments, several calls)."""

FORCED_FORMATS = tuple(name for name in FORMATS if name != "dense")
ATOL = 1e-4
RTOL = 1e-4
"""Sparse and dense products sum in different orders: float32 outputs agree to about 1e-6;
these tolerances leave room for deep models and other CPUs."""
FELL_BACK = (
    f"the whole model ran sparse less than {1 - REQUIRED_GAIN:.0%} faster than dense, "
    "so it runs dense"
)


@dataclass(frozen=True)
class NotSpedUp:
    """A prunable part that runs dense, and why."""

    name: str
    module: str  # the type of the module holding the tensor
    reason: str


@dataclass
class SpeedReport:
    """The sparse model against its dense twin: one call's median seconds, what runs each
    Linear, what could not be sped up, the outputs compared and the weight bytes."""

    layers: list[LayerChoice]
    """Every Linear the inputs call: `runs` is "csr", "bsr", "semi_structured" or "dense",
    `seconds` the times of one product that chose it."""
    not_covered: list[NotSpedUp]
    """Prunable tensors outside the generic path (not in a Linear it calls)."""
    seconds: dict[str, float]
    """Median seconds of one call of the inputs: "dense" and "sparse" (the measured sparse
    model, also when it fell back)."""
    fell_back: bool
    forced: str | None
    """The format forced on every Linear (no measurement, no fall-back), or None: auto."""
    outputs_match: bool
    max_abs_difference: float
    weight_bytes: dict[str, int]
    """"dense": the state dict as dense tensors; "packed": its `csp export` encoding
    (values and positions, file header aside); "linear_dense" and "linear_sparse": the
    weights of the Linears the inputs call, dense and as the sparse model holds them."""
    threads: int
    repeats: int

    @property
    def speedup(self) -> float:
        """Dense seconds over sparse ones; 1 when the sparse model fell back to dense."""
        return 1.0 if self.fell_back else self.seconds["dense"] / self.seconds["sparse"]

    @property
    def sped_up(self) -> list[str]:
        """The Linears the sparse model runs in a sparse format."""
        if self.fell_back:
            return []
        return [layer.name for layer in self.layers if layer.runs != "dense"]

    @property
    def not_sped_up(self) -> list[NotSpedUp]:
        """Every prunable part that runs dense, with the reason."""
        parts = []
        for layer in self.layers:
            if layer.runs == "dense":
                timings = ", ".join(f"{k} {v * 1e6:.1f} µs" for k, v in layer.seconds.items())
                parts.append(NotSpedUp(layer.name, "Linear", f"dense measured fastest ({timings})"))
            elif self.fell_back:
                parts.append(NotSpedUp(layer.name, "Linear", FELL_BACK))
        return parts + self.not_covered

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": [
                vars(layer) | {"input_shape": list(layer.input_shape)} for layer in self.layers
            ],
            "sped_up": self.sped_up,
            "not_sped_up": [vars(part) for part in self.not_sped_up],
            "seconds": self.seconds,
            "speedup": self.speedup,
            "fell_back": self.fell_back,
            "forced": self.forced,
            "outputs_match": self.outputs_match,
            "max_abs_difference": self.max_abs_difference,
            "weight_bytes": self.weight_bytes,
            "threads": self.threads,
            "repeats": self.repeats,
        }

    def summary(self) -> str:
        """The report as a few lines of text (what `csp bench --model-factory` prints)."""
        lines = [
            f"dense {self.seconds['dense'] * 1e3:.3f} ms, sparse {self.seconds['sparse'] * 1e3:.3f}"
            f" ms per call, speed-up {self.speedup:.2f}x ({self.threads} threads), outputs "
            + ("match" if self.outputs_match else f"DIFFER by {self.max_abs_difference:.3g}"),
            f"weights: {self.weight_bytes['dense']:,} bytes dense, {self.weight_bytes['packed']:,}"
            f" packed; Linears {self.weight_bytes['linear_dense']:,} dense, "
            f"{self.weight_bytes['linear_sparse']:,} as run",
        ]
        if self.fell_back:
            lines.append(FELL_BACK)
        lines += [f"sped up: {name} ({self._runs(name)})" for name in self.sped_up]
        lines += [
            f"dense:   {part.name} [{part.module}]: {part.reason}" for part in self.not_sped_up
        ]
        return "\n".join(lines)

    def _runs(self, name: str) -> str:
        return next(layer.runs for layer in self.layers if layer.name == name)


def _caller(inputs: Inputs) -> Callable[[nn.Module], Any]:
    if isinstance(inputs, torch.Tensor):
        return lambda module: module(inputs)
    if isinstance(inputs, tuple):
        return lambda module: module(*inputs)
    if callable(inputs):
        return inputs
    raise TypeError(f"inputs must be a tensor, a tuple or a callable, got {type(inputs).__name__}")


def record_linear_shapes(model: nn.Module, inputs: Inputs) -> dict[str, tuple[int, ...]]:
    """Name → input shape of the first call, for every `nn.Linear` one run of the inputs calls
    as a module (`nn.MultiheadAttention` reads its `out_proj` weight without calling it)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):

            def hook(module: nn.Module, args: tuple, name: str = name) -> None:
                shapes.setdefault(name, tuple(args[0].shape))

            handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            _caller(inputs)(model)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def _plan(pattern: SparsityPattern | None, formats: str) -> Plan:
    if formats != "auto" and formats not in FORCED_FORMATS:
        raise ValueError(f"formats must be 'auto' or one of {FORCED_FORMATS}, got {formats!r}")
    forced = None if formats == "auto" else (formats,)
    return Plan(pattern or Unstructured(), forced, measure=forced is None)


@torch.no_grad()
def build_sparse_model(
    model: nn.Module,
    inputs: Inputs,
    *,
    pattern: SparsityPattern | None = None,
    formats: str = "auto",
) -> tuple[nn.Module, list[LayerChoice]]:
    """A copy of `model` (eval mode) whose Linears run in the format measured fastest on the
    shapes the inputs call them with, and what runs each. `formats`: "auto" (measured among
    dense, CSR, BSR for a block `pattern`, 2:4 on a GPU) or one sparse format forced
    everywhere; `model` itself is left as it is."""
    plan = _plan(pattern, formats)
    sparse = copy.deepcopy(model).eval()
    layers = []
    for name, shape in record_linear_shapes(sparse, inputs).items():
        replacement, layer = linear_runtime(
            name, sparse.get_submodule(name), ((shape,), False), plan
        )
        layers.append(layer)
        if replacement is not sparse.get_submodule(name):
            set_module(sparse, name, replacement)
    return sparse, layers


def _tensors(output: Any) -> list[Any]:
    """The leaves of a (nested) output: tensors and whatever else it holds, in order."""
    if isinstance(output, Mapping):
        return [leaf for key in output for leaf in _tensors(output[key])]
    if isinstance(output, list | tuple):
        return [leaf for item in output for leaf in _tensors(item)]
    return [output]


def compare_outputs(dense: Any, sparse: Any) -> tuple[bool, float]:
    """Whether two outputs match (tensors within `ATOL`/`RTOL`, other leaves equal) and the
    largest absolute difference of their tensors (inf where their structures differ)."""
    dense_leaves, sparse_leaves = _tensors(dense), _tensors(sparse)
    if len(dense_leaves) != len(sparse_leaves):
        return False, math.inf
    match, largest = True, 0.0
    for d, s in zip(dense_leaves, sparse_leaves, strict=True):
        if not isinstance(d, torch.Tensor) or not isinstance(s, torch.Tensor):
            match = match and bool(d == s)
        elif d.shape != s.shape:
            return False, math.inf
        elif d.numel():
            difference = (d.double() - s.double()).abs().max().item()
            largest = max(largest, difference)
            match = match and torch.allclose(s, d, rtol=RTOL, atol=ATOL, equal_nan=True)
    return match, largest


def not_covered(
    model: nn.Module, layers: Iterable[LayerChoice], prunable: Iterable[str] | None = None
) -> list[NotSpedUp]:
    """The prunable tensors (`prunable`, default: `saved.default_prunable`) not held by a
    Linear the generic path measured, with the reason."""
    measured = {layer.name for layer in layers}
    names = prunable if prunable is not None else default_prunable(model.state_dict())
    parts = []
    for tensor in names:
        owner_name = tensor.rpartition(".")[0]
        if owner_name in measured:
            continue
        owner = model.get_submodule(owner_name)
        if isinstance(owner, nn.Linear):
            reason = (
                "not called as a module by these inputs (a parent such as nn.MultiheadAttention "
                "may read its weight directly)"
            )
        else:
            reason = f"nn.{type(owner).__name__}: the generic path speeds up nn.Linear only"
        parts.append(NotSpedUp(tensor, type(owner).__name__, reason))
    return parts


def _alternate_seconds(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each call, timed in turns (the order rotating each repeat), so a
    drift in the machine's speed falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            times[name].append(median_seconds(calls[name]))
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def _linear_bytes(module: nn.Module) -> int:
    if isinstance(module, SparseLinear):
        return module.weight_bytes
    return module.weight.numel() * module.weight.element_size()


def _weight_bytes(model: nn.Module, runs: nn.Module, layers: list[LayerChoice]) -> dict[str, int]:
    """The `SpeedReport.weight_bytes` of `model`, whose Linears run as in `runs`."""
    state = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    return {
        "dense": sum(t.numel() * t.element_size() for t in state.values()),
        "packed": sum(packed.nbytes for packed in pack_state_dict(state).values()),
        "linear_dense": sum(_linear_bytes(model.get_submodule(n.name)) for n in layers),
        "linear_sparse": sum(_linear_bytes(runs.get_submodule(n.name)) for n in layers),
    }


def measure_speed(
    model: nn.Module,
    inputs: Inputs,
    *,
    formats: str = "auto",
    repeats: int = 3,
    threads: int | None = None,
    pattern: SparsityPattern | None = None,
    prunable: Iterable[str] | None = None,
) -> SpeedReport:
    """`model` (pruned weights loaded; put in eval mode, so dropout cannot break the output
    comparison) against its sparse runtime on `inputs`: see the module docstring.
    `repeats`: alternating timings of each (each a blocked autorange); `threads`: torch
    threads while measuring (default: as set); `pattern`: the sparsity pattern the weights
    follow (a block pattern allows BSR); `prunable`: the tensor names pruned (default: the
    project's name rule), to list those not sped up."""
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        dense = model.eval()
        sparse, layers = build_sparse_model(dense, inputs, pattern=pattern, formats=formats)
        call = _caller(inputs)
        with torch.no_grad():
            outputs_match, difference = compare_outputs(call(dense), call(sparse))
            seconds = _alternate_seconds(
                {"dense": lambda: call(dense), "sparse": lambda: call(sparse)}, repeats
            )
        fell_back = formats == "auto" and seconds["sparse"] > REQUIRED_GAIN * seconds["dense"]
        return SpeedReport(
            layers=layers,
            not_covered=not_covered(dense, layers, prunable),
            seconds=seconds,
            fell_back=fell_back,
            forced=None if formats == "auto" else formats,
            outputs_match=outputs_match,
            max_abs_difference=difference,
            weight_bytes=_weight_bytes(dense, dense if fell_back else sparse, layers),
            threads=torch.get_num_threads(),
            repeats=repeats,
        )
    finally:
        torch.set_num_threads(previous_threads)


def measure_saved(
    path: str | Path, model: nn.Module, inputs: Inputs, **options: Any
) -> SpeedReport:
    """`measure_speed` of `model` with the weights of a checkpoint or packed file (`csp
    export`) loaded, strictly, and the pattern and prunable names the file records.
    Raises `SavedFileError` naming the file and tensor when they do not fit the model."""
    saved = read_saved(path)
    load_weights(model, saved)
    options.setdefault("pattern", parse_pattern(saved.pattern))
    options.setdefault("prunable", saved.prunable)
    return measure_speed(model, inputs, **options)
