"""Hard masks: choosing the kept entries, holding pruned entries at exactly zero, checksums."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import torch


def top_k_mask(scores: torch.Tensor, k: int, previous: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask keeping the `k` entries with the largest `scores`.

    With `previous`, entries it pruned stay pruned (masks only grow), as long as `k` does not
    exceed what it kept. Ties are broken by `torch.topk`, deterministically on one device.
    """
    flat = scores.detach().flatten().float()
    if previous is not None:
        flat = torch.where(previous.flatten(), flat, torch.tensor(-torch.inf, device=flat.device))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.view_as(scores)


def magnitude_mask(
    weight: torch.Tensor, k: int, previous: torch.Tensor | None = None
) -> torch.Tensor:
    """H_k as a mask: keep the `k` largest-magnitude entries of `weight`."""
    return top_k_mask(weight.abs(), k, previous)


@torch.no_grad()
def apply_mask(weight: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the pruned entries of `weight` in place (exact zeros, whatever its dtype)."""
    weight.masked_fill_(~mask, 0)


@torch.no_grad()
def mask_gradient(weight: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the gradient of pruned entries, so no optimizer sees a reason to move them."""
    if weight.grad is not None:
        weight.grad.masked_fill_(~mask, 0)


def mask_checksum(masks: Mapping[str, torch.Tensor]) -> int:
    """CRC-32 over the names and packed bits of all masks: equal masks, equal checksum."""
    crc = 0
    for name in sorted(masks):
        bits = np.packbits(masks[name].detach().flatten().cpu().numpy())
        crc = zlib.crc32(bits.tobytes(), zlib.crc32(name.encode(), crc))
    return crc
