"""The default corpus, rendered offline from text by four TTS engines (`csp data synth`)."""

from lightning_modules.data.synth.plan import CORPUS_SIZES
from lightning_modules.data.synth.render import render_corpus

__all__ = ["CORPUS_SIZES", "render_corpus"]
