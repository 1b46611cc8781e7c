"""Reader for the LibriSpeech folder layout: SPEAKER/CHAPTER/*.flac + SPEAKER-CHAPTER.trans.txt."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lightning_modules.data.corpora import CorpusSection, register_corpus
from lightning_modules.data.manifest import SPLITS, CorpusError, Utterance

PARTS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
"""The parts a LibriSpeech root given as `--corpus` is read as."""


@register_corpus
class LibriSpeechCorpus(CorpusSection):
    """LibriSpeech-layout folders on disk, per split (e.g. train-clean-100, dev-clean)."""

    kind: Literal["librispeech"] = "librispeech"
    train: list[Path] = Field(min_length=1)
    dev: list[Path] = Field(min_length=1)
    test: list[Path] = Field(min_length=1)

    def read(self) -> list[Utterance]:
        return [u for split in SPLITS for u in read_librispeech(getattr(self, split), split)]

    @classmethod
    def from_path(cls, path: Path) -> dict[str, Any] | None:
        """A LibriSpeech root holding train-clean-100, dev-clean and test-clean."""
        if not all((path / part).is_dir() for part in PARTS.values()):
            return None
        return {"kind": "librispeech", **{s: [str(path / p)] for s, p in PARTS.items()}}


def read_librispeech(folders: Sequence[str | Path], split: str) -> list[Utterance]:
    """Utterances of every `*.trans.txt` under `folders` (e.g. ``LibriSpeech/dev-clean``).

    Audio is expected next to its transcript file as ``<utterance id>.flac``; whether it
    exists and is readable is checked later by `validate_corpus`, with the others.
    """
    utterances = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise CorpusError(f"{folder}: LibriSpeech folder not found (split {split!r})")
        transcripts = sorted(folder.rglob("*.trans.txt"))
        if not transcripts:
            raise CorpusError(f"{folder}: no *.trans.txt files; is this a LibriSpeech folder?")
        for transcript in transcripts:
            lines = transcript.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                utterance_id, _, text = line.partition(" ")
                if not text.strip():
                    raise CorpusError(f"{transcript}:{number}: empty transcript for {utterance_id}")
                utterances.append(
                    Utterance(
                        id=utterance_id,
                        audio=transcript.parent / f"{utterance_id}.flac",
                        text=text,
                        split=split,
                        meta={"speaker": utterance_id.split("-")[0]},
                    )
                )
    return utterances
