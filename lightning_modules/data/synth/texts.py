"""The open-vocabulary text of the corpus (`text: open`): Debian fortunes and the King James
Bible, filtered to what every TTS engine reads the way the transcript spells it. The default
text, the voice-assistant domain, is in `assistant.py`.

The pool is sorted, so it is the same list on every machine with the same text packages;
randomness enters only later, when the plan shuffles it with the corpus seed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lightning_modules.data.text import TranscriptError, normalize_transcript

FORTUNES_DIR = Path("/usr/share/games/fortunes")
SOURCES = ("fortunes", "bible")
"""The sources of the open text; each sentence records its source."""
MIN_WORDS, MAX_WORDS = 3, 15

# Letters, spaces, inner , ; ' - and one closing . ! ?: nothing a TTS front end expands
# (digits, symbols, quotes, inner dots of "e.g.") and nothing the transcript could not spell.
_CLEAN = re.compile(r"^[A-Za-z][A-Za-z ,;'-]*[A-Za-z][.!?]?$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[;:]\s+")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "co", "inc", "ltd", "prof", "gen",
     "col", "capt", "lt", "sgt", "rev", "hon", "ave"}
)  # fmt: skip
_SHOUTED = re.compile(r"\b[A-Z]{2,}\b")


@dataclass(frozen=True, order=True)
class Sentence:
    text: str
    """The normalized transcript; the pool is deduplicated and sorted on it."""
    spoken: str
    """What the engines read: the cleaned sentence with its case and punctuation, for prosody."""
    source: str


def clean_sentences(passage: str) -> Iterator[str]:
    """Sentences of `passage` that TTS reads as spelled: plain words, no digits, no acronyms."""
    for piece in _SENTENCE_END.split(" ".join(passage.split())):
        words = piece.split()
        if not MIN_WORDS <= len(words) <= MAX_WORDS or not _CLEAN.match(piece):
            continue
        bare = [word.strip(",;'-.!?") for word in words]
        if any(len(word) > 1 and word.isupper() for word in bare):  # spelled out letter by letter
            continue
        if any(word.lower() in _ABBREVIATIONS for word in bare) or "--" in piece:
            continue
        yield piece


def fortunes() -> Iterator[str]:
    """Every fortune of the Debian fortunes packages, in file order (the offensive `off/` set
    is a folder, so it is never read)."""
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix not in {".dat", ".u8"}:
            yield from path.read_text(encoding="utf-8", errors="replace").split("\n%\n")


def bible_verses() -> Iterator[str]:
    """Every KJV verse, Genesis to Revelation, its small-caps words (LORD) in title case."""
    done = subprocess.run(
        ["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    )
    for line in done.stdout.splitlines():
        verse = line.partition(" ")[2]  # drop the "Ge1:1" reference
        yield _SHOUTED.sub(lambda word: word[0].title(), verse)


def load_sentences() -> list[Sentence]:
    """Every usable sentence once (first occurrence wins), sorted by transcript."""
    found: dict[str, Sentence] = {}
    for source, passages in (("fortunes", fortunes()), ("bible", bible_verses())):
        for passage in passages:
            for piece in clean_sentences(passage):
                try:
                    text = normalize_transcript(piece)
                except TranscriptError:
                    continue
                found.setdefault(text, Sentence(text, piece, source))
    return sorted(found.values())
