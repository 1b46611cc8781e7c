"""`csp data`: speech corpora.

Usage:

    csp data synth --size tiny|small|large [--seed N] --out DIR [--workers K]
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(short_help="Render the offline TTS speech corpus.")
def data() -> None:
    """Speech corpora: render the default corpus offline with TTS engines."""


@data.command("synth")
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "large"]),
    default="small",
    show_default=True,
    help="tiny: tests (seconds); small: ~2 h of audio (minutes); large: 10+ h.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="default: all cores")
def data_synth(size: str, seed: int, out: Path, workers: int | None) -> None:
    """Render a deterministic multi-speaker English corpus from text, with no network.

    Four TTS engines (espeak-ng, flite, festival, piper) read fortunes and the KJV Bible with
    varied speed and pitch, part of it with noise and reverberation; 16 kHz mono FLAC and a
    manifest.jsonl. Test voices and test sentences never occur in training. Same seed and
    engine versions give the same corpus byte for byte; a re-run skips finished files.
    """
    from lightning_modules.data.synth import render_corpus

    manifest = render_corpus(out, size=size, seed=seed, workers=workers)
    click.echo(f"corpus ready: {manifest}")
