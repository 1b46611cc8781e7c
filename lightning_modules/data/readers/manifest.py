"""The manifest corpus kind: any corpus written as a manifest.jsonl (`data/manifest.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from lightning_modules.data.corpora import CorpusSection, register_corpus
from lightning_modules.data.manifest import Utterance, read_manifest

MANIFEST = "manifest.jsonl"


@register_corpus
class ManifestCorpus(CorpusSection):
    """A manifest (.jsonl), or a folder holding manifest.jsonl."""

    kind: Literal["manifest"] = "manifest"
    path: Path

    def read(self) -> list[Utterance]:
        return read_manifest(self.path)

    @classmethod
    def from_path(cls, path: Path) -> dict[str, Any] | None:
        if path.is_file() and path.suffix == ".jsonl":
            return {"kind": "manifest", "path": str(path)}
        if (path / MANIFEST).is_file():
            return {"kind": "manifest", "path": str(path / MANIFEST)}
        return None
