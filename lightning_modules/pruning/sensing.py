"""Compressed sensing of a weight tensor: blocks, sensing matrices, sparse recovery.

A tensor is flattened and cut into blocks of `n` entries (the rows of X, shape B × n, the last
block zero-padded). Each block is measured with the same matrix Φ (m × n): Y = X Φᵀ. Recovery
finds a tensor with k non-zeros (k counted over the whole tensor, not per block) whose
measurements match Y. Every step is one matrix product over all blocks at once, on the
weights' device.

Activation sensing is the data-driven kind: the rows of a weight (outputs × inputs) are the
blocks, and Φ is the layer's own inputs A, so the measurements are its pre-activations. Only
AᵀA enters the recovery (`normal_equations`), which calibration statistics hold.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Literal

import torch

from lightning_modules.pruning.masks import select_top_k

SensingKind = Literal["gaussian", "rademacher", "identity", "activation"]
RecoveryKind = Literal["iht", "ista"]
SENSING_KINDS = ("gaussian", "rademacher", "identity", "activation")
RANDOM_SENSING = ("gaussian", "rademacher")
RECOVERY_KINDS = ("iht", "ista")
Projection = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]
"""(values, k, allowed) → the support of the projection onto k-sparse tensors (of a pattern)."""


def measurement_count(block_size: int, ratio: float, kind: SensingKind) -> int:
    """m = ⌈ρ·n⌉ measurements per block of a random Φ; identity sensing measures every entry."""
    return block_size if kind == "identity" else max(1, math.ceil(ratio * block_size))


def sensing_matrix(kind: SensingKind, rows: int, cols: int, seed: int, name: str) -> torch.Tensor:
    """Φ for tensor `name`, drawn from (seed, name) on the CPU: never stored, and the same on
    every device and every DDP rank. Gaussian entries are N(0, 1/m), Rademacher ±1/√m."""
    if kind == "identity":
        return torch.eye(cols)
    if kind not in RANDOM_SENSING:
        raise ValueError(f"{kind!r} sensing has no sensing matrix of its own")
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
    if kind == "gaussian":
        return torch.randn(rows, cols, generator=generator) / math.sqrt(rows)
    signs = torch.randint(0, 2, (rows, cols), generator=generator) * 2 - 1
    return signs.float() / math.sqrt(rows)


def to_blocks(tensor: torch.Tensor, block_size: int) -> torch.Tensor:
    """Flatten and cut into rows of `block_size`, zero-padding the last one."""
    flat = tensor.flatten()
    pad = (-flat.numel()) % block_size
    return torch.nn.functional.pad(flat, (0, pad)).view(-1, block_size)


def from_blocks(blocks: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_blocks`: drop the padding, restore `like`'s shape."""
    return blocks.flatten()[: like.numel()].view_as(like)


def hard_threshold(values: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
    """The support of H_k: the `k` largest |values| among `allowed` entries (a bool mask);
    all allowed entries if fewer than `k` are."""
    k = min(k, int(torch.count_nonzero(allowed)))
    scores = torch.where(allowed, values.abs(), torch.tensor(-1.0, device=values.device))
    return select_top_k(scores.flatten(), k).view_as(values)


def _soft_threshold(values: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
    """Soft thresholding at the (k+1)-th largest |value|: at most k entries survive."""
    magnitudes = torch.where(allowed, values.abs(), torch.zeros((), device=values.device))
    flat = magnitudes.flatten()
    tau = torch.topk(flat, k + 1).values[-1] if k < flat.numel() else flat.new_zeros(())
    return torch.sign(values) * torch.clamp(magnitudes - tau, min=0.0)


def normal_equations(
    measurements: torch.Tensor, phi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Y Φ, ΦᵀΦ): all that recovery needs of measurements Y = X Φᵀ and their matrix Φ.

    Activation sensing (`CompressedSensingPruning` with `sensing: activation`) arrives here
    directly: its Φ is a layer's inputs A, and AᵀA is the calibration statistics' Gram."""
    return measurements @ phi, phi.T @ phi


class _Lipschitz:
    """‖ΦᵀΦ‖₂, the gradient's Lipschitz constant, computed on first use: an SVD of each Gram,
    which for activation sensing (d × d, d up to the layer width) costs more than the
    iterations that rarely need it."""

    def __init__(self, gram: torch.Tensor) -> None:
        self.gram = gram
        self._value: torch.Tensor | None = None

    @property
    def value(self) -> torch.Tensor:
        if self._value is None:
            norm = torch.linalg.matrix_norm(self.gram, ord=2).clamp_min(1e-30)
            self._value = norm.reshape(*norm.shape, 1, 1)
        return self._value


def _exact_step(
    on_support: torch.Tensor, moved: torch.Tensor, lipschitz: _Lipschitz
) -> torch.Tensor:
    """The exact line-search step of the least squares along `on_support` (whose product
    with ΦᵀΦ is `moved`), one per row; 1/L where the direction has no curvature."""
    curvature = (moved * on_support).sum(dim=-1, keepdim=True)
    exact = on_support.square().sum(dim=-1, keepdim=True) / curvature.clamp_min(1e-30)
    if bool((curvature > 0).all()):
        return exact
    return torch.where(curvature > 0, exact, 1.0 / lipschitz.value)


def _line_search_step(
    direction: torch.Tensor, on_support: torch.Tensor, gram: torch.Tensor, lipschitz: _Lipschitz
) -> torch.Tensor:
    """step × `direction`, with the exact step along the support's part of the gradient."""
    return _exact_step(on_support, on_support @ gram, lipschitz) * direction


def recover(
    correlation: torch.Tensor,
    gram: torch.Tensor,
    k: int,
    allowed: torch.Tensor,
    start: torch.Tensor,
    iterations: int,
    method: RecoveryKind = "iht",
    project: Projection = hard_threshold,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse reconstruction X̂ (B × n) with k non-zeros among `allowed`, and its support.

    The problem is min ‖Y − X̂ Φᵀ‖² given in normal form, `correlation` Y Φ (B × n) and
    `gram` ΦᵀΦ (n × n); with a leading group dimension, (G, B, n) and (G, n, n), each group of
    rows has its own Φ and k still counts over all of them.

    `iht`: normalised iterative hard thresholding (Blumensath & Davies 2010), warm-started at
    H_k(start): X̂ ← H_k(X̂ + μ Φᵀ(Y − Φ X̂)), with μ the exact line-search step on the
    current support, one per row (a single step for the whole tensor stalls when rows hold
    very different numbers of non-zeros), then one such step restricted to the new support
    (a cheap form of Foucart's 2011 hard thresholding pursuit: without it, one block can hold
    on to entries of the global k that others need, and exact recovery fails on a third of
    random draws). `ista`: soft thresholding with step 1/‖Φ‖², the threshold chosen each
    iteration so that k entries survive, then H_k. `project` is H_k's support; a sparsity
    pattern replaces it, so the recovery stays in the pattern.
    """
    if k >= int(torch.count_nonzero(allowed)):  # nothing to choose: all the pattern allows
        support = project(start, k, allowed)
        return start * support, support
    # from zero, the first support is that of the gradient, Φᵀy (Blumensath & Davies' start)
    support = project(start if start.any() else correlation, k, allowed)
    estimate = start * support.to(start.dtype)
    lipschitz = _Lipschitz(gram)
    residual = None  # Y Φ − X̂ ΦᵀΦ of the current estimate, carried over from the debias step
    for _ in range(iterations):
        if method == "iht":
            kept = support.to(estimate.dtype)  # one cast, not one per product with the mask
            gradient = correlation - estimate @ gram if residual is None else residual
            proposal = estimate + _line_search_step(gradient, gradient * kept, gram, lipschitz)
            support = project(proposal, k, allowed)
            kept = support.to(estimate.dtype)
            estimate = proposal * kept
            # debias on the new support (Foucart's HTP, one gradient step of its least squares);
            # its product with ΦᵀΦ updates the residual, so an iteration costs three products
            residual = correlation - estimate @ gram
            on_support = residual * kept
            moved = on_support @ gram
            step = _exact_step(on_support, moved, lipschitz)
            estimate = estimate + step * on_support
            residual = residual - step * moved
        elif method == "ista":
            gradient = correlation - estimate @ gram
            estimate = _soft_threshold(estimate + gradient / lipschitz.value, k, allowed)
            support = estimate != 0
        else:
            raise ValueError(f"recovery must be one of {RECOVERY_KINDS}, got {method!r}")
    if method == "ista":  # fill up to k with the largest entries of `start`, if fewer survived
        ranked = torch.where(estimate != 0, estimate.abs() + start.abs().max(), start.abs())
        support = project(ranked, k, allowed)
        estimate = estimate * support
    return estimate, support
