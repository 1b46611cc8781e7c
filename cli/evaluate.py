"""`csp evaluate` and `csp transcribe`: WER and CER of a saved model on a corpus, and text
for audio files.

Usage:

    csp evaluate runs/NAME/checkpoints/last.ckpt --corpus data/small [--split test]
                 [--beam N [--lm-weight W] [--length-bonus B] [--lexicon] [--lm-corpus C]]
                 [--out DIR] [--batch-seconds S]
    csp evaluate model.packed --corpus /data/LibriSpeech --out eval/librispeech
    csp transcribe model.packed a.wav b.flac [--beam N]     # prints path<TAB>text
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.corpus_option import corpus_option
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
@corpus_option("the corpus to score", required=True)
@click.option(
    "--split",
    default="test",
    show_default=True,
    help=f"{', '.join(SPLITS)}, or a part of the corpus (LibriSpeech: test-clean, test-other, ...)",
)
@BEAM_OPTION
@click.option(
    "--lm-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="fuse a character n-gram LM of the training transcripts into the beam search",
)
@click.option("--length-bonus", type=float, default=0.0, show_default=True)
@click.option("--lm-order", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lexicon", is_flag=True, help="spell only words of the training transcripts")
@click.option(
    "--lm-corpus",
    type=click.Path(path_type=Path),
    default=None,
    help="the corpus whose train split the LM and lexicon come from (default: --corpus)",
)
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
    lm_weight: float,
    length_bonus: float,
    lm_order: int,
    lexicon: bool,
    lm_corpus: Path | None,
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
    totals. With --lm-weight or --lexicon, the beam search fuses a character LM or a
    lexicon estimated on the train split's transcripts of --lm-corpus (only its text is read).
    """
    from pydantic import ValidationError

    from experiments.config import DecodingSection
    from experiments.evaluate import DEFAULT_BATCH_SECONDS, training_texts
    from experiments.evaluate import evaluate as run_evaluation
    from experiments.files import ConfigError

    try:
        decoding = DecodingSection(
            beam=beam,
            lm_weight=lm_weight,
            length_bonus=length_bonus,
            lm_order=lm_order,
            lexicon=lexicon,
        )
    except ValidationError as error:
        raise ConfigError(f"decoding: {error.errors()[0]['msg']}") from None
    summary = run_evaluation(
        model,
        corpus,
        split=split,
        decoding=decoding,
        out=out,
        batch_seconds=DEFAULT_BATCH_SECONDS if batch_seconds is None else batch_seconds,
        lm_texts=training_texts(lm_corpus) if lm_corpus is not None else None,
    )
    click.echo(
        f"split {split}: WER {summary['wer']:.4f} ({summary['words']} words, "
        f"{summary['utterances']} utterances), CER {summary['cer']:.4f}"
    )
    for part, wer in (summary["wer_by_part"] or {}).items():  # a split of several test sets
        click.echo(f"  {part}: WER {wer:.4f}")


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
