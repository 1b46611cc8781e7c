"""Corpus kinds: each is a config section that knows how to read its utterances.

A config's `corpus: {kind: ..., ...}` is validated by the section class registered for that
kind, and training reads the corpus through it, so nothing else branches on the kind. A kind
is one module in `lightning_modules/data/readers/` (or any module imported before configs
are built):

    @register_corpus
    class MyCorpus(CorpusSection):
        # its docstring's first line says what it reads (`--corpus` errors list it)

        kind: Literal["mine"] = "mine"
        path: Path

        def read(self) -> list[Utterance]:
            ...  # utterances, not yet validated: `validation.validate_corpus` checks them all

        @classmethod
        def from_path(cls, path: Path) -> dict | None:
            ...  # optional: the section for a path given as `--corpus`, or None
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lightning_modules.data.manifest import CorpusError, Utterance
from lightning_modules.errors import field_problems

CORPUS_KINDS: dict[str, type[CorpusSection]] = {}
"""Kind → section class, in registration order (the order `--corpus` paths are tried in)."""
DEFAULT_KIND = "synth"


class CorpusSection(BaseModel):
    """Base of a corpus kind's config section: strict fields, a reader, optional detection."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    description: ClassVar[str] = ""

    def read(self) -> list[Utterance]:
        """The corpus's utterances, every split, before validation."""
        raise NotImplementedError(f"corpus kind {self.kind!r} has no reader")

    @classmethod
    def from_path(cls, path: Path) -> dict[str, Any] | None:
        """The section of this kind for `path` (given as `--corpus`), or None if it is not one."""
        return None


def one_or_many(value: Any) -> Any:
    """A single entry where a corpus section expects a list becomes a one-entry list (a
    split given as one folder or one manifest)."""
    return value if isinstance(value, list | tuple) else [value]


def register_corpus(cls: type[CorpusSection]) -> type[CorpusSection]:
    """Add a corpus kind (its `kind` field's default names it); returns the class."""
    kind = cls.model_fields["kind"].default
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__}: a corpus section needs a default `kind` string")
    known = CORPUS_KINDS.get(kind)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"corpus kind {kind!r} is taken by {known.__qualname__}")
    cls.description = (cls.__doc__ or kind).strip().splitlines()[0]
    CORPUS_KINDS[kind] = cls
    return cls


def corpus_section(raw: Any) -> CorpusSection:
    """A config's corpus section, validated by its kind's class.

    Raises ValueError naming the kind and each invalid field, for pydantic to report under
    `corpus`.
    """
    if isinstance(raw, CorpusSection):
        return raw
    if not isinstance(raw, dict):
        raise ValueError(f"expected a mapping with a `kind`, got {raw!r}")
    kind = raw.get("kind", DEFAULT_KIND)
    if kind not in CORPUS_KINDS:
        raise ValueError(f"unknown corpus kind {kind!r}; known: {', '.join(CORPUS_KINDS)}")
    try:
        return CORPUS_KINDS[kind].model_validate({**raw, "kind": kind})
    except ValidationError as error:
        problems = "; ".join(field_problems(error))
        raise ValueError(f"kind {kind}: {problems}") from None


def corpus_from_path(path: Path) -> dict[str, Any]:
    """The corpus section for a path given on the command line, by the first kind that
    recognizes it."""
    for section in CORPUS_KINDS.values():
        found = section.from_path(path)
        if found is not None:
            return found
    raise CorpusError(f"--corpus {path}: not a corpus this project reads ({path_kinds()})")


def path_kinds() -> str:
    """`kaldi: Kaldi data directories ...; manifest: ...`: every kind a path can name, in the
    order `corpus_from_path` tries them (for help texts and errors)."""
    return "; ".join(
        f"{kind}: {cls.description.rstrip('.')}"
        for kind, cls in CORPUS_KINDS.items()
        if cls.from_path is not CorpusSection.from_path
    )
