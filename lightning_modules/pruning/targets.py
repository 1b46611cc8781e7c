"""Which tensors of a model are prunable: discovery by module type, filtered by name patterns.

Every pruning method prunes the same set, so a comparison between methods is fair. The
default set is the weight matrices of `nn.Linear`, `nn.Conv1d/2d`, the recurrent layers
(`weight_ih_l*`, `weight_hh_l*`, `weight_hr_l*` of `nn.LSTM`/`nn.GRU`/`nn.RNN`) and the input
projection of `nn.MultiheadAttention`. torchaudio's RNN-T, Conformer and Emformer are built
from these modules, so they are covered without special cases. Biases, norms and embeddings
are never in the default set.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn
from torch.nn.utils import parametrize

_RECURRENT = re.compile(r"^weight_(ih|hh|hr)_l\d+(_reverse)?$")
_ATTENTION = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


class PatternError(ValueError):
    """An include or exclude pattern that matches no prunable tensor."""


@dataclass(frozen=True)
class PrunableTensor:
    """One prunable weight: its full dotted name, the layer that multiplies by it, and the
    parameter's path from that layer (an attribute, or `parametrizations.weight.original1`
    for a weight-normed one)."""

    name: str
    module: nn.Module
    attribute: str

    @property
    def parameter(self) -> nn.Parameter:
        module, leaf = self.owner
        return getattr(module, leaf)

    @property
    def owner(self) -> tuple[nn.Module, str]:
        """The module that holds the parameter itself, and its name there."""
        path, _, leaf = self.attribute.rpartition(".")
        return (self.module.get_submodule(path) if path else self.module), leaf

    @property
    def numel(self) -> int:
        return self.parameter.numel()


def _weight_path(module: nn.Linear | nn.Conv1d | nn.Conv2d) -> list[str]:
    """Where a Linear's or convolution's weight lives: itself, or under weight normalization
    the direction v (w = g·v/‖v‖ is zero wherever v is, so masking v prunes w; wav2vec2's
    positional convolution). A weight under any other parametrization is not prunable."""
    if parametrize.is_parametrized(module, "weight"):
        parametrizations = module.parametrizations["weight"]
        if len(parametrizations) == 1 and type(parametrizations[0]).__name__ == "_WeightNorm":
            return ["parametrizations.weight.original1"]
        return []
    if isinstance(getattr(module, "weight_v", None), nn.Parameter):  # the older weight_norm
        return ["weight_v"]
    return ["weight"] if isinstance(module.weight, nn.Parameter) else []


def _weight_attributes(module: nn.Module) -> list[str]:
    """The prunable attributes a module owns directly, by its type."""
    if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
        return _weight_path(module)
    if isinstance(module, nn.RNNBase):
        return [
            name for name, _ in module.named_parameters(recurse=False) if _RECURRENT.match(name)
        ]
    if isinstance(module, nn.MultiheadAttention):  # out_proj is an nn.Linear, found on its own
        return [name for name in _ATTENTION if getattr(module, name, None) is not None]
    return []


def candidate_tensors(model: nn.Module) -> list[PrunableTensor]:
    """Every tensor the default rule considers prunable, in module order."""
    return [
        PrunableTensor(f"{prefix}.{attribute}" if prefix else attribute, module, attribute)
        for prefix, module in model.named_modules()
        for attribute in _weight_attributes(module)
    ]


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def discover_tensors(
    model: nn.Module, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[PrunableTensor]:
    """The prunable tensors of `model`: the default set, kept by `include` (glob patterns on the
    full name; empty keeps all) and dropped by `exclude`.

    Raises `PatternError` for a pattern that matches no candidate, so a typo never silently
    prunes the wrong set.
    """
    candidates = candidate_tensors(model)
    names = [tensor.name for tensor in candidates]
    for kind, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                shown = ", ".join(names[:6]) + (" …" if len(names) > 6 else "")
                raise PatternError(
                    f"{kind} pattern {pattern!r} matches no prunable tensor; candidates: "
                    f"{shown or 'none'}"
                )
    chosen = [
        tensor
        for tensor in candidates
        if (not include or _matches(tensor.name, include)) and not _matches(tensor.name, exclude)
    ]
    if not chosen:
        raise PatternError("no prunable tensor left after include/exclude patterns")
    return chosen


def coverage_report(model: nn.Module, tensors: Sequence[PrunableTensor]) -> dict[str, object]:
    """Which tensors are pruned, how many weights, and their share of all parameters."""
    total = sum(parameter.numel() for parameter in model.parameters())
    prunable = sum(tensor.numel for tensor in tensors)
    return {
        "tensors": [
            {"name": t.name, "shape": list(t.parameter.shape), "numel": t.numel} for t in tensors
        ],
        "prunable_weights": prunable,
        "model_parameters": total,
        "prunable_share": prunable / total if total else 0.0,
    }


def format_coverage(report: dict[str, object]) -> str:
    """The coverage report as the few lines printed at fit start."""
    lines = [
        f"pruning {len(report['tensors'])} tensors, {report['prunable_weights']:,} weights = "
        f"{report['prunable_share']:.1%} of {report['model_parameters']:,} parameters"
    ]
    lines += [
        f"  {t['name']:<60} {str(tuple(t['shape'])):>14} {t['numel']:>10,}"
        for t in report["tensors"]
    ]
    return "\n".join(lines)
