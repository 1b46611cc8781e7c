"""Acoustic front end: speed perturbation, reverberation, log-mel features, per-utterance
normalization and SpecAugment."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchaudio.functional import resample
from torchaudio.transforms import MelSpectrogram, SpecAugment

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # 10 ms frames


class LogMelFrontend(nn.Module):
    """Waveforms (B, S) → normalized log-mel frames (B, T, n_mels) and their lengths.

    Each utterance is normalized to zero mean and unit variance over its own valid frames,
    which removes level and channel differences between voices without corpus statistics.
    Augmentation runs in training mode only: speed perturbation (Ko et al., Audio
    Augmentation for Speech Recognition, Interspeech 2015) plays each batch at one of
    `speed_factors`, drawn at random, by resampling (tempo, pitch and formants move together:
    new voices from the same speakers); then a share `reverb_share` of the utterances is
    played in a random room (Ko et al., A study on data augmentation of reverberant speech
    for robust speech recognition, ICASSP 2017), fresh rooms at every step; then SpecAugment
    masks.
    """

    def __init__(
        self,
        n_mels: int,
        freq_masks: int = 0,
        freq_mask_width: int = 0,
        time_masks: int = 0,
        time_mask_width: int = 0,
        speed_factors: tuple[float, ...] = (),
        reverb_share: float = 0.0,
        reverb_rt60_s: tuple[float, float] = (0.2, 0.8),
    ) -> None:
        super().__init__()
        self.speed_factors = tuple(speed_factors)
        self.reverb_share = reverb_share
        self.reverb_rt60_s = reverb_rt60_s
        self.mel = MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=400, win_length=400, hop_length=HOP_LENGTH, n_mels=n_mels
        )
        self.augment = (
            SpecAugment(
                n_time_masks=time_masks,
                time_mask_param=time_mask_width,
                n_freq_masks=freq_masks,
                freq_mask_param=freq_mask_width,
                zero_masking=True,
            )
            if freq_masks or time_masks
            else None
        )

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and self.speed_factors:
            audio, audio_lengths = self.perturb_speed(audio, audio_lengths)
        if self.training and self.reverb_share > 0:
            audio = self.reverberate(audio, audio_lengths)
        with torch.autocast(audio.device.type, enabled=False):
            power = self.mel(audio.float())  # (B, n_mels, T)
        frames = torch.log(power + 1e-6)
        lengths = audio_lengths // HOP_LENGTH + 1
        valid = (torch.arange(frames.shape[-1], device=frames.device) < lengths[:, None])[:, None]
        count = lengths[:, None, None].clamp(min=1)
        mean = (frames * valid).sum(-1, keepdim=True) / count
        var = (((frames - mean) * valid) ** 2).sum(-1, keepdim=True) / count
        frames = ((frames - mean) / (var + 1e-5).sqrt()) * valid
        if self.training and self.augment is not None:
            frames = self.augment(frames)
        return frames.transpose(1, 2), lengths

    def perturb_speed(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch played at one of `speed_factors` (drawn from torch's global generator, as
        SpecAugment's masks are): read as if sampled at factor × 16 kHz, resampled to 16 kHz."""
        factor = self.speed_factors[int(torch.randint(len(self.speed_factors), ()))]
        played_at = round(SAMPLE_RATE * factor)
        if played_at == SAMPLE_RATE:
            return audio, audio_lengths
        audio = resample(audio.float(), played_at, SAMPLE_RATE)
        lengths = (audio_lengths * SAMPLE_RATE + played_at - 1) // played_at
        return audio, lengths.clamp(max=audio.shape[-1])

    def reverberate(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> torch.Tensor:
        """Each utterance, with probability `reverb_share`, convolved with a random room's
        impulse response (the corpus's synthetic room: the direct path, then Gaussian noise
        decaying by 60 dB over an RT60 drawn from `reverb_rt60_s`; unit energy); drawn from
        torch's global generator. Lengths stay; the tails are cut at each utterance's end."""
        batch, samples = audio.shape
        rows = (torch.rand(batch) < self.reverb_share).nonzero()[:, 0]
        if len(rows) == 0:
            return audio
        low, high = self.reverb_rt60_s
        rt60 = low + (high - low) * torch.rand(len(rows), 1)
        taps = int(high * SAMPLE_RATE)
        t = torch.arange(taps) / SAMPLE_RATE
        response = torch.randn(len(rows), taps) * torch.exp(-math.log(1000.0) * t / rt60)
        response = 0.3 * response * (t < rt60)
        response[:, 0] = 1.0
        response = response / response.square().sum(-1, keepdim=True).sqrt()
        rows = rows.to(audio.device)
        size = _smooth_length(samples + taps - 1)  # an FFT of a prime length is 20x slower
        spectrum = torch.fft.rfft(audio[rows].float(), size) * torch.fft.rfft(
            response.to(audio.device), size
        )
        played = audio.float().clone()
        played[rows] = torch.fft.irfft(spectrum, size)[:, :samples]
        inside = torch.arange(samples, device=audio.device) < audio_lengths[:, None]
        return played * inside


def _smooth_length(minimum: int) -> int:
    """The smallest 2^a · 3^b · 5^c at least `minimum`: a length the FFT is fast at."""
    best = 1 << max(minimum - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35 << max(0, (minimum - 1) // power35).bit_length()
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best
