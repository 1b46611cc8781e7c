"""Audit of a saved model: sparsity and size, recounted from the saved weights themselves.

Reads a Lightning checkpoint (`.ckpt`) or a packed file (`packing`) and reports, per tensor
and pooled over the prunable set and over the whole model: entries, non-zeros (exact zeros
are counted, nothing is taken from logs), sparsity, dense bytes, bytes in the packed format
that would be chosen, the floor of `accounting.floor_bytes`, and their ratios. So a claimed
sparsity or size can be checked from the file alone.

Which tensors are prunable is what `saved.read_saved` finds; the report says by which rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lightning_modules.pruning.accounting import floor_bytes, sparsity_summary, zero_count
from lightning_modules.pruning.packing import pack_tensor
from lightning_modules.pruning.saved import read_saved


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
