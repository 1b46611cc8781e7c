"""`csp evaluate` and `csp transcribe`: WER and CER of any saved model on any corpus, and text
for any audio file.

A model is a Lightning checkpoint (`csp train`) or a packed file (`csp export`); both carry
the module's hyper-parameters, so the recognizer is rebuilt from the file alone. A corpus is
any path a corpus kind recognizes (`lightning_modules.data.readers.corpus_from_path`); only
the chosen split is read, validated (before any decoding) and decoded, in the batches the
DataModule serves for evaluation, so the WER equals the `test_wer` that training logs for
the same weights and `max_batch_seconds`.

`evaluate(..., out=DIR)` writes

    DIR/utterances.jsonl   one object per utterance, sorted by id: reference, hypothesis,
                           word errors and reference words, character errors and characters,
                           and the utterance's metadata (engine, voice, augmentation, ...)
    DIR/summary.json       the model, corpus and split, the decoding, the pooled counts, WER,
                           CER and decoding time

WER and CER are pooled over the split: total errors over total reference words (or
characters), not a mean over utterances, as `RNNTSpeechRecognizer` logs them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jiwer
import soundfile
import torch
import torchaudio
from torch.utils.data import DataLoader
from tqdm import tqdm

from experiments.config import DataSection, DecodingSection
from experiments.files import ConfigError
from experiments.records import UtteranceRecord, write_utterance_records
from lightning_modules.asr.decoding import ShallowFusion
from lightning_modules.asr.features import SAMPLE_RATE
from lightning_modules.asr.language_model import CharNGramLM, Lexicon
from lightning_modules.asr.loading import load_recognizer
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.data.batching import DurationBatchSampler
from lightning_modules.data.datamodule import SpeechDataset, collate
from lightning_modules.data.manifest import SPLITS, CorpusError, Utterance, write_json_atomic
from lightning_modules.data.readers import CorpusSection, corpus_from_path, corpus_section
from lightning_modules.data.text import normalize_transcript
from lightning_modules.data.tokenizer import Tokenizer
from lightning_modules.data.validation import validate_corpus
from lightning_modules.pruning.saved import (
    SavedFileError,
    SavedWeights,
)

UTTERANCES = "utterances.jsonl"
SUMMARY = "summary.json"
DEFAULT_BATCH_SECONDS: float = DataSection.model_fields["max_batch_seconds"].default
"""The training default of `data.max_batch_seconds`: the same batches as a run's test."""


def load_saved_model(path: str | Path) -> tuple[RNNTSpeechRecognizer, SavedWeights]:
    """`load_recognizer`, its refusals as the `ConfigError` every command reports."""
    try:
        return load_recognizer(path)
    except SavedFileError as error:
        raise ConfigError(str(error)) from None


def load_model_and_kind(path: str | Path) -> tuple[RNNTSpeechRecognizer, str]:
    """The recognizer saved in `path` (in eval mode, on the CPU) and the file's kind
    (`checkpoint` or `packed`)."""
    module, saved = load_saved_model(path)
    return module, saved.kind


def load_model(path: str | Path) -> RNNTSpeechRecognizer:
    """The recognizer saved in a checkpoint or packed file, in eval mode, on the CPU."""
    return load_model_and_kind(path)[0]


def read_corpus_section(path: str | Path) -> CorpusSection:
    """The corpus section of a path (a manifest, a folder holding one, a LibriSpeech root)."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"--corpus {path}: no such file or folder")
    try:
        return corpus_section(corpus_from_path(path))
    except ValueError as error:
        if isinstance(error, CorpusError):
            raise
        raise CorpusError(f"--corpus {path}: {error}") from None


def read_split(section: CorpusSection, split: str) -> list[Utterance]:
    """The split's utterances (`split`: train, dev, test, or a part of the corpus such as
    LibriSpeech's test-other), validated (audio present, 16 kHz mono, normalizable text).

    Only the split is checked: a test-only corpus evaluates, and a broken train file does
    not stop a test evaluation.
    """
    utterances = section.read()
    if split in SPLITS:
        chosen = [u for u in utterances if u.split == split]
        return validate_corpus(chosen, required_splits=[split])
    chosen = [u for u in utterances if u.meta.get("part") == split]
    if not chosen:
        parts = sorted({u.meta["part"] for u in utterances if "part" in u.meta})
        named = f", or a part of this corpus: {', '.join(parts)}" if parts else ""
        raise ConfigError(f"split {split!r}: expected one of {', '.join(SPLITS)}{named}")
    return validate_corpus(chosen, required_splits=[chosen[0].split])


def wer_by_part(records: Sequence[UtteranceRecord]) -> dict[str, float] | None:
    """Word-weighted WER of each corpus part (`part` of the utterance records: LibriSpeech's
    test-clean, test-other) when the records span more than one, else None."""
    counts: dict[str, list[int]] = {}
    for record in records:
        if "part" in record.meta:
            errors_words = counts.setdefault(record.meta["part"], [0, 0])
            errors_words[0] += record.errors
            errors_words[1] += record.words
    if len(counts) < 2:
        return None
    return {part: errors / max(words, 1) for part, (errors, words) in sorted(counts.items())}


def _batches(
    utterances: Sequence[Utterance], tokenizer: Tokenizer, batch_seconds: float
) -> DataLoader:
    """The evaluation batches of `SpeechDataModule` (duration-sorted, nothing dropped)."""
    sampler = DurationBatchSampler([u.duration for u in utterances], batch_seconds, shuffle=False)
    return DataLoader(
        SpeechDataset(utterances, tokenizer), batch_sampler=sampler, collate_fn=collate
    )


def score(reference: str, hypothesis: str) -> dict[str, int]:
    """Word and character errors of one hypothesis, counted as jiwer (and the module) does."""
    words = jiwer.process_words(reference, hypothesis)
    chars = jiwer.process_characters(reference, hypothesis)
    return {
        "errors": words.substitutions + words.deletions + words.insertions,
        "words": words.hits + words.substitutions + words.deletions,
        "char_errors": chars.substitutions + chars.deletions + chars.insertions,
        "chars": chars.hits + chars.substitutions + chars.deletions,
    }


def utterance_records(
    utterances: Sequence[Utterance], hypotheses: dict[str, str]
) -> list[UtteranceRecord]:
    """One record per utterance, sorted by id: its metadata, reference, hypothesis and
    `score`; the lines of `utterances.jsonl`, which paired tests match by id."""
    return [
        UtteranceRecord.model_validate(
            {
                **utterance.meta,
                "id": utterance.id,
                "reference": utterance.text,
                "hypothesis": hypotheses[utterance.id],
                **score(utterance.text, hypotheses[utterance.id]),
            }
        )
        for utterance in sorted(utterances, key=lambda u: u.id)
    ]


def training_texts(corpus_path: str | Path) -> list[str]:
    """The normalized transcripts of a corpus's train split (no audio is read)."""
    section = read_corpus_section(corpus_path)
    try:
        return [normalize_transcript(u.text) for u in section.read() if u.split == "train"]
    except ValueError as error:
        raise ConfigError(f"{corpus_path}: a training transcript: {error}") from None


def text_prior(
    decoding: DecodingSection, texts: Sequence[str], tokenizer: Tokenizer
) -> ShallowFusion | None:
    """The character LM and lexicon `decoding` asks for, estimated on `texts` (the training
    transcripts); None when it asks for neither."""
    if not decoding.fused:
        return None
    alphabet = getattr(tokenizer, "alphabet", None)
    if alphabet is None:
        raise ConfigError(
            "decoding.lm_weight / decoding.lexicon: the LM spells characters; the model "
            "must use the character tokenizer (tokenizer.kind: char)"
        )
    texts = [text for text in texts if text]
    if not texts:
        raise ConfigError("decoding: no training transcripts to estimate the LM and lexicon on")
    lm = CharNGramLM(texts, alphabet, decoding.lm_order)
    words = {word for text in texts for word in text.split()}
    lexicon = Lexicon(words, alphabet) if decoding.lexicon else None
    return ShallowFusion(lm, decoding.lm_weight, decoding.length_bonus, lexicon)


def decoding_record(decoding: DecodingSection, fusion: ShallowFusion | None) -> dict[str, Any]:
    """What a summary or result says about how it decoded."""
    record: dict[str, Any] = {"search": "beam" if decoding.beam > 1 else "greedy"}
    record.update(decoding.model_dump())
    if fusion is not None:
        record["lm"] = fusion.lm.spec()
        if fusion.lexicon is not None:
            record["lexicon_words"] = len(fusion.lexicon.words)
    return record


def decode(
    model: RNNTSpeechRecognizer,
    utterances: Sequence[Utterance],
    beam: int = 0,
    batch_seconds: float = DEFAULT_BATCH_SECONDS,
    progress: bool = True,
    description: str = "decoding",
    fusion: ShallowFusion | None = None,
) -> dict[str, str]:
    """Utterance id → hypothesis, greedy (or beam search with `beam` > 1, fused with
    `fusion`'s LM and lexicon)."""
    hypotheses: dict[str, str] = {}
    model.eval()
    with (
        torch.no_grad(),
        tqdm(
            total=len(utterances),
            desc=description,
            unit="utt",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        for batch in _batches(utterances, model.tokenizer, batch_seconds):
            texts = model.transcribe(batch, beam, fusion)
            hypotheses.update(zip(batch["ids"], texts, strict=True))
            bar.update(len(texts))
    return hypotheses


def _check_out(out: Path | None) -> None:
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")


def evaluate(
    model_path: str | Path,
    corpus_path: str | Path,
    split: str = "test",
    decoding: DecodingSection | None = None,
    out: str | Path | None = None,
    batch_seconds: float = DEFAULT_BATCH_SECONDS,
    progress: bool = True,
    lm_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """WER and CER of the model in `model_path` on one split of the corpus at `corpus_path`.

    `decoding` (default: greedy) may fuse a character LM and a lexicon, estimated on
    `lm_texts` (default: the training transcripts of `corpus_path`). The model, the corpus,
    the split and the decoding are checked before any decoding, and nothing is written when
    one is refused. Returns the summary (also `out/summary.json` with `out`, next to
    `out/utterances.jsonl`).
    """
    decoding = decoding or DecodingSection()
    out = None if out is None else Path(out)
    _check_out(out)
    if batch_seconds <= 0:
        raise ConfigError(f"--batch-seconds {batch_seconds}: expected more than 0")
    model, kind = load_model_and_kind(model_path)
    section = read_corpus_section(corpus_path)
    utterances = read_split(section, split)
    fusion = None
    if decoding.fused:
        texts = training_texts(corpus_path) if lm_texts is None else lm_texts
        fusion = text_prior(decoding, texts, model.tokenizer)

    started = time.perf_counter()
    hypotheses = decode(
        model, utterances, decoding.beam, batch_seconds, progress, f"decoding {split}", fusion
    )
    decode_wall_s = time.perf_counter() - started

    records = utterance_records(utterances, hypotheses)
    totals = {
        key: sum(getattr(r, key) for r in records)
        for key in ("errors", "words", "char_errors", "chars")
    }
    summary = {
        "model": str(model_path),
        "model_kind": kind,
        "corpus": section.model_dump(mode="json"),
        "split": split,
        "beam": decoding.beam,
        "decoding": decoding_record(decoding, fusion),
        "batch_seconds": batch_seconds,
        "utterances": len(records),
        **totals,
        "wer": totals["errors"] / max(totals["words"], 1),
        "cer": totals["char_errors"] / max(totals["chars"], 1),
        "wer_by_part": wer_by_part(records),
        "decode_wall_s": decode_wall_s,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_utterance_records(out / UTTERANCES, records)
        write_json_atomic(out / SUMMARY, summary)  # last: its presence means a complete run
    return summary


def _check_audio(paths: Iterable[Path]) -> None:
    """Every file exists and its header reads as audio; all problems at once."""
    problems = []
    for path in paths:
        if not path.is_file():
            problems.append(f"{path}: audio file {'not a file' if path.exists() else 'not found'}")
            continue
        try:
            info = soundfile.info(str(path))
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            problems.append(f"{path}: unreadable audio ({error})")
            continue
        if info.frames == 0:
            problems.append(f"{path}: audio holds no samples")
    if problems:
        raise CorpusError(
            "; ".join(problems)
            if len(problems) == 1
            else "\n  ".join([f"{len(problems)} audio file(s) cannot be transcribed:", *problems])
        )


def read_audio(path: str | Path) -> torch.Tensor:
    """A file's samples as 16 kHz mono float32: channels averaged, other rates resampled."""
    path = Path(path)
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise CorpusError(f"{path}: unreadable audio ({error})") from None
    mono = torch.from_numpy(audio).mean(dim=1)
    if rate != SAMPLE_RATE:
        mono = torchaudio.functional.resample(mono, rate, SAMPLE_RATE)
    return mono


def transcribe_files(
    model_path: str | Path, paths: Sequence[str | Path], beam: int = 0
) -> list[tuple[Path, str]]:
    """The text of each audio file, decoded alone (greedy, or beam search with `beam` > 1).

    Every file is checked before the model decodes anything; a missing or unreadable one is
    a `CorpusError` naming it.
    """
    paths = [Path(path) for path in paths]
    if beam < 0:
        raise ConfigError(f"--beam {beam}: expected 0 or more")
    _check_audio(paths)
    model = load_model(model_path)
    results = []
    with torch.no_grad():
        for path in paths:
            item = {
                "id": str(path),
                "audio": read_audio(path),
                "text": "",
                "tokens": torch.zeros(0, dtype=torch.long),
            }
            (text,) = model.transcribe(collate([item]), beam)
            results.append((path, text))
    return results
