"""Rendering a planned corpus to FLAC in parallel, then writing its manifest and sidecar.

Work is batched by voice, so festival and piper start once per batch, not per sentence.
Each FLAC is written under a temporary name and renamed, so a FLAC that exists is complete
and a re-run renders only what is missing. `corpus.json` records the settings; a folder
made with another size, seed or engine version is never mixed into.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import Counter, defaultdict
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from tqdm import tqdm

from lightning_modules.data.manifest import (
    SPLITS,
    CorpusError,
    claim_corpus_folder,
    write_json_atomic,
    write_jsonl_atomic,
)
from lightning_modules.data.synth.augment import (
    SAMPLE_RATE,
    add_background_noise,
    peak_normalize,
    reverberate,
    speed_and_pitch,
)
from lightning_modules.data.synth.engines import check_tools, synthesize, tool_versions
from lightning_modules.data.synth.plan import (
    CORPUS_SIZES,
    TEXTS,
    PlannedUtterance,
    plan_corpus,
    settings,
)
from lightning_modules.data.synth.voices import Voice

FORMAT_VERSION = 4
"""Bump whenever the same settings would render different audio or a different manifest
(4: the small size grew to 6,000 training utterances)."""
BATCH = 24
"""Utterances per task: enough to amortise festival's start, few enough to balance workers."""
_SLOW_FIRST = {"piper": 0, "hibari": 0, "festival": 1, "flite": 2, "espeak-ng": 3}
_PARTIAL = ".partial"


def _finish(planned: PlannedUtterance, wav: Path, out: Path) -> None:
    """Speed, pitch, reverb and noise for one utterance; write its FLAC atomically."""
    audio = speed_and_pitch(wav, planned.speed, planned.pitch_cents)
    rng = np.random.default_rng(planned.noise_seed)
    if planned.rt60_s is not None:
        audio = reverberate(audio, rng, planned.rt60_s)
    if planned.snr_db is not None:
        audio = add_background_noise(audio, rng, planned.snr_db)
    partial = out.with_name(f".{out.name}{_PARTIAL}")
    soundfile.write(partial, peak_normalize(audio), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(partial, out)


def _render_batch(out_dir: Path, batch: list[PlannedUtterance]) -> int:
    """Render utterances that share one voice; return how many."""
    texts = [planned.sentence.spoken for planned in batch]
    with tempfile.TemporaryDirectory(prefix="csp-tts-") as scratch:
        wavs = synthesize(batch[0].voice, texts, Path(scratch))
        for planned, wav in zip(batch, wavs, strict=True):
            _finish(planned, wav, out_dir / planned.audio)
    return len(batch)


def _batches(todo: list[PlannedUtterance]) -> list[list[PlannedUtterance]]:
    """Utterances grouped by voice in batches of at most `BATCH`, slow engines first."""
    by_voice: dict[Voice, list[PlannedUtterance]] = defaultdict(list)
    for planned in todo:
        by_voice[planned.voice].append(planned)
    batches = [
        same_voice[start : start + BATCH]
        for same_voice in by_voice.values()
        for start in range(0, len(same_voice), BATCH)
    ]
    return sorted(batches, key=lambda batch: _SLOW_FIRST[batch[0].voice.engine])


def _init_worker() -> None:
    """One thread per worker: the workers already fill the cores, and a forked process must
    not touch the parent's OpenMP pool."""
    torch.set_num_threads(1)


def _render_all(out_dir: Path, todo: list[PlannedUtterance], workers: int, bar: tqdm) -> None:
    for split in SPLITS:
        (out_dir / "audio" / split).mkdir(parents=True, exist_ok=True)
    batches = _batches(todo)
    if workers == 1:
        for batch in batches:
            bar.update(_render_batch(out_dir, batch))
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending = {pool.submit(_render_batch, out_dir, batch) for batch in batches}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for job in done:
                if job.exception() is not None:
                    pool.shutdown(cancel_futures=True)
                    raise job.exception()
                bar.update(job.result())


def _check_versions(out_dir: Path, saved: dict[str, str], current: dict[str, str]) -> None:
    """Refuse to add audio made by other engine versions to a partly rendered corpus."""
    changed = sorted(
        key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key)
    )
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in changed)
        raise CorpusError(
            f"{out_dir} was partly rendered with other versions ({details}); "
            "delete that folder to render it again"
        )


def _record(planned: PlannedUtterance, out_dir: Path) -> dict[str, Any]:
    frames = soundfile.info(str(out_dir / planned.audio)).frames
    return {
        "id": planned.id,
        "audio": planned.audio,
        "text": planned.sentence.text,
        "duration": frames / SAMPLE_RATE,
        "split": planned.split,
        "engine": planned.voice.engine,
        "voice": planned.voice.name,
        "speed": planned.speed,
        "pitch": planned.pitch_cents,
        "augmentation": planned.augmentation,
        "snr_db": planned.snr_db,
        "rt60_s": planned.rt60_s,
        "source": planned.sentence.source,
    }


def data_card(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What a reader of a corpus asks first: vocabulary, unseen test words, held-out voices
    and sentences."""
    words = {split: [w for r in records if r["split"] == split for w in r["text"].split()]
             for split in SPLITS}  # fmt: skip
    seen = set(words["train"])
    voices = {split: {(r["engine"], r["voice"]) for r in records if r["split"] == split}
              for split in SPLITS}  # fmt: skip
    texts = {split: {r["text"] for r in records if r["split"] == split} for split in SPLITS}
    test_words = words["test"]
    return {
        "vocabulary": {split: len(set(words[split])) for split in SPLITS},
        "test_words_unseen_in_train": round(
            sum(word not in seen for word in test_words) / max(len(test_words), 1), 4
        ),
        "test_vocabulary_unseen_in_train": len(set(test_words) - seen),
        "test_sentences_in_train": len(texts["test"] & texts["train"]),
        "test_voices": len(voices["test"]),
        "test_voice_engines": len({engine for engine, _ in voices["test"]}),
        "test_voices_in_train_or_dev": len(voices["test"] & (voices["train"] | voices["dev"])),
    }


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and hours per split, for the sidecar."""
    summary = {}
    for split in SPLITS:
        rows = [r for r in records if r["split"] == split]
        summary[split] = {
            "utterances": len(rows),
            "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "voices": len({(r["engine"], r["voice"]) for r in rows}),
            **{
                f"by_{field}": dict(sorted(Counter(r[field] for r in rows).items()))
                for field in ("engine", "source", "augmentation")
            },
        }
    return summary


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def render_corpus(
    out_dir: str | Path,
    size: str = "small",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    text: str = "assistant",
) -> Path:
    """Render (or finish rendering) the TTS corpus `size` for `seed` into `out_dir`, speaking
    `text` (`assistant`: the voice-assistant domain; `open`: fortunes and the KJV Bible).

    Returns the path of its `manifest.jsonl`. The arguments, the tools and the folder are
    checked before anything is rendered; FLACs already in the folder are kept.
    """
    if size not in CORPUS_SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose one of {sorted(CORPUS_SIZES)}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if text not in TEXTS:
        raise ValueError(f"unknown corpus text {text!r}; choose one of {sorted(TEXTS)}")
    check_tools()
    out_dir = Path(out_dir)
    expected = {"size": size, "seed": seed, "text": text, "format": FORMAT_VERSION}
    saved = claim_corpus_folder(out_dir, expected)
    versions = tool_versions()
    plan = plan_corpus(size, seed, TEXTS[text](sum(vars(CORPUS_SIZES[size]).values())))
    todo = [planned for planned in plan if not (out_dir / planned.audio).exists()]
    if saved is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        header = {
            "size": size,
            "seed": seed,
            "text": text,
            "format": FORMAT_VERSION,
            "versions": versions,
        }
        write_json_atomic(out_dir / "corpus.json", {**header, "complete": False})
    else:
        if todo:
            _check_versions(out_dir, saved["versions"], versions)
        versions = saved["versions"]  # the versions that made the audio
    for stale in out_dir.glob(f"audio/*/.*{_PARTIAL}"):  # left by an interrupted render
        stale.unlink()

    if todo:
        with tqdm(
            total=len(todo), desc=f"{size} TTS corpus", unit="utt", disable=not progress
        ) as bar:
            _render_all(out_dir, todo, workers or os.cpu_count() or 1, bar)

    records = [_record(planned, out_dir) for planned in plan]
    manifest = out_dir / "manifest.jsonl"
    write_jsonl_atomic(manifest, records)
    sidecar = {
        "size": size,
        "seed": seed,
        "text": text,
        "format": FORMAT_VERSION,
        "versions": versions,
        "settings": settings(),
        "splits": _summary(records),
        "data_card": data_card(records),
        "complete": True,
    }
    write_json_atomic(out_dir / "corpus.json", sidecar)
    return manifest
