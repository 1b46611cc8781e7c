"""The deterministic plan of a corpus: the sentence, voice, speed, pitch and augmentation of
every utterance, fixed before anything is rendered.

Each utterance draws its choices from its own generator, seeded by (corpus seed, split,
index), so the corpus never depends on how many processes render it or in which order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lightning_modules.data.manifest import SPLITS
from lightning_modules.data.synth.assistant import assistant_sentences
from lightning_modules.data.synth.texts import Sentence, load_sentences
from lightning_modules.data.synth.voices import TEST_VOICES, TRAIN_VOICES, Voice


@dataclass(frozen=True)
class CorpusSize:
    """Utterances per split."""

    train: int
    dev: int
    test: int


CORPUS_SIZES: dict[str, CorpusSize] = {
    "tiny": CorpusSize(train=144, dev=20, test=24),
    "small": CorpusSize(train=6000, dev=300, test=300),
    "large": CorpusSize(train=10400, dev=1300, test=1300),
}
"""Utterances per split. At about 2.6 s per utterance (assistant text), small is about 4.8
hours of audio (about 3.5 minutes to render on two cores) and large about 9.4 hours."""

ENGINE_SHARES = {
    "espeak-ng": 0.25,
    "flite": 0.25,
    "festival": 0.25,
    "piper": 0.125,
    "hibari": 0.125,
}
"""How often each engine speaks, drawn before the voice so espeak-ng's many voices do not
swamp the others; the two neural voices share one part. Test has no neural voice, so its
shares are renormalized over the rest."""
SOURCE_SHARES = {"assistant": 1.0, "fortunes": 0.5, "bible": 0.5}
"""How often each source of the text speaks; the Bible's archaic style should not dominate."""
POOL_MARGIN = 1.5
"""The assistant grammar generates this many times the sentences a size needs, so that
corpora of different seeds draw different sentences."""


def _assistant_pool(needed: int) -> list[Sentence]:
    return assistant_sentences(int(needed * POOL_MARGIN))


TEXTS: dict[str, Callable[[int], list[Sentence]]] = {
    "assistant": _assistant_pool,
    "open": lambda needed: load_sentences(),
}
"""Text name → the sentence pool for a corpus that needs `needed` sentences."""
SPEED_RANGE = (0.85, 1.2)
PITCH_RANGE_CENTS = (-300.0, 300.0)
NOISE_SHARE, SNR_RANGE_DB = 0.3, (5.0, 30.0)
REVERB_SHARE, RT60_RANGE_S = 0.2, (0.2, 0.8)
_POOL_STREAM = 2**32  # seeds the sentence shuffle apart from every utterance's own stream


def settings() -> dict[str, object]:
    """The planned distributions, recorded in the corpus sidecar."""
    return {
        "sizes": {name: vars(size) for name, size in CORPUS_SIZES.items()},
        "engine_shares": ENGINE_SHARES,
        "source_shares": SOURCE_SHARES,
        "speed_range": SPEED_RANGE,
        "pitch_range_cents": PITCH_RANGE_CENTS,
        "noise_share": NOISE_SHARE,
        "snr_range_db": SNR_RANGE_DB,
        "reverb_share": REVERB_SHARE,
        "rt60_range_s": RT60_RANGE_S,
        "train_dev_voices": {e: [v.name for v in vs] for e, vs in TRAIN_VOICES.items()},
        "test_voices": {e: [v.name for v in vs] for e, vs in TEST_VOICES.items()},
    }


@dataclass(frozen=True)
class PlannedUtterance:
    id: str
    split: str
    voice: Voice
    sentence: Sentence
    speed: float
    pitch_cents: float
    snr_db: float | None
    rt60_s: float | None
    noise_seed: int
    """Seeds the room response and the noise, drawn in the worker that renders it."""

    @property
    def audio(self) -> str:
        """Path of the FLAC, relative to the corpus folder."""
        return f"audio/{self.split}/{self.id}.flac"

    @property
    def augmentation(self) -> str:
        used = [name for name, value in (("noise", self.snr_db), ("reverb", self.rt60_s)) if value]
        return "+".join(used) or "none"


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int) -> float:
    return round(float(rng.uniform(*bounds)), digits)


def plan_corpus(size: str, seed: int, sentences: list[Sentence]) -> list[PlannedUtterance]:
    """Every utterance of corpus `size` for `seed`, sorted by id.

    Every sentence is used at most once, so test, dev and train sentences are disjoint.
    Test utterances use `TEST_VOICES` only, train and dev `TRAIN_VOICES` only.
    """
    if size not in CORPUS_SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose one of {sorted(CORPUS_SIZES)}")
    counts = vars(CORPUS_SIZES[size])
    pool_rng = np.random.default_rng([seed, _POOL_STREAM])
    sources = sorted({sentence.source for sentence in sentences})
    pools = {source: [s for s in sentences if s.source == source] for source in sources}
    for pool in pools.values():
        pool_rng.shuffle(pool)
    shares_of_sources = np.array([SOURCE_SHARES[source] for source in sources])
    cumulative = np.cumsum(shares_of_sources) / shares_of_sources.sum()
    if sum(counts.values()) > len(sentences):
        raise ValueError(
            f"size {size!r} needs {sum(counts.values())} sentences, found only {len(sentences)}"
        )

    plan = []
    for split_index, split in enumerate(SPLITS):
        voices = TEST_VOICES if split == "test" else TRAIN_VOICES
        engines = sorted(voices)
        shares = np.array([ENGINE_SHARES[engine] for engine in engines])
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, split_index, index])
            engine_voices = voices[engines[rng.choice(len(engines), p=shares / shares.sum())]]
            voice = engine_voices[rng.integers(len(engine_voices))]
            draw = rng.random()  # drawn for every text, so the other choices do not depend on it
            source = sources[int(np.searchsorted(cumulative, draw, side="right"))]
            if not pools[source]:
                source = next(other for other in sources if pools[other])
            noisy, reverberant = rng.random() < NOISE_SHARE, rng.random() < REVERB_SHARE
            plan.append(
                PlannedUtterance(
                    id=f"{split}-{index:06d}",
                    split=split,
                    voice=voice,
                    sentence=pools[source].pop(),
                    speed=_uniform(rng, SPEED_RANGE, 3),
                    pitch_cents=_uniform(rng, PITCH_RANGE_CENTS, 1),
                    snr_db=_uniform(rng, SNR_RANGE_DB, 1) if noisy else None,
                    rt60_s=_uniform(rng, RT60_RANGE_S, 3) if reverberant else None,
                    noise_seed=int(rng.integers(2**63)),
                )
            )
    return sorted(plan, key=lambda planned: planned.id)
