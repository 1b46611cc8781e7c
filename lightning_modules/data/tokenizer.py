"""Character tokenizer: one token per character of a normalized transcript, blank at 0."""

from __future__ import annotations

from collections.abc import Iterable

from lightning_modules.data.text import ALPHABET


class CharTokenizer:
    """Maps normalized transcripts to token ids and back; id 0 is the RNN-T blank."""

    blank = 0

    def __init__(self, alphabet: str = ALPHABET) -> None:
        self.alphabet = alphabet
        self._ids = {char: index + 1 for index, char in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[char] for char in text]
        except KeyError as error:
            raise ValueError(
                f"character {error.args[0]!r} of {text!r} is not in the alphabet"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.alphabet[i - 1] for i in ids if 0 < i <= len(self.alphabet))
