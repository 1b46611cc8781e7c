"""Transcript normalization shared by the corpus renderer, the readers and WER scoring.

A normalized transcript is lower-case ASCII letters, apostrophes and single spaces, so the
character tokenizer covers every transcript and WER never counts case or punctuation.
"""

from __future__ import annotations

import re
import unicodedata

import jiwer

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
"""Every character a normalized transcript may hold."""

_to_plain_words = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[-_/]": " ", r"[‘’`]": "'"}),
        # Drop punctuation, keeping apostrophes; then drop the ones not inside a word.
        jiwer.SubstituteRegexes({r"[^\w\s']": "", r"(?<![a-z])'|'(?![a-z])": ""}),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
    ]
)
_ALLOWED = re.compile(r"^[a-z' ]*$")


class TranscriptError(ValueError):
    """A transcript that is empty or holds characters the model cannot spell."""


def normalize_transcript(text: str) -> str:
    """Return `text` lower-cased, accents folded, punctuation dropped, spaces collapsed.

    Apostrophes inside words are kept (``don't``). Raises `TranscriptError` when nothing is
    left or when characters remain that have no spelling in `ALPHABET` (digits, symbols).
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = _to_plain_words(folded)
    if not words:
        raise TranscriptError(f"transcript {text!r} is empty after normalization")
    if not _ALLOWED.match(words):
        bad = sorted(set(words) - set(ALPHABET))
        raise TranscriptError(
            f"transcript {text!r} holds characters with no spelling: {''.join(bad)!r}"
        )
    return words
