"""`csp export` and `csp audit`: saved models as packed sparse files, and their sizes.

Usage:

    csp export runs/NAME/checkpoints/last.ckpt --out model.packed
    csp audit model.packed [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli.errors import FileArgumentError


@click.command("export", short_help="Write a checkpoint as a packed sparse file.")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="the packed file to write (replaced atomically if it exists)",
)
def export(checkpoint: Path, out: Path) -> None:
    """Write CHECKPOINT's weights as a packed sparse file, and print its size.

    Each tensor is stored dense, as a bitmask plus its non-zero values, or as the positions
    of its non-zero values plus the values, whichever is smallest; unpacking gives the exact
    weights back. The file keeps the model's hyper-parameters and the names of the pruned
    tensors, so the model can be rebuilt from it alone
    (`lightning_modules.asr.loading.load_recognizer`) and `csp audit` can read it. Prints
    dense, packed and floor bytes of the whole model (floor: non-zero values plus one mask
    bit per entry, per tensor).
    """
    from lightning_modules.pruning.export import export_packed
    from lightning_modules.pruning.saved import SavedFileError

    try:
        sizes = export_packed(checkpoint, out)
    except SavedFileError as error:
        raise FileArgumentError(str(error)) from error
    except OSError as error:
        raise FileArgumentError(
            f"{out}: cannot write the packed file ({error.strerror})"
        ) from error
    dense = sizes["dense_bytes"]
    click.echo(f"wrote {out} (model sparsity {sizes['sparsity']:.4f})")
    for label in ("dense", "packed", "floor"):
        value = sizes[f"{label}_bytes"]
        click.echo(f"{label:<7}{value:>14,} bytes  {value / dense:.4f} of dense")


@click.command("audit", short_help="Recount sparsity and size from a saved model.")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
def audit(checkpoint: Path, as_json: bool) -> None:
    """Report the sparsity and size of a saved model, recounted from its weights.

    CHECKPOINT is a Lightning checkpoint (.ckpt) or a file written by `csp export`. Exact
    zeros are counted in the saved weights themselves, per tensor, over the prunable tensors
    and over the whole model: entries, non-zeros, sparsity, dense bytes, bytes in the packed
    format `csp export` would choose, floor bytes and the ratios, and the file's size on
    disk. The prunable tensors are those the file records (the pruning callback's masks, or
    the packed file's metadata), else the default rule by name; the report says which.
    """
    from lightning_modules.pruning.audit import audit as run_audit
    from lightning_modules.pruning.audit import format_report
    from lightning_modules.pruning.saved import SavedFileError

    try:
        report = run_audit(checkpoint)
    except SavedFileError as error:
        raise FileArgumentError(str(error)) from error
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
