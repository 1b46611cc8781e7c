"""Turning an engine's WAV into a corpus waveform: speed, pitch, 16 kHz mono, noise, reverb.

Speed and pitch use sox (`tempo`, `pitch`, `rate`), run with -R (repeatable) and no dither.
Noise and room reverberation are drawn from a per-utterance seed and applied with
torchaudio (`add_noise` at a given SNR; FFT convolution with a synthetic impulse response).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch
from torchaudio.functional import add_noise, fftconvolve

SAMPLE_RATE = 16_000


def sox_transform(wav: Path, speed: float, pitch_cents: float) -> np.ndarray:
    """The WAV at `speed` (tempo, pitch kept) shifted by `pitch_cents`, as 16 kHz mono float."""
    command = [
        "sox", "-R", "-D", "-V1", str(wav), "-t", "f32", "-c", "1", "-r", str(SAMPLE_RATE), "-",
        "tempo", "-s", f"{speed:.4f}", "pitch", f"{pitch_cents:.1f}",
        "rate", "-h", str(SAMPLE_RATE),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sox failed on {wav}: {done.stderr.decode(errors='replace')[:300]}")
    return np.frombuffer(done.stdout, dtype=np.float32).copy()


def coloured_noise(rng: np.random.Generator, length: int) -> np.ndarray:
    """White, pink or brown noise (spectral slope 0, 1 or 2), unit variance."""
    slope = rng.integers(0, 3)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.maximum(np.fft.rfftfreq(length), 1.0 / length)
    noise = np.fft.irfft(spectrum / frequencies ** (slope / 2), n=length)
    return noise / (noise.std() + 1e-9)


def room_impulse_response(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """A synthetic room: direct path, then exponentially decaying noise reaching -60 dB at rt60."""
    length = int(rt60_s * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60_s) * 0.3
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


def add_reverb(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    wet = fftconvolve(torch.from_numpy(audio).double(), torch.from_numpy(rir).double())
    return wet[: len(audio)].numpy()


def add_background_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    signal = torch.from_numpy(audio).double()[None]
    mixed = add_noise(signal, torch.from_numpy(noise).double()[None], torch.tensor([snr_db]))
    return mixed[0].numpy()


def peak_normalize(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    return (audio * (peak / max(np.abs(audio).max(), 1e-9))).astype(np.float32)
