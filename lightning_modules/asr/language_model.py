"""A character n-gram language model of the training transcripts, for shallow fusion.

Interpolated Witten-Bell smoothing (Witten & Bell 1991; as in Chen & Goodman 1998, eq. 8):
P(c | h) = (C(h c) + T(h) · P(c | h')) / (C(h) + T(h)), where h' drops h's oldest character,
C counts n-grams and T(h) is the number of distinct characters seen after h; the recursion
ends in the uniform distribution. Characters rather than words, because the RNN-T emits
characters: the fused score is defined at every step of the search, and a character model
of high order still knows the words (it spells them) without an out-of-vocabulary token.
No library available here estimates and queries such a model in-process (KenLM's Python
module only queries, its estimator is a separate binary), and it is small enough to read.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable

import torch

END = "\n"
"""The end-of-sentence symbol; sentences start with an empty history."""


class CharNGramLM:
    """Character n-gram LM of `order` (history of `order` − 1 characters) over `alphabet`.

    `log_probs(history)` is the vector of log P(c | history) for every character of the
    alphabet and, last, the end of the sentence; vectors are cached per history, since a
    beam search asks for the same few histories again and again.
    """

    def __init__(self, texts: Iterable[str], alphabet: str, order: int = 8) -> None:
        if order < 1:
            raise ValueError(f"LM order must be at least 1, got {order}")
        self.order = order
        self.symbols = alphabet + END
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)
        digest = hashlib.sha256()
        sentences = 0
        for text in texts:
            unknown = set(text) - set(alphabet)
            if unknown:
                raise ValueError(f"LM text {text!r} has characters outside the alphabet: {unknown}")
            digest.update(text.encode() + b"\0")
            sentences += 1
            padded = text + END
            for position, symbol in enumerate(padded):
                for length in range(min(order - 1, position) + 1):
                    self._counts[padded[position - length : position]][symbol] += 1
        if not sentences:
            raise ValueError("no sentences to estimate the character LM on")
        self.sentences = sentences
        self.text_sha256 = digest.hexdigest()
        self._probs_cache: dict[str, torch.Tensor] = {}
        self._log_probs_cache: dict[str, torch.Tensor] = {}

    def _probs(self, history: str) -> torch.Tensor:
        if history in self._probs_cache:
            return self._probs_cache[history]
        lower = (
            torch.full((len(self.symbols),), 1.0 / len(self.symbols), dtype=torch.float64)
            if history == ""
            else self._probs(history[1:])
        )
        counts = self._counts.get(history)
        if counts is None:
            probs = lower
        else:
            seen = torch.zeros(len(self.symbols), dtype=torch.float64)
            for symbol, count in counts.items():
                seen[self._index[symbol]] = count
            total, types = float(seen.sum()), len(counts)
            probs = (seen + types * lower) / (total + types)
        self._probs_cache[history] = probs
        return probs

    def history(self, text: str) -> str:
        """The part of `text` the model conditions on: its last `order` − 1 characters."""
        return text[len(text) - self.order + 1 :] if self.order > 1 else ""

    def log_probs(self, text: str) -> torch.Tensor:
        """log P(symbol | text) for every character of the alphabet, then the end."""
        history = self.history(text)
        if history not in self._log_probs_cache:
            self._log_probs_cache[history] = self._probs(history).log().float()
        return self._log_probs_cache[history]

    def sentence_log_prob(self, text: str) -> float:
        """log P(text, end of sentence): the sum of the model's per-character terms."""
        total = 0.0
        for position, symbol in enumerate(text + END):
            total += float(self.log_probs(text[:position])[self._index[symbol]])
        return total

    def perplexity(self, texts: Iterable[str]) -> float:
        """Per-character perplexity on `texts` (the end of each sentence counted)."""
        log_prob, symbols = 0.0, 0
        for text in texts:
            log_prob += self.sentence_log_prob(text)
            symbols += len(text) + 1
        return math.exp(-log_prob / max(symbols, 1))

    def spec(self) -> dict[str, object]:
        """What identifies this model in a record: order, sentences and their hash."""
        return {"order": self.order, "sentences": self.sentences, "text_sha256": self.text_sha256}


class Lexicon:
    """The words a hypothesis may spell: after any prefix of a hypothesis, `allowed` says
    which characters (and the end, last) keep every word a word of the list or a prefix of
    one. Closed-vocabulary decoding, as with a pronunciation lexicon."""

    def __init__(self, words: Iterable[str], alphabet: str) -> None:
        self.words = frozenset(words)
        if not self.words:
            raise ValueError("the lexicon has no words")
        self.symbols = alphabet + END
        self._prefixes = {word[:end] for word in self.words for end in range(len(word) + 1)}
        self._cache: dict[str, torch.Tensor] = {}

    def allowed(self, text: str) -> torch.Tensor:
        """Boolean vector over the alphabet and the end: which symbols may follow `text`."""
        word = text.rsplit(" ", 1)[-1]
        if word not in self._cache:
            complete = word in self.words
            self._cache[word] = torch.tensor(
                [
                    complete if symbol in (" ", END) else word + symbol in self._prefixes
                    for symbol in self.symbols
                ]
            )
        return self._cache[word]
