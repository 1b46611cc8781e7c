"""The deterministic plan of a corpus: which sentence, voice, speed, pitch and augmentation
each utterance gets. Drawn in one sequence from the seed, before any rendering, so the
corpus does not depend on how many processes render it or in which order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_modules.data.synth.texts import Sentence
from lightning_modules.data.synth.voices import TEST_VOICES, TRAIN_VOICES, Voice


@dataclass(frozen=True)
class CorpusSize:
    train: int
    dev: int
    test: int


CORPUS_SIZES: dict[str, CorpusSize] = {
    "tiny": CorpusSize(train=160, dev=24, test=24),
    "small": CorpusSize(train=2200, dev=260, test=260),
    "large": CorpusSize(train=12400, dev=800, test=800),
}
"""Utterances per split; about 2.6 s each, so small is about 2 hours and large 10 hours."""

SPEED_RANGE = (0.85, 1.2)
PITCH_RANGE_CENTS = (-300.0, 300.0)
NOISE_SHARE, SNR_RANGE_DB = 0.3, (10.0, 30.0)
REVERB_SHARE, RT60_RANGE_S = 0.2, (0.2, 0.7)


@dataclass(frozen=True)
class PlannedUtterance:
    id: str
    split: str
    voice: Voice
    text: str
    source: str
    speed: float
    pitch_cents: float
    snr_db: float | None
    rt60_s: float | None
    noise_seed: int

    @property
    def audio(self) -> str:
        """Path of the FLAC, relative to the corpus folder."""
        return f"audio/{self.split}/{self.id}.flac"

    @property
    def augmentation(self) -> str:
        parts = [name for name, on in (("noise", self.snr_db), ("reverb", self.rt60_s)) if on]
        return "+".join(parts) or "none"


def _draw_sentences(
    rng: np.random.Generator, sentences: list[Sentence], counts: list[int]
) -> list[list[Sentence]]:
    """Disjoint sentence lists of the given sizes, half fortunes and half Bible on average."""
    by_source = {
        source: [s for s in sentences if s.source == source] for source in ("fortunes", "bible")
    }
    for pool in by_source.values():
        rng.shuffle(pool)
    needed = sum(counts)
    if needed > len(sentences):
        raise ValueError(f"the corpus needs {needed} sentences, the sources give {len(sentences)}")
    drawn = []
    for _ in range(needed):
        source = "fortunes" if rng.random() < 0.5 else "bible"
        if not by_source[source]:
            source = "bible" if source == "fortunes" else "fortunes"
        drawn.append(by_source[source].pop())
    starts = np.cumsum([0, *counts])
    return [drawn[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]


def plan_corpus(size: str, seed: int, sentences: list[Sentence]) -> list[PlannedUtterance]:
    """Every utterance of the corpus `size` for `seed`, sorted by id.

    Test sentences are drawn first and never reused, so no test sentence occurs in train or
    dev; test utterances use `TEST_VOICES` only. The engine is chosen before the voice, so
    espeak-ng's many voices do not swamp the other engines.
    """
    if size not in CORPUS_SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose one of {sorted(CORPUS_SIZES)}")
    counts = CORPUS_SIZES[size]
    rng = np.random.default_rng(seed)
    splits = {"test": counts.test, "dev": counts.dev, "train": counts.train}
    texts = dict(zip(splits, _draw_sentences(rng, sentences, list(splits.values())), strict=True))
    plan = []
    for split in splits:
        voices = TEST_VOICES if split == "test" else TRAIN_VOICES
        engines = sorted(voices)
        for index, sentence in enumerate(texts[split]):
            engine_voices = voices[engines[rng.integers(len(engines))]]
            voice = engine_voices[rng.integers(len(engine_voices))]
            noisy, reverberant = rng.random() < NOISE_SHARE, rng.random() < REVERB_SHARE
            plan.append(
                PlannedUtterance(
                    id=f"{split}-{index:06d}",
                    split=split,
                    voice=voice,
                    text=sentence.text,
                    source=sentence.source,
                    speed=round(float(rng.uniform(*SPEED_RANGE)), 3),
                    pitch_cents=round(float(rng.uniform(*PITCH_RANGE_CENTS)), 1),
                    snr_db=round(float(rng.uniform(*SNR_RANGE_DB)), 1) if noisy else None,
                    rt60_s=round(float(rng.uniform(*RT60_RANGE_S)), 3) if reverberant else None,
                    noise_seed=int(rng.integers(2**62)),
                )
            )
    return sorted(plan, key=lambda u: u.id)
