"""Sentence sources for the corpus: Debian fortunes and the King James Bible, filtered to
what every TTS engine reads the same way the transcript spells it."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lightning_modules.data.text import TranscriptError, normalize_transcript

FORTUNES_DIR = Path("/usr/share/games/fortunes")
MIN_WORDS, MAX_WORDS = 3, 14

_CLEAN = re.compile(r"^[A-Za-z][A-Za-z ,;'-]*[A-Za-z][.!?]?$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[;:]\s+")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "co", "inc", "ltd"}


@dataclass(frozen=True, order=True)
class Sentence:
    text: str  # normalized transcript, the key sentences are deduplicated on
    source: str


def _clean_sentences(passage: str) -> list[str]:
    """Sentences of `passage` that TTS reads as spelled: plain words, no digits, no acronyms."""
    kept = []
    for piece in _SENTENCE_END.split(" ".join(passage.split())):
        words = piece.split()
        if not MIN_WORDS <= len(words) <= MAX_WORDS or not _CLEAN.match(piece):
            continue
        bare = [w.strip(",;'-.!?") for w in words]
        if any(len(w) > 1 and w.isupper() for w in bare):  # acronyms are spelled out
            continue
        if any(w.lower() in _ABBREVIATIONS for w in bare) or "--" in piece or "''" in piece:
            continue
        kept.append(piece)
    return kept


def fortunes() -> list[str]:
    passages = []
    for path in sorted(FORTUNES_DIR.glob("*")):
        if path.is_file() and path.suffix not in {".dat", ".u8"} and not path.is_symlink():
            text = path.read_text(encoding="utf-8", errors="replace")
            passages += text.split("\n%\n")
    return passages


def bible_verses() -> list[str]:
    lines = subprocess.run(
        ["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [line.partition(" ")[2] for line in lines if " " in line]


def load_sentences() -> list[Sentence]:
    """Every usable sentence once, sorted: the same list on every machine with these packages."""
    found: dict[str, Sentence] = {}
    for source, passages in (("fortunes", fortunes()), ("bible", bible_verses())):
        for passage in passages:
            for piece in _clean_sentences(passage):
                try:
                    text = normalize_transcript(piece)
                except TranscriptError:
                    continue
                found.setdefault(text, Sentence(text, source))
    return sorted(found.values())
