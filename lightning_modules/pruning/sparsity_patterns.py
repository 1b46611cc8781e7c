"""Sparsity patterns: where the kept entries of a tensor may lie.

Every method scores entries its own way; a pattern turns scores into a mask that a sparse
kernel can use. Patterns act on a tensor's (outputs, inputs) view (`as_rows`: an LSTM's
(4H, in), a Linear's (out, in), a convolution's (out, in · kernel)):

- `unstructured`: any k entries (the top-k of the scores);
- `N:M` (e.g. `2:4`): in every group of M consecutive inputs of a row, at most N are kept (the
  last group of a row may be shorter). A tensor pruned to less than 1 − N/M is still at
  1 − N/M: the pattern caps the density;
- `HxW` (e.g. `4x4`): the view is tiled by H × W blocks (edge blocks may be smaller) and each
  block is kept or pruned whole, ranked by its mean score.

Pruned entries stay pruned (`alive`). A mask keeps k entries where the pattern allows: N:M
keeps min(k, its cap), blocks keep the number of whole blocks whose size is nearest to k.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from lightning_modules.pruning.masks import top_k_mask

UNSTRUCTURED = "unstructured"


def as_rows(tensor: torch.Tensor) -> torch.Tensor:
    """A weight as (outputs, inputs per output): the view patterns and statistics describe."""
    return tensor.reshape(tensor.shape[0], -1) if tensor.dim() else tensor.reshape(1, 1)


def _scores_of_alive(scores: torch.Tensor, alive: torch.Tensor | None) -> torch.Tensor:
    scores = scores.detach().float()
    if alive is None:
        return scores
    return torch.where(alive, scores, torch.tensor(-torch.inf, device=scores.device))


class SparsityPattern(ABC):
    """A constraint on masks, and the selection that satisfies it."""

    spec: str
    """How configs write it: `unstructured`, `2:4`, `4x4`."""

    @property
    def structured(self) -> bool:
        return True

    @property
    def density_cap(self) -> float:
        """The largest share of entries a mask of this pattern keeps."""
        return 1.0

    @property
    def tile(self) -> tuple[int, int]:
        """(rows, inputs) of the pattern's unit: a part of the view that starts at a multiple
        of it can be masked on its own and the whole still holds the pattern."""
        return (1, 1)

    def select(
        self, scores: torch.Tensor, k: int, alive: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Boolean mask shaped like `scores`, of this pattern, keeping about `k` entries (see
        the module docstring) with the highest scores among the `alive` ones."""
        rows = as_rows(_scores_of_alive(scores, alive))
        return self._select_rows(rows, k).view_as(scores)

    @abstractmethod
    def _select_rows(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        """`select` on the (outputs, inputs) view, dead entries scored -inf."""

    @abstractmethod
    def violations(self, mask: torch.Tensor) -> int:
        """How many groups (N:M groups, blocks) of `mask` break the pattern: 0 when it holds."""

    def __str__(self) -> str:
        return self.spec


class Unstructured(SparsityPattern):
    """Any k entries: the top-k of the scores over the whole tensor."""

    spec = UNSTRUCTURED

    @property
    def structured(self) -> bool:
        return False

    def select(
        self, scores: torch.Tensor, k: int, alive: torch.Tensor | None = None
    ) -> torch.Tensor:
        return top_k_mask(scores, k, alive)

    def _select_rows(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        return top_k_mask(scores, k)

    def violations(self, mask: torch.Tensor) -> int:
        return 0


@dataclass(frozen=True)
class NOfM(SparsityPattern):
    """N:M along the inputs: at most `n` kept in every `m` consecutive inputs of a row."""

    n: int
    m: int

    @property
    def spec(self) -> str:  # type: ignore[override]
        return f"{self.n}:{self.m}"

    @property
    def density_cap(self) -> float:
        return self.n / self.m

    @property
    def tile(self) -> tuple[int, int]:
        return (1, self.m)

    def _groups(self, rows: torch.Tensor, fill: float) -> torch.Tensor:
        pad = (-rows.shape[1]) % self.m
        padded = torch.nn.functional.pad(rows, (0, pad), value=fill)
        return padded.view(rows.shape[0], -1, self.m)

    def _select_rows(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        groups = self._groups(scores, -torch.inf)
        best = groups.topk(min(self.n, self.m), dim=2).indices
        candidate = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, best, True)
        candidate &= groups > -torch.inf
        ranked = torch.where(candidate, groups, torch.tensor(-torch.inf, device=groups.device))
        kept = top_k_mask(ranked, min(k, int(candidate.sum())))
        return kept.flatten(1)[:, : scores.shape[1]]

    def violations(self, mask: torch.Tensor) -> int:
        groups = self._groups(as_rows(mask).float(), 0.0)
        return int((groups.sum(2) > self.n).sum())


@dataclass(frozen=True)
class Blocks(SparsityPattern):
    """`height` × `width` blocks of the (outputs, inputs) view, each kept or pruned whole."""

    height: int
    width: int

    @property
    def spec(self) -> str:  # type: ignore[override]
        return f"{self.height}x{self.width}"

    @property
    def tile(self) -> tuple[int, int]:
        return (self.height, self.width)

    def _tiles(self, rows: torch.Tensor, fill: float) -> torch.Tensor:
        """(R, C) → (row blocks, column blocks, height · width), padded with `fill`."""
        pad_rows, pad_cols = (-rows.shape[0]) % self.height, (-rows.shape[1]) % self.width
        padded = torch.nn.functional.pad(rows, (0, pad_cols, 0, pad_rows), value=fill)
        tiles = padded.view(padded.shape[0] // self.height, self.height, -1, self.width)
        return tiles.permute(0, 2, 1, 3).reshape(tiles.shape[0], tiles.shape[2], -1)

    def _untile(self, tiles: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        row_blocks, col_blocks = tiles.shape[:2]
        grid = tiles.view(row_blocks, col_blocks, self.height, self.width).permute(0, 2, 1, 3)
        return grid.reshape(row_blocks * self.height, col_blocks * self.width)[
            : shape[0], : shape[1]
        ]

    def _select_rows(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        valid = self._tiles(torch.ones_like(scores), 0.0)
        tiles = self._tiles(torch.nan_to_num(scores, neginf=-torch.inf), 0.0)
        sizes = valid.sum(2)
        inside = torch.where(valid > 0, tiles, torch.zeros_like(tiles))  # padding scores 0
        alive = (inside > -torch.inf).all(2)
        mean = inside.sum(2) / sizes
        mean = torch.where(alive, mean, torch.tensor(-torch.inf, device=mean.device)).flatten()
        order = mean.argsort(descending=True, stable=True)
        ordered_sizes = sizes.flatten()[order]
        fits = ordered_sizes.cumsum(0) - ordered_sizes / 2 < k  # the count nearest to k
        keep = torch.zeros_like(mean, dtype=torch.bool)
        keep[order[fits & (mean[order] > -torch.inf)]] = True
        blocks = keep.view(sizes.shape)[:, :, None].expand_as(tiles)
        return self._untile(blocks, scores.shape)

    def violations(self, mask: torch.Tensor) -> int:
        rows = as_rows(mask).float()
        kept = self._tiles(rows, 0.0).sum(2)
        sizes = self._tiles(torch.ones_like(rows), 0.0).sum(2)
        return int(((kept > 0) & (kept < sizes)).sum())


_N_OF_M = re.compile(r"(\d+):(\d+)")
_BLOCKS = re.compile(r"(\d+)x(\d+)")


def parse_pattern(spec: str | SparsityPattern) -> SparsityPattern:
    """The pattern a config names: `unstructured`, `N:M` (1 ≤ N < M) or `HxW` (H·W > 1)."""
    if isinstance(spec, SparsityPattern):
        return spec
    hint = "write 'unstructured', N:M like '2:4' or blocks HxW like '4x4'"
    if not isinstance(spec, str):
        raise ValueError(f"pattern must be a string; {hint}; got {spec!r}")
    if spec == UNSTRUCTURED:
        return Unstructured()
    if match := _N_OF_M.fullmatch(spec):
        n, m = map(int, match.groups())
        if not 1 <= n < m:
            raise ValueError(f"pattern {spec!r}: N:M needs 1 <= N < M")
        return NOfM(n, m)
    if match := _BLOCKS.fullmatch(spec):
        height, width = map(int, match.groups())
        if height < 1 or width < 1 or height * width < 2:
            raise ValueError(f"pattern {spec!r}: blocks HxW need H, W >= 1 and H*W >= 2")
        return Blocks(height, width)
    raise ValueError(f"unknown pattern {spec!r}; {hint}")
