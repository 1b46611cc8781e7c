"""The lhotse corpus kind: lhotse manifests (``.jsonl`` or ``.jsonl.gz``) per split, either a
cuts manifest or a recordings manifest with its supervisions manifest.

Each supervision is one utterance: its id, its text, the split of the entry it came from, its
speaker (metadata), and its audio: the part of its recording it covers (``start`` and
``duration``; within a cut, from the cut's start), read from the recording's file. Audio
paths in the manifests are read as lhotse reads them: relative to the working directory, or
absolute.

Lhotse parses every line (``Recording.from_dict``, ``SupervisionSegment.from_dict``,
``CutSet.from_dicts``); this module reads the lines itself only to name the line of each
problem. Refused, each naming the manifest, the line and the id, since their audio is not
one plain file this project reads as it is: recordings whose audio is not a single file
(commands, URLs, in-memory audio, one file per channel), recordings with transforms (speed
or volume perturbation, resampling), cuts other than `MonoCut` (mixed, padding, multi-channel
cuts), cuts without a recording, and supervisions that stick out of their cut. Supervisions
without text are refused too.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from lightning_modules.data.corpora import CorpusSection, one_or_many, register_corpus
from lightning_modules.data.manifest import SPLITS, CorpusError, Utterance, problems_error

if TYPE_CHECKING:
    from lhotse import Recording, SupervisionSegment
    from lhotse.cut import Cut

SUFFIXES = (".jsonl", ".jsonl.gz")
PAIR = ("recordings", "supervisions")
CUT_TOLERANCE = 1e-3
"""Seconds a supervision may stick out of its cut (rounding); more is refused."""


def _jsonl(path: Path) -> Path:
    if not path.name.endswith(SUFFIXES):
        raise ValueError(f"{path}: expected a lhotse manifest ending in .jsonl or .jsonl.gz")
    return path


ManifestPath = Annotated[Path, AfterValidator(_jsonl)]


class LhotseManifests(BaseModel):
    """One part of a split: a cuts manifest, or a recordings manifest and its supervisions."""

    model_config = ConfigDict(extra="forbid")
    part: str | None = Field(
        None, description="the part's name (e.g. test-other), kept as each utterance's `part`"
    )
    cuts: ManifestPath | None = None
    recordings: ManifestPath | None = None
    supervisions: ManifestPath | None = None

    @model_validator(mode="after")
    def _one_form(self) -> LhotseManifests:
        pair = (self.recordings, self.supervisions)
        if self.cuts is not None and any(path is not None for path in pair):
            raise ValueError("give either `cuts`, or `recordings` and `supervisions`, not both")
        if self.cuts is None and any(path is None for path in pair):
            raise ValueError("give `cuts`, or both `recordings` and `supervisions`")
        return self


LhotseSplit = Annotated[list[LhotseManifests], BeforeValidator(one_or_many), Field(min_length=1)]


@register_corpus
class LhotseCorpus(CorpusSection):
    """Lhotse manifests per split: cuts, or recordings + supervisions (.jsonl, .jsonl.gz)."""

    kind: Literal["lhotse"] = "lhotse"
    train: LhotseSplit = Field(default_factory=list)
    dev: LhotseSplit = Field(default_factory=list)
    test: LhotseSplit = Field(default_factory=list)

    def read(self) -> list[Utterance]:
        return [
            utterance
            for split in SPLITS
            for manifests in getattr(self, split)
            for utterance in read_lhotse(manifests, split)
        ]

    @classmethod
    def from_path(cls, path: Path) -> dict[str, Any] | None:
        """A folder holding, for each split (train, dev, test), ``{split}_cuts.jsonl.gz``, or
        ``{split}_recordings.jsonl.gz`` and ``{split}_supervisions.jsonl.gz`` (each also
        as plain ``.jsonl``); cuts are taken where a split has both. Or the output of
        `lhotse prepare CORPUS` (`prepared_parts`)."""
        if not path.is_dir():
            return None
        prepared = prepared_parts(path)
        if prepared:
            return {"kind": "lhotse", **prepared}
        section: dict[str, Any] = {"kind": "lhotse"}
        for split in SPLITS:
            cuts = _named(path, f"{split}_cuts")
            pair = {what: _named(path, f"{split}_{what}") for what in PAIR}
            if cuts is not None:
                section[split] = {"cuts": str(cuts)}
            elif all(pair.values()):
                section[split] = {what: str(found) for what, found in pair.items()}
            else:
                return None
        return section


_PREPARED = re.compile(
    r"^(?P<prefix>[^_]+)_(?P<what>recordings|supervisions)_(?P<part>.+?)\.jsonl(\.gz)?$"
)
_ROLES = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "test": "test"}


def role_of(part: str) -> str | None:
    """The split a recipe's part serves: the first of its `-`/`_`-separated words that names
    one (test-other → test, train-clean-100 → train, valid → dev), else None."""
    return next((_ROLES[w] for w in re.split(r"[-_]", part) if w in _ROLES), None)


def prepared_parts(folder: Path) -> dict[str, list[dict[str, str]]]:
    """The manifests `lhotse prepare CORPUS DIR` writes (``PREFIX_recordings_PART.jsonl.gz``
    and ``PREFIX_supervisions_PART.jsonl.gz``: LibriSpeech, TED-LIUM, ...) by split, each part
    serving the split its name names; parts that name none are not read."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(folder.iterdir()):
        matched = _PREPARED.match(path.name)
        if matched and role_of(matched["part"]) is not None:
            found.setdefault(matched["part"], {})[matched["what"]] = str(path)
    splits: dict[str, list[dict[str, str]]] = {}
    for part, files in found.items():
        if set(files) == set(PAIR):
            splits.setdefault(role_of(part), []).append({"part": part, **files})
    return splits


def _named(folder: Path, stem: str) -> Path | None:
    """`folder/stem.jsonl.gz` or `folder/stem.jsonl`, whichever exists (not both)."""
    found = [path for path in (folder / f"{stem}{suffix}" for suffix in SUFFIXES) if path.is_file()]
    if len(found) > 1:
        raise CorpusError(f"{folder}: both {found[0].name} and {found[1].name}; keep one")
    return found[0] if found else None


def read_lhotse(manifests: LhotseManifests, split: str) -> list[Utterance]:
    """The utterances of one entry of a split: one per supervision.

    Raises one `CorpusError` listing every problem found in the manifests, each with its
    manifest, line and id. Whether the audio exists and is readable, and whether each
    supervision lies within its file, is checked later by `validate_corpus`.
    """
    from lhotse import CutSet, Recording, SupervisionSegment  # lhotse is slow to import

    problems: list[str] = []
    audio = _AudioFiles(problems)
    utterances = []
    if manifests.cuts is not None:
        where_all = str(manifests.cuts)

        def cut(record: dict[str, Any]) -> Cut:
            return next(iter(CutSet.from_dicts([record])))

        for where, found in _parsed(manifests.cuts, "cut", cut, split, problems):
            utterances += _cut_utterances(where, found, split, audio, problems)
    else:
        where_all = f"{manifests.recordings} and {manifests.supervisions}"
        recordings = _parsed(
            manifests.recordings, "recording", Recording.from_dict, split, problems
        )
        by_id = {recording.id: (where, recording) for where, recording in recordings}
        supervisions = _parsed(
            manifests.supervisions, "supervision", SupervisionSegment.from_dict, split, problems
        )
        for where, supervision in supervisions:
            if supervision.recording_id not in by_id:
                problems.append(
                    f"{where}: supervision {supervision.id!r}: recording "
                    f"{supervision.recording_id!r} is not in {manifests.recordings}"
                )
                continue
            path = audio.of(*by_id[supervision.recording_id])
            found = _utterance(where, supervision, supervision.start, path, split, problems)
            if found is not None:
                utterances.append(found)
    if problems:
        raise problems_error(problems, where_all)
    if manifests.part is not None:
        for utterance in utterances:
            utterance.meta["part"] = manifests.part
    return utterances


class _AudioFiles:
    """The audio file of each recording, each refused recording reported once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.files: dict[str, Path | None] = {}

    def of(self, where: str, recording: Recording) -> Path | None:
        if recording.id not in self.files:
            problem = _not_a_plain_file(recording)
            if problem:
                self.problems.append(f"{where}: recording {recording.id!r} {problem}")
            self.files[recording.id] = None if problem else Path(recording.sources[0].source)
        return self.files[recording.id]


def _not_a_plain_file(recording: Recording) -> str | None:
    """Why the recording's audio is not its one file as it is, or None."""
    if recording.transforms:
        names = ", ".join(
            t["name"] if isinstance(t, dict) else type(t).__name__ for t in recording.transforms
        )
        return f"has transforms ({names}); only untransformed audio is read"
    if len(recording.sources) != 1:
        return (
            f"has {len(recording.sources)} audio sources (a file per channel?); only "
            "recordings in one file are read"
        )
    source = recording.sources[0]
    if source.type != "file":
        shown = source.source if isinstance(source.source, str) else "in-memory bytes"
        return (
            f"is read from a {source.type} ({shown!r:.80}), not a plain audio file; write its "
            "audio to a file and point the recording at it"
        )
    return None


def _cut_utterances(
    where: str, cut: Cut, split: str, audio: _AudioFiles, problems: list[str]
) -> list[Utterance]:
    from lhotse.cut import MonoCut

    if not isinstance(cut, MonoCut):
        problems.append(
            f"{where}: cut {cut.id!r} is a {type(cut).__name__}; only MonoCut (a part of one "
            "recording) is read"
        )
        return []
    if cut.recording is None:
        problems.append(f"{where}: cut {cut.id!r} has no recording (features only?)")
        return []
    path = audio.of(f"{where}: cut {cut.id!r}", cut.recording)
    utterances = []
    for supervision in cut.supervisions:
        if supervision.start < -CUT_TOLERANCE or supervision.end > cut.duration + CUT_TOLERANCE:
            problems.append(
                f"{where}: supervision {supervision.id!r} ({supervision.start:.3f}-"
                f"{supervision.end:.3f} s) sticks out of cut {cut.id!r} (0-{cut.duration:.3f} "
                "s); trim the cuts to their supervisions"
            )
            continue
        offset = max(cut.start + supervision.start, 0.0)
        found = _utterance(where, supervision, offset, path, split, problems, cut=cut.id)
        if found is not None:
            utterances.append(found)
    return utterances


def _utterance(
    where: str,
    supervision: SupervisionSegment,
    offset: float,
    audio: Path | None,
    split: str,
    problems: list[str],
    **meta: Any,
) -> Utterance | None:
    """The supervision's utterance, or None (with the problem added, if not already)."""
    if not (supervision.text or "").strip():
        problems.append(f"{where}: supervision {supervision.id!r} has no text")
        return None
    if offset < 0:
        problems.append(
            f"{where}: supervision {supervision.id!r} starts {-offset:.3f} s before its recording"
        )
        return None
    if audio is None:
        return None  # its recording was refused, and reported
    if supervision.speaker is not None:
        meta["speaker"] = supervision.speaker
    return Utterance(
        id=supervision.id,
        audio=audio,
        text=supervision.text,
        split=split,
        duration=supervision.duration,
        meta={"recording": supervision.recording_id, **meta},
        offset=offset,
    )


def _parsed(
    path: Path, what: str, parse: Callable[[dict[str, Any]], Any], split: str, problems: list[str]
) -> list[tuple[str, Any]]:
    """(where, item) for each line of a manifest that lhotse parses; the others, and
    duplicate ids, are added to `problems` with their line."""
    if not path.is_file():
        raise CorpusError(f"{path}: lhotse {what}s manifest not found (split {split!r})")
    items = []
    first: dict[str, int] = {}
    for number, line in _lines(path):
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not valid JSON ({error.msg})")
            continue
        try:
            item = parse(record)
        except Exception as error:  # lhotse raises many kinds (KeyError, TypeError, ...)
            problems.append(f"{where}: not a lhotse {what} ({type(error).__name__}: {error})")
            continue
        if item.id in first:
            problems.append(
                f"{where}: duplicate {what} id {item.id!r} (first on line {first[item.id]})"
            )
            continue
        first[item.id] = number
        items.append((where, item))
    return items


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of each non-blank line of a .jsonl or .jsonl.gz file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, line
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: unreadable manifest ({error})") from None
