"""Reader for the LibriSpeech folder layout: SPEAKER/CHAPTER/*.flac + SPEAKER-CHAPTER.trans.txt.

LibriSpeech as researchers keep it: a root holding any of its parts (train-clean-100/360,
train-other-500, dev-clean/other, test-clean/other), or a single part folder. Each part
serves the split its name starts with, and every utterance keeps its part's name (the
`part` metadata), so `csp evaluate --split test-other` scores one standard test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lightning_modules.data.corpora import CorpusSection, register_corpus
from lightning_modules.data.manifest import SPLITS, CorpusError, Utterance

PARTS = (
    "train-clean-100", "train-clean-360", "train-other-500",
    "dev-clean", "dev-other", "test-clean", "test-other",
)  # fmt: skip
"""LibriSpeech's parts; a part serves the split its name starts with."""


def split_of(part: str) -> str:
    """The split a LibriSpeech part serves: `test-other` → test."""
    return part.split("-", 1)[0]


@register_corpus
class LibriSpeechCorpus(CorpusSection):
    """LibriSpeech-layout folders on disk, per split (e.g. train-clean-100, dev-clean)."""

    kind: Literal["librispeech"] = "librispeech"
    train: list[Path] = Field(default_factory=list)
    dev: list[Path] = Field(default_factory=list)
    test: list[Path] = Field(default_factory=list)

    def read(self) -> list[Utterance]:
        return [u for split in SPLITS for u in read_librispeech(getattr(self, split), split)]

    @classmethod
    def from_path(cls, path: Path) -> dict[str, Any] | None:
        """A LibriSpeech root holding any of its parts (each part serves the split its name
        starts with; a split may be empty, e.g. a test-only root), or one part folder."""
        if path.name in PARTS and path.is_dir():
            return {"kind": "librispeech", split_of(path.name): [str(path)]}
        present = [part for part in PARTS if (path / part).is_dir()]
        if not present:
            return None
        section: dict[str, Any] = {"kind": "librispeech"}
        for part in present:
            section.setdefault(split_of(part), []).append(str(path / part))
        return section


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
                        meta={"speaker": utterance_id.split("-")[0], "part": folder.name},
                    )
                )
    return utterances
