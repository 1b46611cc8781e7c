"""Audit of a saved model: sparsity and size, recounted from the saved weights themselves.

Reads a Lightning checkpoint (`.ckpt`) or a packed file (`packing`) and reports, per tensor
and pooled over the prunable set and over the whole model: entries, non-zeros (exact zeros
are counted, nothing is taken from logs), sparsity, dense bytes, bytes in the packed format
that would be chosen, the floor of `accounting.floor_bytes`, and their ratios. So a claimed
sparsity or size can be checked from the file alone.

Which tensors are prunable: the names recorded with the weights (the masks of a pruning
callback's state in a checkpoint, `prunable` in a packed file's metadata), else the default
rule by name (`DEFAULT_RULE`); the report says which.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightning_modules.pruning.accounting import floor_bytes, sparsity_summary, zero_count
from lightning_modules.pruning.packing import (
    PackedFormatError,
    is_packed_file,
    load_packed,
    pack_tensor,
    save_packed,
)

DEFAULT_RULE = (
    "default name rule: floating tensors of >= 2 dims named *.weight, *weight_ih_l*, "
    "*weight_hh_l*, *weight_hr_l* or *in_proj_weight, without 'embedding' or 'norm' in the name"
)
_PRUNABLE_PATTERNS = (
    "*.weight",
    "*weight_ih_l*",
    "*weight_hh_l*",
    "*weight_hr_l*",
    "*in_proj_weight",
)


class SavedFileError(ValueError):
    """A file that is missing, or neither a Lightning checkpoint nor a packed weights file."""


@dataclass
class SavedWeights:
    """The weights of a saved model with what is known about them."""

    path: Path
    kind: str  # "checkpoint" or "packed"
    state_dict: dict[str, torch.Tensor]
    hyper_parameters: dict[str, Any]
    prunable: list[str]
    prunable_rule: str
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def default_prunable(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Names the default rule (`DEFAULT_RULE`) considers prunable, for files that record none."""
    return [
        name
        for name, tensor in state_dict.items()
        if tensor.dim() >= 2
        and tensor.is_floating_point()
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in _PRUNABLE_PATTERNS)
        and "embedding" not in name
        and "norm" not in name
    ]


def _recorded_masks(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The masks of every callback state that has them (a `SparsePruning` callback's)."""
    masks: dict[str, torch.Tensor] = {}
    callbacks = checkpoint.get("callbacks") or {}
    for state in callbacks.values() if isinstance(callbacks, Mapping) else ():
        if isinstance(state, Mapping) and isinstance(state.get("masks"), Mapping):
            masks.update(state["masks"])
    return masks


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch raise many kinds for a foreign file
        # weights_only: a file from elsewhere runs no code; our checkpoints hold only plain data
        raise SavedFileError(
            f"{path}: not a Lightning checkpoint or packed weights file "
            f"(torch.load, weights only: {type(error).__name__})"
        ) from error
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise SavedFileError(f"{path}: not a Lightning checkpoint (it has no state_dict)")
    return dict(checkpoint)


def _check_names(
    path: Path, state_dict: Mapping[str, torch.Tensor], names: Iterable[str], source: str
) -> None:
    absent = [name for name in names if name not in state_dict]
    if absent:
        raise SavedFileError(f"{path}: {source} name tensors absent from the weights: {absent[:5]}")


def read_saved(path: str | Path) -> SavedWeights:
    """The weights, hyper-parameters and prunable names of a checkpoint or packed file.

    Raises `SavedFileError` (naming the file) for a missing file or one of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise SavedFileError(f"{path}: {'not a file' if path.exists() else 'file not found'}")
    try:
        packed = is_packed_file(path)
    except OSError as error:
        raise SavedFileError(f"{path}: cannot read ({error.strerror})") from error
    if packed:
        try:
            state_dict, metadata = load_packed(path)
        except PackedFormatError as error:
            raise SavedFileError(f"{path}: {error}") from error
        recorded = metadata.get("prunable")
        _check_names(path, state_dict, recorded or [], "the packed metadata's prunable list")
        return SavedWeights(
            path,
            "packed",
            state_dict,
            dict(metadata.get("hyper_parameters") or {}),
            list(recorded) if recorded else default_prunable(state_dict),
            "packed metadata" if recorded else DEFAULT_RULE,
            metadata=metadata,
        )
    checkpoint = _load_checkpoint(path)
    state_dict = dict(checkpoint["state_dict"])
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise SavedFileError(f"{path}: state_dict entry {name!r} is not a tensor")
    masks = _recorded_masks(checkpoint)
    _check_names(path, state_dict, masks, "the pruning masks")
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or mask.shape != state_dict[name].shape:
            raise SavedFileError(f"{path}: the pruning mask of {name} does not fit its tensor")
    order = [name for name in state_dict if name in masks]
    return SavedWeights(
        path,
        "checkpoint",
        state_dict,
        dict(checkpoint.get("hyper_parameters") or {}),
        order if masks else default_prunable(state_dict),
        "checkpoint pruning masks" if masks else DEFAULT_RULE,
        masks={name: masks[name] for name in order},
        metadata={"global_step": checkpoint.get("global_step")},
    )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _pooled(entries: Mapping[str, Mapping[str, Any]], tensors: Mapping[str, torch.Tensor]) -> dict:
    summary = sparsity_summary(tensors)
    packed = sum(entries[name]["packed_bytes"] for name in tensors)
    dense, floor = summary["dense_bytes"], summary["floor_bytes"]
    return {
        "tensors": len(tensors),
        "numel": summary["numel"],
        "nonzeros": summary["nonzeros"],
        "sparsity": summary["sparsity"],
        "dense_bytes": dense,
        "packed_bytes": packed,
        "floor_bytes": floor,
        "packed_over_dense": _ratio(packed, dense),
        "floor_over_dense": _ratio(floor, dense),
        "packed_over_floor": _ratio(packed, floor),
    }


def size_report(
    state_dict: Mapping[str, torch.Tensor],
    prunable: Sequence[str],
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Per-tensor and pooled sparsity and bytes of `state_dict`, counted from its values.

    With `masks`, each prunable tensor also gets its mask's sparsity and the count of entries
    the mask prunes that are not zero in the weights (`mask_violations`, 0 when consistent).
    """
    chosen = set(prunable)
    entries: dict[str, dict[str, Any]] = {}
    for name, tensor in state_dict.items():
        numel, size = tensor.numel(), tensor.element_size()
        nonzeros = numel - zero_count(tensor)
        packed = pack_tensor(tensor)
        entry = {
            "prunable": name in chosen,
            "shape": list(tensor.shape),
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "numel": numel,
            "nonzeros": nonzeros,
            "sparsity": _ratio(numel - nonzeros, numel),
            "dense_bytes": numel * size,
            "format": packed.format,
            "packed_bytes": packed.nbytes,
            "floor_bytes": floor_bytes(numel, nonzeros, size),
            "packed_over_dense": _ratio(packed.nbytes, numel * size),
        }
        if masks and name in masks:
            mask = masks[name].to(torch.bool)
            entry["mask_sparsity"] = _ratio(int((~mask).sum()), mask.numel())
            entry["mask_violations"] = int((tensor.detach()[~mask] != 0).sum())
        entries[name] = entry
    report = {
        "prunable": _pooled(entries, {name: state_dict[name] for name in prunable}),
        "model": _pooled(entries, state_dict),
        "tensors": entries,
    }
    if masks:
        report["prunable"]["mask_violations"] = sum(
            entry.get("mask_violations", 0) for entry in entries.values()
        )
    return report


def audit(path: str | Path) -> dict[str, Any]:
    """The size report of a checkpoint or packed file, plus its size on disk and provenance."""
    saved = read_saved(path)
    report = size_report(saved.state_dict, saved.prunable, saved.masks)
    file_bytes = saved.path.stat().st_size
    return {
        "file": str(saved.path),
        "kind": saved.kind,
        "file_bytes": file_bytes,
        "file_over_dense": _ratio(file_bytes, report["model"]["dense_bytes"]),
        "prunable_rule": saved.prunable_rule,
        **report,
    }


def export_packed(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the weights of a checkpoint (or packed file) to `out` in the packed format.

    The metadata keeps what rebuilding and auditing need: the LightningModule's
    hyper-parameters, the prunable names when the source records them, and the source.
    Returns the model's dense, packed (file) and floor bytes.
    """
    saved = read_saved(source)
    recorded = saved.prunable_rule != DEFAULT_RULE
    metadata = {
        "hyper_parameters": saved.hyper_parameters,
        "prunable": saved.prunable if recorded else None,
        "source": Path(source).name,
        "global_step": saved.metadata.get("global_step"),
    }
    file_bytes = save_packed(out, saved.state_dict, metadata)
    pooled = sparsity_summary(saved.state_dict)
    return {
        "out": str(out),
        "dense_bytes": pooled["dense_bytes"],
        "packed_bytes": file_bytes,
        "floor_bytes": pooled["floor_bytes"],
        "sparsity": pooled["sparsity"],
    }


def _bytes(value: int) -> str:
    return f"{value:,}"


def format_report(report: Mapping[str, Any]) -> str:
    """The audit report as a table: one row per tensor (prunable ones marked *), then totals."""
    width = max((len(name) for name in report["tensors"]), default=6)
    lines = [
        f"{report['file']} ({report['kind']}, {_bytes(report['file_bytes'])} bytes on disk = "
        f"{report['file_over_dense']:.3f} of dense)",
        f"prunable tensors by {report['prunable_rule']}",
        "",
        f"  {'tensor':<{width}} {'shape':>13} {'dtype':>8} {'sparsity':>8} {'format':>7} "
        f"{'dense B':>11} {'packed B':>11} {'floor B':>11} {'packed/dense':>12}",
    ]
    for name, entry in report["tensors"].items():
        lines.append(
            f"{'*' if entry['prunable'] else ' '} {name:<{width}} "
            f"{'x'.join(map(str, entry['shape'])) or 'scalar':>13} {entry['dtype']:>8} "
            f"{entry['sparsity']:>8.4f} {entry['format']:>7} {_bytes(entry['dense_bytes']):>11} "
            f"{_bytes(entry['packed_bytes']):>11} {_bytes(entry['floor_bytes']):>11} "
            f"{entry['packed_over_dense']:>12.4f}"
        )
    lines.append("")
    for label, key in (("prunable set", "prunable"), ("whole model", "model")):
        pooled = report[key]
        lines.append(
            f"{label:<13} {pooled['tensors']:>4} tensors  {pooled['numel']:>12,} weights  "
            f"sparsity {pooled['sparsity']:.4f}  dense {_bytes(pooled['dense_bytes'])} B  "
            f"packed {_bytes(pooled['packed_bytes'])} B ({pooled['packed_over_dense']:.4f})  "
            f"floor {_bytes(pooled['floor_bytes'])} B ({pooled['floor_over_dense']:.4f})"
        )
    if "mask_violations" in report["prunable"]:
        lines.append(
            f"pruned by the saved masks but non-zero in the weights: "
            f"{report['prunable']['mask_violations']}"
        )
    return "\n".join(lines)
