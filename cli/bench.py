"""`csp bench`: decoding speed of a pruned model's sparse runtime against the dense model.

Usage:

    csp bench runs/default/gmp-s0.9-seed0/checkpoints/last.ckpt --corpus data/small
              [--split test] [--batch 1,16] [--threads N] [--utterances 32] [--out FILE]
    csp bench my-model.packed --model-factory my_models:tagger --input-shape 8,100,80
              [--threads N] [--repeats 3] [--format auto|csr|bsr] [--out FILE]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli.corpus_option import corpus_option
from lightning_modules.data.manifest import SPLITS

FORMATS = ("csr", "bsr")
"""Formats a user may force on the CPU (`lightning_modules.runtime.formats`)."""


def _shape(context: click.Context, parameter: click.Parameter, value: str | None) -> list[int]:
    if value is None:
        return []
    try:
        sizes = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: write a shape like 8,100,80") from None
    if min(sizes) < 1:
        raise click.BadParameter(f"{value!r}: sizes must be positive")
    return sizes


def _batch_sizes(context: click.Context, parameter: click.Parameter, value: str) -> list[int]:
    try:
        sizes = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: write batch sizes like 1,16") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{value!r}: batch sizes must be positive")
    return sizes


@click.command("bench", short_help="Decoding latency of the sparse runtime against dense.")
@click.argument("model", type=click.Path(path_type=Path))
@corpus_option("the corpus whose first utterances (by id) are decoded (a recognizer)")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option(
    "--batch", "batches", default="1,16", show_default=True, callback=_batch_sizes,
    help="batch sizes, comma-separated",
)  # fmt: skip
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads")
@click.option("--utterances", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--format", "format_", type=click.Choice(["auto", *FORMATS]), default="auto",
    show_default=True,
    help="auto: each matrix in its fastest measured format; csr/bsr: that one everywhere",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="write the full measurement as JSON",
)  # fmt: skip
@click.option(
    "--model-factory", default=None, metavar="MODULE:FUNCTION",
    help="another model: the function that builds it (its weights come from MODEL)",
)  # fmt: skip
@click.option(
    "--input-shape", "input_shape", default=None, callback=_shape, metavar="N,N,...",
    help="with --model-factory: the shape of the random float32 input it is measured on",
)  # fmt: skip
def bench(
    model: Path,
    corpus: Path,
    split: str,
    batches: list[int],
    threads: int | None,
    utterances: int,
    repeats: int,
    format_: str,
    out: Path | None,
    model_factory: str | None,
    input_shape: list[int],
) -> None:
    """Greedy decoding of MODEL's sparse runtime and of the dense model on the same utterances:
    latency, real-time factor, speed-up, weights read per second of audio, memory.

    The runtime is built per batch size: every Linear and LSTM on the decoding path runs in
    the format (dense, CSR, BSR for block patterns) that measured fastest on its own calls.

    Another model (a file without our recognizer's hyper-parameters): --model-factory
    builds it and --input-shape gives its input; its Linears are measured the same way and
    every prunable tensor that stays dense is listed with the reason.
    """
    if model_factory is not None or input_shape:
        if model_factory is None or not input_shape:
            raise click.UsageError("--model-factory and --input-shape go together")
        if corpus is not None:
            raise click.UsageError(
                "--corpus is for a recognizer; --model-factory measures on --input-shape"
            )
        _bench_any_model(model, model_factory, input_shape, threads, repeats, format_, out)
        return
    if corpus is None:
        raise click.UsageError("Missing option '--corpus' (or --model-factory for another model)")
    from experiments.bench import bench as run_bench

    record = run_bench(model, corpus, split, batches, threads, utterances, repeats, format_)
    _write(out, record)
    click.echo(
        f"{record['utterances']} utterances, {record['audio_s']:.1f} s of audio, "
        f"{record['threads']} threads, pattern {record['pattern']}"
    )
    click.echo("batch  dense s  sparse s  speed-up  RTF dense  RTF sparse  MB read/s  same text")
    for row in record["results"]:
        dense, sparse = row["dense"], row["sparse"]
        click.echo(
            f"{row['batch']:>5}  {dense['seconds']:7.3f}  {sparse['seconds']:8.3f}  "
            f"{row['speedup']:7.2f}x  {dense['rtf']:9.3f}  {sparse['rtf']:10.3f}  "
            f"{sparse['weights_read_per_audio_s'] / 1e6:9.1f}  "
            f"{'yes' if row['transcripts_equal'] else 'NO'}"
            + ("  (the sparse runtime is the dense one)" if row["sparse_runs_dense"] else "")
        )


def _write(out: Path | None, record: dict) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _bench_any_model(
    model: Path,
    factory: str,
    input_shape: list[int],
    threads: int | None,
    repeats: int,
    format_: str,
    out: Path | None,
) -> None:
    from experiments.bench import bench_any_model

    report = bench_any_model(model, factory, input_shape, threads, repeats, format_)
    record = {"model": str(model), "factory": factory, "input_shape": input_shape}
    _write(out, record | report.as_dict())
    click.echo(report.summary())
