"""A weight matrix in the storage format its products run fastest in, chosen by measurement.

Pruned weights are exact zeros in a dense tensor; a product with them costs as much as with
the unpruned matrix. torch's sparse layouts skip the zeros: CSR (any pattern) and BSR (whole
blocks, for block patterns) on the CPU, 2:4 semi-structured on a CUDA GPU. Whether they pay
depends on the shape, the sparsity and the number of columns multiplied at once (the platform
notes: CSR loses at batch 1 on a 1024 × 256 matrix even at s = 0.9, BSR 16 × 16 wins 2–2.6×
on 2560 × 640), so every matrix times each candidate on its own shape and the columns it will
see, and keeps the fastest; dense is always a candidate, so a matrix is never slower than
dense by choice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lightning_modules.pruning.sparsity_patterns import Blocks, NOfM, SparsityPattern, Unstructured

FORMATS = ("dense", "csr", "bsr", "semi_structured")
MEASURE_SECONDS = 0.05
"""Run time of each candidate's timing (torch.utils.benchmark's blocked autorange)."""
REQUIRED_GAIN = 0.95
"""A sparse choice replaces dense only if it measures at most this share of dense's time:
timings of one call wobble by a few percent, and a tie should stay dense."""

warnings.filterwarnings("ignore", message="Sparse (CSR|BSR) tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def semi_structured_available(device: torch.device) -> bool:
    """2:4 kernels run on CUDA GPUs of compute capability 8.0 or newer only."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def candidate_formats(
    weight: torch.Tensor, pattern: SparsityPattern
) -> list[tuple[str, tuple[int, int] | None]]:
    """The formats a product with `weight` may run in: (name, block shape for BSR)."""
    candidates: list[tuple[str, tuple[int, int] | None]] = [("dense", None)]
    if weight.device.type == "cpu":
        candidates.append(("csr", None))
    if isinstance(pattern, Blocks):
        block = (pattern.height, pattern.width)
        if weight.shape[0] % block[0] == 0 and weight.shape[1] % block[1] == 0:
            candidates.append(("bsr", block))
    half = weight.dtype in (torch.float16, torch.bfloat16)
    if pattern == NOfM(2, 4) and half and semi_structured_available(weight.device):
        candidates.append(("semi_structured", None))
    return candidates


@dataclass
class SparseMatrix:
    """`weight` (outputs × inputs) stored in `format`; `matmul(x)` is weight @ x."""

    stored: torch.Tensor
    format: str
    shape: tuple[int, int]

    @classmethod
    def build(
        cls, weight: torch.Tensor, format: str, block: tuple[int, int] | None = None
    ) -> SparseMatrix:
        weight = weight.detach().contiguous()
        if format == "dense":
            stored = weight
        elif format == "csr":
            stored = weight.to_sparse_csr()
        elif format == "bsr":
            stored = weight.to_sparse_bsr(block)
        elif format == "semi_structured":
            stored = torch.sparse.to_sparse_semi_structured(weight)
        else:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        return cls(stored, format, (weight.shape[0], weight.shape[1]))

    def matmul(self, x: torch.Tensor, added: torch.Tensor | None = None) -> torch.Tensor:
        """weight @ x (+ `added`, of shape (outputs, columns)) for x of (inputs, columns), in
        one call where torch has one: an LSTM step adds its input projection this way.

        A CSR product with one column runs as a matrix-vector product: torch's CSR
        matrix-matrix product is 1.5x slower at one column (measured on 5120 x 1280, s = 0.9).
        """
        stored = self.stored
        if self.format == "csr" and x.shape[1] == 1:
            if added is None:
                return torch.mv(stored, x[:, 0])[:, None]
            return torch.addmv(added[:, 0], stored, x[:, 0])[:, None]
        if added is None:
            return stored @ x
        if self.format == "semi_structured":
            return added + stored @ x
        return torch.addmm(added, stored, x)

    @property
    def nbytes(self) -> int:
        """Bytes a product reads of the weight: values, and indices for the sparse formats."""
        stored = self.stored
        if self.format == "dense":
            return stored.numel() * stored.element_size()
        if self.format in ("csr", "bsr"):
            parts: Sequence[torch.Tensor] = (
                stored.values(),
                stored.col_indices(),
                stored.crow_indices(),
            )
        else:  # semi-structured: half the values and 2-bit metadata, as torch packs them
            parts = (stored.packed,) if stored.packed is not None else ()
            if stored.meta is not None:
                parts = (*parts, stored.meta)
        return sum(part.numel() * part.element_size() for part in parts)


def median_seconds(call: Callable[[], object], threads: int | None = None) -> float:
    """Median seconds of `call()`, by torch.utils.benchmark's blocked autorange."""
    from torch.utils import benchmark  # imported here: it logs a CUDA notice at import

    timer = benchmark.Timer(
        stmt="call()", globals={"call": call}, num_threads=threads or torch.get_num_threads()
    )
    return timer.blocked_autorange(min_run_time=MEASURE_SECONDS).median


def time_product(matrix: SparseMatrix, columns: int, threads: int | None = None) -> float:
    """Median seconds of one `matrix @ x` with x of (inputs, columns) on the matrix's device."""
    x = torch.randn(
        matrix.shape[1], columns, dtype=_values_dtype(matrix), device=matrix.stored.device
    )
    return median_seconds(lambda: matrix.matmul(x), threads)


def _values_dtype(matrix: SparseMatrix) -> torch.dtype:
    stored = matrix.stored
    return stored.dtype if matrix.format != "semi_structured" else stored.packed.dtype


@dataclass(frozen=True)
class FormatChoice:
    """What the measurement chose for one matrix, and the times it compared (seconds)."""

    format: str
    block: tuple[int, int] | None
    seconds: dict[str, float]


def choose_format(
    weight: torch.Tensor,
    columns: int,
    pattern: SparsityPattern | None = None,
    threads: int | None = None,
    allowed: Sequence[tuple[str, tuple[int, int] | None]] | None = None,
) -> FormatChoice:
    """The fastest format for products of `weight` with `columns` columns, by measurement,
    among `allowed` (default: `candidate_formats`; dense is always compared)."""
    pattern = pattern or Unstructured()
    candidates = list(allowed if allowed is not None else candidate_formats(weight, pattern))
    if ("dense", None) not in candidates:
        candidates.insert(0, ("dense", None))
    seconds: dict[str, float] = {}
    blocks: dict[str, tuple[int, int] | None] = {}
    for format, block in candidates:
        matrix = SparseMatrix.build(weight, format, block)
        seconds[format] = time_product(matrix, columns, threads)
        blocks[format] = block
    best = min(seconds, key=seconds.__getitem__)
    if seconds[best] > REQUIRED_GAIN * seconds["dense"]:
        best = "dense"
    return FormatChoice(best, blocks[best], seconds)
