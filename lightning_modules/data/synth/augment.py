"""Turning an engine's WAV into a corpus waveform: speed, pitch, 16 kHz mono, reverb, noise.

Speed and pitch use sox (`tempo`, `pitch`, `rate`) run with -R (repeatable) and -D (no
dither), so the same input gives the same samples. Reverberation and noise are drawn from
the utterance's own random generator and applied with torchaudio in float64.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch
from torchaudio.functional import add_noise, fftconvolve

SAMPLE_RATE = 16_000
PEAK = 0.9


def speed_and_pitch(wav: Path, speed: float, pitch_cents: float) -> np.ndarray:
    """The WAV at `speed` (tempo, pitch kept), shifted by `pitch_cents`, as 16 kHz mono."""
    command = [
        "sox", "-R", "-D", "-V1", str(wav), "-t", "f32", "-c", "1", "-r", str(SAMPLE_RATE), "-",
        "tempo", "-s", f"{speed:.3f}", "pitch", f"{pitch_cents:.1f}",
        "rate", "-h", str(SAMPLE_RATE),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sox failed on {wav}: {done.stderr.decode(errors='replace')[:300]}")
    return np.frombuffer(done.stdout, dtype=np.float32).astype(np.float64)


def coloured_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    """White, pink or brown noise (power falling as 1/f^0, 1/f^1 or 1/f^2), unit variance."""
    slope = int(rng.integers(0, 3))
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.maximum(np.fft.rfftfreq(length), 1.0 / length)
    noise = np.fft.irfft(spectrum / frequencies ** (slope / 2), n=length)
    return noise / (noise.std() + 1e-12)


def room_impulse_response(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """A synthetic room: the direct path, then noise decaying by 60 dB over `rt60_s`."""
    t = np.arange(int(rt60_s * SAMPLE_RATE)) / SAMPLE_RATE
    response = rng.standard_normal(len(t)) * np.exp(-np.log(1000.0) * t / rt60_s) * 0.3
    response[0] = 1.0
    return response / np.sqrt(np.sum(response**2))


def reverberate(audio: np.ndarray, rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """`audio` played in a random room of reverberation time `rt60_s`, same length."""
    rir = torch.from_numpy(room_impulse_response(rng, rt60_s))
    return fftconvolve(torch.from_numpy(audio), rir)[: len(audio)].numpy()


def add_background_noise(audio: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """`audio` with random coloured noise at `snr_db` dB signal-to-noise ratio."""
    noise = torch.from_numpy(coloured_noise(rng, len(audio)))[None]
    mixed = add_noise(
        torch.from_numpy(audio)[None], noise, torch.tensor([snr_db], dtype=noise.dtype)
    )
    return mixed[0].numpy()


def peak_normalize(audio: np.ndarray) -> np.ndarray:
    """Scale to a fixed peak, so loudness does not give away the engine."""
    return (audio * (PEAK / max(float(np.abs(audio).max()), 1e-9))).astype(np.float32)
