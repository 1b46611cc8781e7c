"""Named model sizes: tiny for tests, small for a 2-core CPU, large for one GPU."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MIN_SPEED, MAX_SPEED = 0.5, 2.0
"""Speed perturbation beyond these rates no longer sounds like speech."""
MAX_RT60_S = 2.0
"""A cathedral; the rooms of on-the-fly reverberation stay below it."""


class RNNTConfig(BaseModel):
    """Shape of the RNN-T: features, encoder, prediction network and joiner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_mels: int = Field(80, ge=8)
    stack: int = Field(3, ge=1, description="frames stacked into one encoder step (subsampling)")
    encoder: Literal["lstm", "conformer"] = Field(
        "lstm", description="the transcriber: LSTM (the paper's) or torchaudio's Conformer"
    )
    encoder_layers: int = Field(3, ge=1)
    encoder_hidden: int = Field(256, ge=8, description="LSTM hidden size or Conformer width")
    bidirectional: bool = Field(True, description="LSTM encoder only")
    conformer_heads: int = Field(4, ge=1)
    conformer_ffn: int = Field(1024, ge=8, description="Conformer feed-forward width")
    conformer_kernel: int = Field(15, ge=1, description="Conformer depthwise convolution kernel")
    predictor_embed: int = Field(64, ge=4)
    predictor_layers: int = Field(1, ge=1)
    predictor_hidden: int = Field(256, ge=8)
    joiner_dim: int = Field(256, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    freq_masks: int = Field(2, ge=0, description="SpecAugment frequency masks per utterance")
    freq_mask_width: int = Field(15, ge=0)
    time_masks: int = Field(2, ge=0, description="SpecAugment time masks per utterance")
    time_mask_width: int = Field(25, ge=0)
    ctc_weight: float = Field(
        0.0, ge=0.0, description="weight of the auxiliary CTC loss on the encoder (0: no CTC head)"
    )
    speed_factors: list[float] = Field(
        default_factory=list,
        description="speed perturbation: each training batch plays at one of these rates, "
        "drawn at random (e.g. 0.9, 1.0, 1.1; empty: off); a list, so that saved "
        "hyper-parameters read back from JSON equal the checkpoint's",
    )

    reverb_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of training utterances played, on the fly, in a random synthetic "
        "room (0: off)",
    )
    reverb_rt60_s: list[float] = Field(
        default_factory=lambda: [0.2, 0.8],
        description="the rooms' reverberation times in seconds, drawn uniformly from [low, high]",
    )

    @field_validator("reverb_rt60_s")
    @classmethod
    def _a_range_of_reverberation_times(cls, bounds: list[float]) -> list[float]:
        if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1] <= MAX_RT60_S:
            raise ValueError(
                f"reverb_rt60_s must be [low, high] with 0 < low <= high <= {MAX_RT60_S}, "
                f"got {bounds}"
            )
        return bounds

    @field_validator("speed_factors")
    @classmethod
    def _plausible_speeds(cls, factors: list[float]) -> list[float]:
        wrong = [f for f in factors if not MIN_SPEED <= f <= MAX_SPEED]
        if wrong:
            raise ValueError(f"speed factors must lie in [{MIN_SPEED}, {MAX_SPEED}], got {wrong}")
        return factors

    @model_validator(mode="after")
    def _conformer_shape(self) -> RNNTConfig:
        if self.encoder == "conformer":
            if self.encoder_hidden % self.conformer_heads:
                raise ValueError(
                    f"encoder_hidden {self.encoder_hidden} is not divisible by "
                    f"conformer_heads {self.conformer_heads}"
                )
            if self.conformer_kernel % 2 == 0:
                raise ValueError(f"conformer_kernel {self.conformer_kernel} must be odd")
        return self


PRESETS: dict[str, RNNTConfig] = {
    "tiny": RNNTConfig(
        n_mels=40,
        stack=4,
        encoder_layers=2,
        encoder_hidden=64,
        bidirectional=True,
        predictor_embed=16,
        predictor_hidden=64,
        joiner_dim=64,
        dropout=0.0,
        freq_masks=0,
        time_masks=0,
    ),
    "small": RNNTConfig(
        n_mels=80,
        stack=3,
        encoder_layers=3,
        encoder_hidden=256,
        bidirectional=True,
        predictor_embed=64,
        predictor_hidden=256,
        joiner_dim=256,
        dropout=0.1,
    ),
    "large": RNNTConfig(
        n_mels=80,
        stack=3,
        encoder_layers=5,
        encoder_hidden=640,
        bidirectional=True,
        predictor_embed=128,
        predictor_layers=2,
        predictor_hidden=640,
        joiner_dim=512,
        dropout=0.15,
    ),
}


def model_config(preset: str, **overrides: object) -> RNNTConfig:
    """The named preset with `overrides` applied (validated like the preset itself)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return RNNTConfig(**{**PRESETS[preset].model_dump(), **overrides})
