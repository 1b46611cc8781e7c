"""The catalogue of TTS voices, and which of them are held out for the test split.

A voice is (engine, name). Test voices never occur in train or dev, so test WER measures
generalization to new speakers. The neural engines have one voice each (piper's male joe,
hibari's female heart), so they serve train and dev only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Voice:
    engine: str
    name: str


ESPEAK_ACCENTS = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
)
ESPEAK_TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f5",
    "klatt", "Denis", "Gene", "Lee", "Michael", "adam", "david", "edward", "iven", "john", "max",
)  # fmt: skip
ESPEAK_TEST_VARIANTS = ("m6", "f4", "Andy", "belinda", "linda", "norbert", "paul")
"""Human-sounding variants only (no whisper, croak or robots); each is crossed with every
accent, and a variant held out for test is held out in all accents."""


def _espeak(variants: tuple[str, ...]) -> tuple[Voice, ...]:
    return tuple(Voice("espeak-ng", f"{accent}+{v}") for accent in ESPEAK_ACCENTS for v in variants)


TRAIN_VOICES: dict[str, tuple[Voice, ...]] = {
    "espeak-ng": _espeak(ESPEAK_TRAIN_VARIANTS),
    "flite": (Voice("flite", "kal16"), Voice("flite", "awb"), Voice("flite", "slt")),
    "festival": (Voice("festival", "kal_diphone"), Voice("festival", "cmu_us_slt_arctic_hts")),
    "piper": (Voice("piper", "joe"),),
    "hibari": (Voice("hibari", "heart"),),
}
"""Voices of the train and dev splits, by engine."""

TEST_VOICES: dict[str, tuple[Voice, ...]] = {
    "espeak-ng": _espeak(ESPEAK_TEST_VARIANTS),
    "flite": (Voice("flite", "rms"),),
    "festival": (Voice("festival", "ked_diphone"),),
}
"""Voices of the test split only, by engine."""
