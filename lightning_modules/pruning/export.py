"""`csp export`: a saved model written as a packed sparse file (`packing`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_modules.pruning.accounting import sparsity_summary
from lightning_modules.pruning.packing import save_packed
from lightning_modules.pruning.saved import DEFAULT_RULE, read_saved


def export_packed(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the weights of a checkpoint (or packed file) to `out` in the packed format.

    The metadata keeps what rebuilding and auditing need: the LightningModule's
    hyper-parameters, the prunable names when the source records them, and the source.
    Returns the model's dense, packed (file) and floor bytes.
    """
    saved = read_saved(source)
    recorded = saved.prunable_rule != DEFAULT_RULE
    metadata = {
        "hyper_parameters": saved.hyper_parameters,
        "prunable": saved.prunable if recorded else None,
        "source": Path(source).name,
        "global_step": saved.metadata.get("global_step"),
        "pattern": saved.pattern,
    }
    file_bytes = save_packed(out, saved.state_dict, metadata)
    pooled = sparsity_summary(saved.state_dict)
    return {
        "out": str(out),
        "dense_bytes": pooled["dense_bytes"],
        "packed_bytes": file_bytes,
        "floor_bytes": pooled["floor_bytes"],
        "sparsity": pooled["sparsity"],
    }
