"""Rendering a planned corpus to FLAC in parallel, and writing its manifest and sidecar.

Each FLAC is written to a temporary name and renamed, so a FLAC that exists is complete: a
re-run renders only what is missing. `corpus.json` records the settings and the engine
versions; a folder made with other settings or other engine versions is never mixed into.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from lightning_modules.data.manifest import CorpusError, write_jsonl_atomic
from lightning_modules.data.synth.augment import (
    SAMPLE_RATE,
    add_background_noise,
    add_reverb,
    coloured_noise,
    peak_normalize,
    room_impulse_response,
    sox_transform,
)
from lightning_modules.data.synth.engines import check_engines, engine_versions, render_wav
from lightning_modules.data.synth.plan import CORPUS_SIZES, PlannedUtterance, plan_corpus
from lightning_modules.data.synth.texts import load_sentences

FORMAT_VERSION = 1  # bump when the same settings would render different audio
CHUNK = 8


def render_utterance(planned: PlannedUtterance, out: Path) -> None:
    """Speak, transform and augment one utterance; write it atomically to `out`."""
    with tempfile.TemporaryDirectory(prefix="csp-tts-") as scratch:
        raw = Path(scratch) / "raw.wav"
        render_wav(planned.voice, planned.text, raw)
        audio = sox_transform(raw, planned.speed, planned.pitch_cents).astype(np.float64)
    rng = np.random.default_rng(planned.noise_seed)
    if planned.rt60_s is not None:
        audio = add_reverb(audio, room_impulse_response(rng, planned.rt60_s))
    if planned.snr_db is not None:
        audio = add_background_noise(audio, coloured_noise(rng, len(audio)), planned.snr_db)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".partial-{out.name}")
    soundfile.write(partial, peak_normalize(audio), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(partial, out)


def _render_chunk(out_dir: Path, chunk: list[PlannedUtterance]) -> int:
    for planned in chunk:
        render_utterance(planned, out_dir / planned.audio)
    return len(chunk)


def _chunks(items: list[PlannedUtterance]) -> Iterator[list[PlannedUtterance]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _claim_folder(out_dir: Path, settings: dict) -> None:
    """Refuse a folder that holds a corpus of other settings; record ours in it otherwise."""
    sidecar = out_dir / "corpus.json"
    if sidecar.exists():
        saved = json.loads(sidecar.read_text(encoding="utf-8"))
        for key, value in settings.items():
            if saved.get(key) != value:
                raise CorpusError(
                    f"{out_dir} holds a corpus made with {key}={saved.get(key)!r}, "
                    f"not {value!r}; choose another --out or delete that folder"
                )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps({**settings, "complete": False}, indent=2), encoding="utf-8")


def render_corpus(
    out_dir: str | Path,
    size: str = "small",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render (or finish rendering) the default corpus into `out_dir`; return its manifest.

    Checks the engines and the folder before rendering anything.
    """
    if size not in CORPUS_SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose one of {sorted(CORPUS_SIZES)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    check_engines()
    out_dir = Path(out_dir)
    settings = {"size": size, "seed": seed, "format": FORMAT_VERSION, "versions": engine_versions()}
    _claim_folder(out_dir, settings)

    plan = plan_corpus(size, seed, load_sentences())
    todo = [p for p in plan if not (out_dir / p.audio).exists()]
    if todo:
        bar = tqdm(
            total=len(todo), desc=f"rendering {size} corpus", unit="utt", disable=not progress
        )
        workers = workers or os.cpu_count() or 1
        if workers == 1:
            for chunk in _chunks(todo):
                bar.update(_render_chunk(out_dir, chunk))
        else:
            with ProcessPoolExecutor(workers) as pool:
                jobs = [pool.submit(_render_chunk, out_dir, chunk) for chunk in _chunks(todo)]
                for job in jobs:
                    bar.update(job.result())
        bar.close()

    records = []
    for planned in plan:
        frames = soundfile.info(str(out_dir / planned.audio)).frames
        records.append(
            {
                "id": planned.id,
                "audio": planned.audio,
                "text": planned.text,
                "duration": frames / SAMPLE_RATE,
                "split": planned.split,
                "engine": planned.voice.engine,
                "voice": planned.voice.name,
                "speed": planned.speed,
                "pitch": planned.pitch_cents,
                "augmentation": planned.augmentation,
                "snr_db": planned.snr_db,
                "rt60_s": planned.rt60_s,
                "source": planned.source,
            }
        )
    manifest = out_dir / "manifest.jsonl"
    write_jsonl_atomic(manifest, records)
    summary = {
        split: {
            "utterances": sum(r["split"] == split for r in records),
            "hours": round(sum(r["duration"] for r in records if r["split"] == split) / 3600, 4),
        }
        for split in ("train", "dev", "test")
    }
    sidecar = {**settings, "complete": True, "splits": summary}
    (out_dir / "corpus.json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return manifest
