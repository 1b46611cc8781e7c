"""Hard masks: choosing the kept entries, holding pruned entries at exactly zero, checksums."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping

import numpy as np
import torch

_BAND_MIN_SIZE = 1 << 16
"""Below this many entries a plain `torch.topk` is as fast as the banded selection."""
_BAND_SAMPLE = 1 << 13
_BAND_HALF_WIDTH = 0.015


@functools.lru_cache(maxsize=64)
def _sample_positions(numel: int) -> torch.Tensor:
    """`_BAND_SAMPLE` positions in [0, numel), the same for every call. Drawn, not strided: a
    stride that divides a weight's row length samples a few columns only, and when columns
    differ in scale (they do: inputs differ) the band misses the k-th value and the full
    `topk` runs after all."""
    generator = torch.Generator().manual_seed(numel)
    return torch.randint(0, numel, (_BAND_SAMPLE,), generator=generator)


def select_top_k(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the `k` largest entries of a 1-D tensor, exactly `k` of them.

    `torch.topk` with k near N/2 dominates the cost of a mask update, so large tensors go
    through a band: a sample locates the k-th value within ±1.5% in rank, everything above
    the band is kept, and `topk` runs only inside the band. Same result as `topk` (ties
    aside); deterministic, since the sample's positions are fixed (`_sample_positions`).
    """
    numel = flat.numel()
    mask = torch.zeros(numel, dtype=torch.bool, device=flat.device)
    if k <= 0:
        return mask
    if k >= numel:
        return mask.fill_(True)
    if numel >= _BAND_MIN_SIZE:
        sample = flat[_sample_positions(numel).to(flat.device)]
        rank = (1.0 - k / numel) * sample.numel()
        spread = _BAND_HALF_WIDTH * sample.numel()
        low = sample.kthvalue(max(int(rank - spread), 1)).values
        high = sample.kthvalue(min(int(rank + spread) + 1, sample.numel())).values
        above = flat > high
        band = torch.nonzero((flat >= low) & ~above).squeeze(1)
        needed = k - int(torch.count_nonzero(above))
        if 0 <= needed <= band.numel():
            mask |= above
            mask[band[torch.topk(flat[band], needed, sorted=False).indices]] = True
            return mask
    mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask


def top_k_mask(scores: torch.Tensor, k: int, previous: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask keeping the `k` entries with the largest `scores`.

    With `previous`, entries it pruned stay pruned (masks only grow), as long as `k` does not
    exceed what it kept.
    """
    flat = scores.detach().flatten().float()
    if previous is not None:
        flat = torch.where(previous.flatten(), flat, torch.tensor(-torch.inf, device=flat.device))
    return select_top_k(flat, k).view_as(scores)


def row_top_k_mask(
    scores: torch.Tensor, k: int, previous: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean mask keeping `k` entries in all, the same number (±1) in every row of the 2-D
    `scores`, each row its largest: the per-output comparison group of Wanda. With `previous`,
    pruned entries stay pruned; a row with too few left hands its share to the first
    rows with room."""
    rows, width = scores.shape
    flat = scores.detach().float()
    alive = torch.full((rows,), width) if previous is None else previous.sum(1).cpu()
    if previous is not None:
        flat = torch.where(previous, flat, torch.tensor(-torch.inf, device=flat.device))
    quota = torch.full((rows,), k // rows)
    quota[: k % rows] += 1
    quota = torch.minimum(quota, alive)
    shortfall = k - int(quota.sum())
    for row in range(rows):
        if shortfall <= 0:
            break
        extra = min(shortfall, int(alive[row] - quota[row]))
        quota[row] += extra
        shortfall -= extra
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(width, device=order.device).expand(rows, -1))
    return ranks < quota.to(ranks.device)[:, None]


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
