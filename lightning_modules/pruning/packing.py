"""Packed sparse weights: each tensor stored in whichever encoding is smallest, losslessly.

A pruned model saved densely costs as much as the unpruned one. Here every tensor is
encoded as

- `dense`: the raw values;
- `bitmask`: one bit per entry (set where the entry is non-zero), then the non-zero values;
- `index`: the positions of the non-zero entries in the smallest unsigned type that holds
  any position, then the values;
- `delta`: the gaps between successive non-zero positions, one byte each (a 0 byte adds 255
  to the next gap, so any gap fits), then the values;

whichever is smallest (ties: the earlier in this list). Values keep their dtype and their
exact bits: an entry is stored unless all its bytes are zero, so -0.0 and NaN payloads survive,
and unpacking gives bit-identical tensors. `bitmask` costs exactly the size floor of
`accounting.floor_bytes`; `index`/`delta` go below it at very high sparsity.

File layout: 8-byte magic, little-endian u32 header length, a compact JSON header (format
version, CRC-32 of the data, caller metadata, one short row per tensor), then the tensors'
encodings back to back. The fixed overhead is a few dozen bytes per tensor.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAGIC = b"CSPPACK\x00"
FORMAT_VERSION = 1
FORMATS = ("dense", "bitmask", "index", "delta")
_PREFIX = struct.Struct("<8sI")  # magic, header length
_MAX_HEADER = 1 << 28


class PackedFormatError(ValueError):
    """A file or packed tensor that is not a valid packed encoding."""


@dataclass(frozen=True)
class PackedTensor:
    """One tensor's encoding: enough to rebuild it exactly."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    format: str
    nonzeros: int
    payload: bytes

    @property
    def nbytes(self) -> int:
        return len(self.payload)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def index_dtype(numel: int) -> np.dtype:
    """The smallest little-endian unsigned type that holds every position of `numel` entries."""
    for name in ("<u1", "<u2", "<u4"):
        if numel - 1 <= np.iinfo(name).max:
            return np.dtype(name)
    return np.dtype("<u8")


def _raw(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's bytes as an (numel, element_size) uint8 array, whatever its dtype."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().reshape(flat.numel(), tensor.element_size())


def _delta_codes(positions: np.ndarray) -> np.ndarray:
    """Gaps between positions (the first from -1) as bytes; each 0 byte adds 255 to the next."""
    gaps = np.diff(positions.astype(np.int64), prepend=-1)
    escapes = (gaps - 1) // 255
    codes = np.zeros(len(gaps) + int(escapes.sum()), dtype=np.uint8)
    codes[np.cumsum(escapes + 1) - 1] = gaps - 255 * escapes
    return codes


def _delta_positions(codes: np.ndarray) -> np.ndarray:
    steps = np.where(codes == 0, 255, codes.astype(np.int64))
    return (np.cumsum(steps) - 1)[codes != 0]


def pack_tensor(tensor: torch.Tensor) -> PackedTensor:
    """Encode `tensor` in the smallest of the four formats."""
    raw = _raw(tensor)
    numel, size = raw.shape
    keep = raw.any(axis=1)
    positions = np.flatnonzero(keep)
    nonzeros = len(positions)
    width = index_dtype(numel).itemsize
    codes = _delta_codes(positions)
    sizes = {
        "dense": numel * size,
        "bitmask": math.ceil(numel / 8) + nonzeros * size,
        "index": nonzeros * (width + size),
        "delta": len(codes) + nonzeros * size,
    }
    chosen = min(FORMATS, key=lambda name: (sizes[name], FORMATS.index(name)))
    if chosen == "dense":
        payload = raw.tobytes()
    else:
        values = raw[positions].tobytes()
        if chosen == "bitmask":
            where = np.packbits(keep, bitorder="little").tobytes()
        elif chosen == "index":
            where = positions.astype(index_dtype(numel)).tobytes()
        else:
            where = codes.tobytes()
        payload = where + values
    assert len(payload) == sizes[chosen]
    return PackedTensor(tensor.dtype, tuple(tensor.shape), chosen, nonzeros, payload)


def unpack_tensor(packed: PackedTensor) -> torch.Tensor:
    """The exact tensor `pack_tensor` encoded; `PackedFormatError` for an inconsistent one."""
    if packed.format not in FORMATS:
        raise PackedFormatError(f"unknown tensor format {packed.format!r}")
    size = torch.empty((), dtype=packed.dtype).element_size()
    numel, nonzeros, data = packed.numel, packed.nonzeros, packed.payload
    if not 0 <= nonzeros <= numel:
        raise PackedFormatError(f"{nonzeros} non-zeros in a tensor of {numel} entries")
    values_at = len(data) - nonzeros * size  # where the positions end and the values begin
    fits = {
        "dense": len(data) == numel * size,
        "bitmask": values_at == math.ceil(numel / 8),
        "index": values_at == nonzeros * index_dtype(numel).itemsize,
        "delta": values_at >= nonzeros,
    }
    if not fits[packed.format]:
        raise PackedFormatError(
            f"{packed.format} encoding of {len(data)} bytes does not fit {nonzeros} non-zeros "
            f"of {numel} entries"
        )
    if packed.format == "dense":
        raw = np.frombuffer(data, dtype=np.uint8).copy()
    else:
        where = np.frombuffer(data, dtype=np.uint8, count=values_at)
        if packed.format == "bitmask":
            bits = np.unpackbits(where, count=numel, bitorder="little").astype(bool)
            positions = np.flatnonzero(bits)
        elif packed.format == "index":
            positions = where.view(index_dtype(numel)).astype(np.int64)
        else:
            positions = _delta_positions(where)
        if len(positions) != nonzeros or (
            nonzeros and (positions[-1] >= numel or np.any(np.diff(positions) <= 0))
        ):
            raise PackedFormatError(f"{packed.format} positions do not fit {numel} entries")
        values = np.frombuffer(data, dtype=np.uint8, offset=values_at).reshape(nonzeros, size)
        raw = np.zeros((numel, size), dtype=np.uint8)
        raw[positions] = values
    return torch.from_numpy(raw.reshape(-1)).view(packed.dtype).reshape(packed.shape)


def pack_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, PackedTensor]:
    """Every tensor of `state_dict` packed, in its order."""
    packed = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        packed[name] = pack_tensor(tensor)
    return packed


def unpack_state_dict(packed: Mapping[str, PackedTensor]) -> dict[str, torch.Tensor]:
    """The dense state dict, bit-identical to the one packed (same dtypes and shapes)."""
    return {name: unpack_tensor(tensor) for name, tensor in packed.items()}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _parse_dtype(name: object) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise PackedFormatError(f"unknown dtype {name!r}")
    return dtype


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encode_file(packed: Mapping[str, PackedTensor], metadata: Mapping[str, Any]) -> bytes:
    """The bytes of a packed file: prefix, JSON header, then every encoding back to back."""
    blob = b"".join(tensor.payload for tensor in packed.values())
    rows = [
        [name, _dtype_name(t.dtype), list(t.shape), t.format, t.nonzeros, t.nbytes]
        for name, t in packed.items()
    ]
    header = {
        "format_version": FORMAT_VERSION,
        "crc32": zlib.crc32(blob),
        "metadata": dict(metadata),
        "tensors": rows,
    }
    try:
        text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata must be plain JSON (str, numbers, lists, dicts): {error}"
        ) from error
    return _PREFIX.pack(MAGIC, len(text)) + text + blob


def decode_file(data: bytes) -> tuple[dict[str, PackedTensor], dict[str, Any]]:
    """The packed tensors and metadata of a file's bytes; `PackedFormatError` if it is not one."""
    if len(data) < _PREFIX.size or data[: len(MAGIC)] != MAGIC:
        raise PackedFormatError("not a packed weights file (bad magic)")
    _, length = _PREFIX.unpack_from(data)
    start = _PREFIX.size + length
    if length > _MAX_HEADER or start > len(data):
        raise PackedFormatError("truncated packed weights file (header)")
    try:
        header = json.loads(data[_PREFIX.size : start])
        version, rows = header["format_version"], header["tensors"]
        metadata, crc = dict(header["metadata"]), header["crc32"]
    except (ValueError, KeyError, TypeError) as error:
        raise PackedFormatError(f"unreadable packed header: {error}") from error
    if version != FORMAT_VERSION:
        raise PackedFormatError(
            f"packed format version {version}; this code reads {FORMAT_VERSION}"
        )
    blob = memoryview(data)[start:]
    if zlib.crc32(blob) != crc:
        raise PackedFormatError("packed weights file is corrupt or truncated (CRC mismatch)")
    packed, offset = {}, 0
    try:
        for name, dtype, shape, fmt, nonzeros, nbytes in rows:
            if not all(_is_count(n) for n in (*shape, nonzeros, nbytes)) or offset + nbytes > len(
                blob
            ):
                raise PackedFormatError(f"bad table row for {name!r}")
            payload = bytes(blob[offset : offset + nbytes])
            packed[name] = PackedTensor(_parse_dtype(dtype), tuple(shape), fmt, nonzeros, payload)
            offset += nbytes
    except (ValueError, TypeError) as error:
        raise PackedFormatError(f"unreadable packed tensor table: {error}") from error
    if offset != len(blob):
        raise PackedFormatError(f"tensor table covers {offset} of {len(blob)} data bytes")
    metadata["format_version"] = version
    return packed, metadata


def save_packed(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> int:
    """Write `state_dict` packed, with JSON `metadata`, atomically; returns the file's size.

    The file appears complete or not at all (temporary file in the same folder, then
    `os.replace`), so an interrupted export never leaves a truncated file under `path`.
    """
    path = Path(path)
    data = encode_file(pack_state_dict(state_dict), metadata)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


def is_packed_file(path: str | Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(MAGIC)) == MAGIC


def load_packed(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The dense state dict and metadata (with `format_version`) of a packed file."""
    packed, metadata = decode_file(Path(path).read_bytes())
    return unpack_state_dict(packed), metadata
