"""Benchmark: packed file size of the small preset pruned to 0.5, 0.7, 0.8 and 0.9.

Writes benchmarks/results/export_size.json. Per level, the prunable tensors keep their
largest-magnitude weights (per tensor), the whole model is written with `save_packed` (the
`csp export` format) and the file is weighed against the dense bytes and against the floor
(Σ `floor_bytes`: non-zero values plus one mask bit per entry, dense where smaller):
`packed_over_dense` (the file) and `floor` are fractions of the whole model's dense bytes;
`prunable` gives the same for the prunable tensors' encodings alone. For comparison, the same
encodings in an uncompressed numpy .npz (one array per tensor) are weighed too.
Goal (issue 3): the file within 2% of the floor at every level, and ≤ 0.14 of dense at 0.9.

    python benchmarks/export_size.py [--ckpt CHECKPOINT]   # default: fresh init, seed 0
"""

from __future__ import annotations

import argparse
import datetime
import io
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from experiments.records import write_json
from lightning_modules.asr.loading import load_recognizer
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.pruning.accounting import sparsity_summary
from lightning_modules.pruning.masks import apply_mask, magnitude_mask
from lightning_modules.pruning.packing import (
    encode_file,
    load_packed,
    pack_state_dict,
    save_packed,
)
from lightning_modules.pruning.schedules import kept_count
from lightning_modules.pruning.targets import discover_tensors

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "export_size.json"
LEVELS = (0.5, 0.7, 0.8, 0.9)
WITHIN = 0.02
MAX_AT_09 = 0.14


def build(checkpoint: Path | None) -> RNNTSpeechRecognizer:
    if checkpoint is not None:
        return load_recognizer(checkpoint)[0]
    torch.manual_seed(0)
    return RNNTSpeechRecognizer(model=model_config("small").model_dump())


def npz_bytes(packed: dict, metadata: dict) -> int:
    """Size of the same encodings in an uncompressed .npz (the container not chosen)."""
    buffer = io.BytesIO()
    data = encode_file(packed, metadata)
    header = data[: len(data) - sum(t.nbytes for t in packed.values())]  # same table, no blob
    arrays = {name: np.frombuffer(t.payload, dtype=np.uint8) for name, t in packed.items()}
    np.savez(buffer, __header__=np.frombuffer(header, dtype=np.uint8), **arrays)
    return buffer.getbuffer().nbytes


def measure(checkpoint: Path | None, sparsity: float, folder: Path) -> dict:
    module = build(checkpoint)
    tensors = discover_tensors(module)
    for tensor in tensors:
        mask = magnitude_mask(tensor.parameter, kept_count(tensor.numel, sparsity))
        apply_mask(tensor.parameter.data, mask)
    state_dict = module.state_dict()
    names = [tensor.name for tensor in tensors]
    metadata = {"hyper_parameters": dict(module.hparams), "prunable": names}

    path = folder / f"small-{sparsity}.packed"
    started = time.perf_counter()
    file_bytes = save_packed(path, state_dict, metadata)
    pack_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded, _ = load_packed(path)
    unpack_s = time.perf_counter() - started
    assert all(torch.equal(loaded[name], state_dict[name]) for name in state_dict)

    packed = pack_state_dict(state_dict)
    model = sparsity_summary(state_dict)
    prunable = sparsity_summary({name: state_dict[name] for name in names})
    dense, floor = model["dense_bytes"], model["floor_bytes"]
    prunable_packed = sum(packed[name].nbytes for name in names)
    return {
        "packed_over_dense": file_bytes / dense,
        "floor": floor / dense,
        "packed_over_floor": file_bytes / floor,
        "within_2pct_of_floor": file_bytes <= (1 + WITHIN) * floor,
        "file_bytes": file_bytes,
        "header_bytes": file_bytes - sum(t.nbytes for t in packed.values()),
        "dense_bytes": dense,
        "floor_bytes": floor,
        "model_sparsity": model["sparsity"],
        "prunable": {
            "sparsity": prunable["sparsity"],
            "packed_over_dense": prunable_packed / prunable["dense_bytes"],
            "floor": prunable["floor_bytes"] / prunable["dense_bytes"],
        },
        "formats": dict(Counter(t.format for t in packed.values())),
        "npz_over_dense": npz_bytes(packed, metadata) / dense,
        "pack_s": pack_s,
        "unpack_s": unpack_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="a trained small checkpoint")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        levels = {str(s): measure(args.ckpt, s, Path(folder)) for s in LEVELS}
    module = build(args.ckpt)
    goal_met = all(level["within_2pct_of_floor"] for level in levels.values()) and (
        levels["0.9"]["packed_over_dense"] <= MAX_AT_09
    )
    write_json(
        args.out,
        {
            "levels": levels,
            "goal": {"within_floor": WITHIN, "packed_over_dense_at_0.9_max": MAX_AT_09},
            "goal_met": goal_met,
            "model": "small",
            "source": str(args.ckpt) if args.ckpt else "fresh init, seed 0",
            "params": sum(p.numel() for p in module.parameters()),
            "prunable_params": sum(t.numel for t in discover_tensors(module)),
            "basis": "fractions of the whole model's dense bytes (state_dict, fp32)",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        },
    )
    for level, values in levels.items():
        print(
            f"sparsity {level}: packed {values['packed_over_dense']:.4f} of dense, "
            f"floor {values['floor']:.4f}, within 2%: {values['within_2pct_of_floor']}"
        )
    print(f"goal met: {goal_met}; wrote {args.out}")


if __name__ == "__main__":
    main()
