"""Random pruning: the floor every method must beat."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import torch
from typing_extensions import override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.registry import Role, register


@register
class RandomPruning(SparsePruning):
    """Random masks that follow the schedule: at every update each tensor keeps a uniformly
    random subset of its still-kept weights. Seeded by (seed, tensor, step), so every DDP rank
    and every resumed run draws the same masks.
    """

    name = "random"
    title = "Random"
    role = Role.FLOOR
    citation = "random masks on the schedule: the floor any method must beat"
    color = "#7f7f7f"

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        masks = {}
        for name, k in kept.items():
            generator = torch.Generator().manual_seed(
                zlib.crc32(f"{self.seed}:{name}:{step}".encode())
            )
            scores = torch.rand(self.masks[name].shape, generator=generator)
            masks[name] = self.select(name, scores, k)
        return masks
