"""The synth corpus kind: the default corpus, rendered offline by TTS (`data/synth/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from lightning_modules.data.corpora import CorpusSection, register_corpus
from lightning_modules.data.manifest import Utterance, read_manifest
from lightning_modules.data.synth import render_corpus


@register_corpus
class SynthCorpus(CorpusSection):
    """The default corpus, rendered offline by TTS into `dir` if it is not there yet."""

    kind: Literal["synth"] = "synth"
    size: Literal["tiny", "small", "large"] = "small"
    seed: int = Field(0, ge=0)
    text: Literal["assistant", "open"] = Field(
        "assistant",
        description="assistant: the voice-assistant domain; open: fortunes and the KJV Bible",
    )
    dir: Path = Path("data/small")

    def read(self) -> list[Utterance]:
        manifest = render_corpus(self.dir, size=self.size, seed=self.seed, text=self.text)
        return read_manifest(manifest)
