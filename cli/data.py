"""`csp data`: speech corpora.

Usage:

    csp data synth --size tiny|small|large [--text assistant|open] [--seed N] --out DIR
    csp data real --out DIR [--min-words N] [--limit N]     # real speech, test split only
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(short_help="The offline TTS corpus and a real-speech test set.")
def data() -> None:
    """Speech corpora: render the default corpus offline with TTS engines (synth), and build
    a test-only set of real human speech from Debian packages (real)."""


@data.command("synth")
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "large"]),
    default="small",
    show_default=True,
    help="tiny: tests (seconds); small: ~2 h of audio (minutes); large: 10+ h.",
)
@click.option(
    "--text",
    type=click.Choice(["assistant", "open"]),
    default="assistant",
    show_default=True,
    help="assistant: a voice-assistant domain from a grammar; open: fortunes and the KJV Bible.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="default: all cores")
def data_synth(size: str, text: str, seed: int, out: Path, workers: int | None) -> None:
    """Render a deterministic multi-speaker English corpus from text, with no network.

    Four TTS engines (espeak-ng, flite, festival, piper) read the text (voice-assistant
    requests and questions, or fortunes and the KJV Bible) with varied speed and pitch, part of
    it with noise and reverberation; 16 kHz mono FLAC, a manifest.jsonl and corpus.json with a
    data card. Test voices and test sentences never occur in training. Same seed and engine
    versions give the same corpus byte for byte; a re-run skips finished files.
    """
    from lightning_modules.data.synth import render_corpus

    manifest = render_corpus(out, size=size, seed=seed, workers=workers, text=text)
    click.echo(f"corpus ready: {manifest}")


@data.command("real", short_help="Build a test-only set of real human speech (Debian packages).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--min-words",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Shortest transcript kept, in words.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="At most N utterances per source, first by id (quick checks). Default: all.",
)
def data_real(out: Path, min_words: int, limit: int | None) -> None:
    """Build an out-of-domain test set of real speech: evaluation only, never for tuning.

    The Asterisk telephony prompts (one speaker, G.722; packages asterisk-core-sounds-en-g722
    and asterisk-core-sounds-en) and five LibriVox clips (pocketsphinx-testdata), as 16 kHz
    mono FLAC and a manifest.jsonl whose split is test. Prompts whose spoken words are
    uncertain (numbers other than 1-9, symbols, acronyms) are skipped; corpus.json counts the
    skips by reason and records the package versions. The same packages give the same bytes;
    a re-run skips finished files. Score a model with its test split.
    """
    from lightning_modules.data.real import build_real_corpus

    manifest = build_real_corpus(out, min_words=min_words, limit=limit)
    click.echo(f"real-speech test corpus ready: {manifest}")
