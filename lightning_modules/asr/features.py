"""Acoustic front end: speed perturbation, log-mel features, per-utterance normalization and
SpecAugment."""

from __future__ import annotations

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
    new voices from the same speakers); then SpecAugment masks.
    """

    def __init__(
        self,
        n_mels: int,
        freq_masks: int = 0,
        freq_mask_width: int = 0,
        time_masks: int = 0,
        time_mask_width: int = 0,
        speed_factors: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.speed_factors = tuple(speed_factors)
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
