"""Tokenizers: normalized transcripts to token ids and back, with the RNN-T blank at id 0.

Two kinds: characters (one token per character of the alphabet) and word pieces (a
sentencepiece model trained on the training transcripts). Word pieces make the target
sequences 2-3 times shorter than characters, so the encoder can subsample more and the
prediction network sees whole words. A tokenizer travels with the model it was trained for
as a small JSON-safe `spec` (the sentencepiece model inside it, base64), so a checkpoint or a
packed file is decoded without the corpus it was trained on.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import sentencepiece

from lightning_modules.data.text import ALPHABET

TokenizerSpec = dict[str, Any]
"""`{"kind": "char"}` or `{"kind": "sentencepiece", "model": BASE64}`: enough to rebuild it."""


class Tokenizer(Protocol):
    blank: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def spec(self) -> TokenizerSpec: ...


class CharTokenizer:
    """One token per character of a normalized transcript; id 0 is the RNN-T blank."""

    blank = 0

    def __init__(self, alphabet: str = ALPHABET) -> None:
        self.alphabet = alphabet
        self._ids = {char: index + 1 for index, char in enumerate(alphabet)}
        self.vocab_size = len(alphabet) + 1

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[char] for char in text]
        except KeyError as error:
            raise ValueError(
                f"character {error.args[0]!r} of {text!r} is not in the alphabet"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.alphabet[i - 1] for i in ids if 0 < i <= len(self.alphabet))

    def spec(self) -> TokenizerSpec:
        return {"kind": "char"}


class WordPieceTokenizer:
    """A sentencepiece model's pieces as tokens, shifted by one so that id 0 is the blank.

    Every character of the alphabet is a piece, so any normalized transcript is encoded
    without unknown tokens.
    """

    blank = 0

    def __init__(self, model: bytes) -> None:
        self._model = model
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        self.vocab_size = self._processor.get_piece_size() + 1

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        model_type: Literal["unigram", "bpe"] = "unigram",
    ) -> WordPieceTokenizer:
        """Train on `texts` (the training transcripts). Deterministic: one thread, no sampling."""
        texts = [text for text in texts if text]
        if not texts:
            raise ValueError("no transcripts to train the word-piece tokenizer on")
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                required_chars=ALPHABET.replace(" ", ""),
                normalization_rule_name="identity",
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                num_threads=1,
                minloglevel=2,
            )
        except RuntimeError as error:  # e.g. a vocabulary larger than the text allows
            raise ValueError(f"word-piece tokenizer (vocab_size {vocab_size}): {error}") from None
        return cls(model.getvalue())

    def encode(self, text: str) -> list[int]:
        return [piece + 1 for piece in self._processor.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [i - 1 for i in ids if 0 < i < self.vocab_size]
        return self._processor.decode(pieces)

    def spec(self) -> TokenizerSpec:
        return {"kind": "sentencepiece", "model": base64.b64encode(self._model).decode("ascii")}


def tokenizer_from_spec(spec: TokenizerSpec | None) -> Tokenizer:
    """The tokenizer a spec describes; None is the character tokenizer (models before word
    pieces carry no spec)."""
    kind = (spec or {"kind": "char"}).get("kind")
    if kind == "char":
        return CharTokenizer()
    if kind == "sentencepiece":
        return WordPieceTokenizer(base64.b64decode(spec["model"]))
    raise ValueError(f"unknown tokenizer kind {kind!r}; known: char, sentencepiece")
