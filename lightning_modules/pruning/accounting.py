"""Size accounting from the weights themselves: sparsity and bytes, dense and at the floor.

Callbacks, `csp export` and `csp audit` all count here, so the sparsity a run logs and the
sparsity an audit reads from the saved file are computed the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def zero_count(tensor: torch.Tensor) -> int:
    return int((tensor.detach() == 0).sum())


def floor_bytes(numel: int, nonzeros: int, element_size: int) -> int:
    """Least bytes for a tensor with `nonzeros` values: (1 − s)·dense + one mask bit per entry,
    or dense where that is smaller."""
    dense = numel * element_size
    return min(dense, nonzeros * element_size + math.ceil(numel / 8))


def sparsity_summary(tensors: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """Per-tensor and pooled sparsity (share of exact zeros) of `tensors`, with byte counts."""
    per_tensor = {}
    numel = zeros = dense = floor = 0
    for name, tensor in tensors.items():
        n, z, size = tensor.numel(), zero_count(tensor), tensor.element_size()
        per_tensor[name] = z / n if n else 0.0
        numel, zeros = numel + n, zeros + z
        dense += n * size
        floor += floor_bytes(n, n - z, size)
    return {
        "per_tensor": per_tensor,
        "sparsity": zeros / numel if numel else 0.0,
        "numel": numel,
        "nonzeros": numel - zeros,
        "dense_bytes": dense,
        "floor_bytes": floor,
    }
