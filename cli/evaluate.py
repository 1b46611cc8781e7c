"""`csp evaluate` and `csp transcribe`: WER and CER of a saved model on a corpus, and text
for audio files.

Usage:

    csp evaluate runs/NAME/checkpoints/last.ckpt --corpus data/small [--split test]
                 [--beam N] [--out DIR] [--batch-seconds S]
    csp evaluate model.packed --corpus /data/LibriSpeech --out eval/librispeech
    csp transcribe model.packed a.wav b.flac [--beam N]     # prints path<TAB>text
"""

from __future__ import annotations

from pathlib import Path

import click

from lightning_modules.data.manifest import SPLITS

BEAM_OPTION = click.option(
    "--beam",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="beam width; 0 or 1: greedy decoding",
)


@click.command("evaluate", short_help="WER and CER of a checkpoint or packed file on a corpus.")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--corpus",
    "corpus",
    type=click.Path(path_type=Path),
    required=True,
    help="any path a corpus kind recognizes: a manifest (.jsonl), a folder holding "
    "manifest.jsonl, a LibriSpeech root, Kaldi or lhotse folders",
)
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@BEAM_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for utterances.jsonl and summary.json (default: print only)",
)
@click.option(
    "--batch-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="padded audio per batch (default: the training default, 60); use the run's "
    "data.max_batch_seconds to reproduce its test_wer exactly",
)
def evaluate(
    model: Path,
    corpus: Path,
    split: str,
    beam: int,
    out: Path | None,
    batch_seconds: float | None,
) -> None:
    """Decode one split of a corpus with MODEL and print its WER and CER.

    MODEL is a checkpoint written by `csp train` or a packed file written by `csp export`.
    The split is validated before decoding (missing audio, wrong sample rate, ... each named
    with its file); other splits may be absent. WER and CER are pooled over the split (total
    errors over total reference words or characters), as training logs test_wer. With
    --out, DIR/utterances.jsonl holds every utterance sorted by id (reference, hypothesis,
    errors, words, char_errors, chars and the corpus metadata) and DIR/summary.json the
    totals.
    """
    from experiments.evaluate import DEFAULT_BATCH_SECONDS
    from experiments.evaluate import evaluate as run_evaluation

    summary = run_evaluation(
        model,
        corpus,
        split=split,
        beam=beam,
        out=out,
        batch_seconds=DEFAULT_BATCH_SECONDS if batch_seconds is None else batch_seconds,
    )
    click.echo(
        f"split {split}: WER {summary['wer']:.4f} ({summary['words']} words, "
        f"{summary['utterances']} utterances), CER {summary['cer']:.4f}"
    )


@click.command("transcribe", short_help="Print the text a checkpoint or packed file hears.")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("audio", type=click.Path(path_type=Path), nargs=-1, required=True)
@BEAM_OPTION
def transcribe(model: Path, audio: tuple[Path, ...], beam: int) -> None:
    """Transcribe AUDIO files with MODEL; print one `path<TAB>text` line per file.

    Any format soundfile reads, any sample rate and channel count: channels are averaged
    and the audio resampled to 16 kHz. Every file is checked before decoding starts.
    """
    from experiments.evaluate import transcribe_files

    for path, text in transcribe_files(model, audio, beam=beam):
        click.echo(f"{path}\t{text}")
