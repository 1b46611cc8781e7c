"""How far different methods chose the same weights: the Jaccard overlap of their masks.

The mask of a run is read from its saved weights (`model.packed`): a prunable weight is kept
when it is not zero. Two methods at one target sparsity are compared seed by seed (seed s
against seed s, the same dense start), per prunable tensor |A ∩ B| / |A ∪ B| of the kept sets,
and pooled over tensors and shared seeds (intersections and unions summed). Beside it stands
the overlap two independent random masks of the same kept fractions would have,
Σ n·p·q / Σ n·(p + q − p·q), so "CSP picks different weights than magnitude" is a measured
statement with its chance level.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations

import torch

from analysis.experiment import ReportError
from analysis.tables import Row, Table, role
from experiments.records import PACKED, GridCell
from lightning_modules.pruning.registry import Role
from lightning_modules.pruning.saved import SavedFileError, read_saved


@dataclass
class Overlap:
    """The masks of two methods at one target sparsity, pooled over their shared seeds."""

    sparsity: float
    a: str
    b: str
    seeds: list[int]
    intersection: dict[str, int] = field(default_factory=dict)  # tensor → |A ∩ B|
    union: dict[str, int] = field(default_factory=dict)
    chance_intersection: dict[str, float] = field(default_factory=dict)
    chance_union: dict[str, float] = field(default_factory=dict)

    def jaccard(self, tensor: str | None = None) -> float:
        """Of one tensor, or pooled over every tensor."""
        names = [tensor] if tensor else list(self.union)
        union = sum(self.union[name] for name in names)
        return sum(self.intersection[name] for name in names) / union if union else 1.0

    def chance(self, tensor: str | None = None) -> float:
        names = [tensor] if tensor else list(self.chance_union)
        union = sum(self.chance_union[name] for name in names)
        return sum(self.chance_intersection[name] for name in names) / union if union else 1.0

    @property
    def tensors(self) -> list[str]:
        return sorted(self.union)


def kept(run: GridCell) -> dict[str, torch.Tensor]:
    """Prunable tensor → its kept (non-zero) weights, from the run's saved weights."""
    try:
        saved = read_saved(run.directory / PACKED)
    except SavedFileError as error:
        raise ReportError(str(error)) from None
    return {name: saved.state_dict[name] != 0 for name in saved.prunable}


def _add(overlap: Overlap, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    if set(a) != set(b):
        raise ReportError(
            f"{overlap.a} and {overlap.b} at sparsity {overlap.sparsity:g} saved different "
            f"prunable tensors: {sorted(set(a) ^ set(b))[:3]}"
        )
    for name in a:
        size = a[name].numel()
        p, q = a[name].float().mean().item(), b[name].float().mean().item()
        for table, value in (
            (overlap.intersection, int((a[name] & b[name]).sum())),
            (overlap.union, int((a[name] | b[name]).sum())),
            (overlap.chance_intersection, size * p * q),
            (overlap.chance_union, size * (p + q - p * q)),
        ):
            table[name] = table.get(name, 0) + value


def _pruned_rows(tables: list[Table]) -> Iterator[Row]:
    """The pruned rows of the tables, each once (CSP's row stands in both tables)."""
    seen = set()
    for table in tables:
        for row in table.rows:
            if role(row.method) != Role.CONTROL and row.label not in seen:
                seen.add(row.label)
                yield row


def _overlaps_at(tables: list[Table], sparsity: float) -> list[Overlap]:
    runs = {
        row.name: {run.seed: run for run in row.entries[sparsity].complete}
        for row in _pruned_rows(tables)
    }
    masks: dict[tuple[str, int], dict[str, torch.Tensor]] = {}  # each run read once
    found = []
    for a, b in combinations(runs, 2):
        seeds = sorted(set(runs[a]) & set(runs[b]))
        if not seeds:
            continue
        overlap = Overlap(sparsity, a, b, seeds)
        for seed in seeds:
            for name in (a, b):
                if (name, seed) not in masks:
                    masks[name, seed] = kept(runs[name][seed])
            _add(overlap, masks[a, seed], masks[b, seed])
        found.append(overlap)
    return found


def mask_overlaps(tables: list[Table]) -> list[Overlap]:
    """Every pair of the tables' methods and variants at every target sparsity, on their
    shared complete seeds (a pair without one is left out)."""
    sparsities = sorted({s for table in tables for s in table.sparsities})
    return [o for sparsity in sparsities for o in _overlaps_at(tables, sparsity)]
