"""The RNN-T network: LSTM or Conformer transcriber, LSTM prediction network and joiner.

The three parts follow the interfaces of torchaudio's `RNNT` (Graves 2012, as built in
torchaudio), so `torchaudio.models.RNNT` composes them and `RNNTBeamSearch` decodes them.
They use `nn.LSTM`/`nn.Linear` (and, in torchaudio's Conformer, `nn.MultiheadAttention` and
`nn.Conv1d`), whose weights are the prunable tensors of the method.
"""

from __future__ import annotations

import torch
from torch import nn
from torchaudio.models import RNNT, Conformer

from lightning_modules.asr.presets import RNNTConfig

PredictorState = list[list[torch.Tensor]]
"""torchaudio's predictor state layout: per layer, [h, c] with the batch on dim 0."""


def stack_frames(
    input: torch.Tensor, lengths: torch.Tensor, stack: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) frames → (B, ⌈T/stack⌉, D·stack): `stack` consecutive frames per step."""
    batch, frames, dim = input.shape
    pad = (-frames) % stack
    stacked = nn.functional.pad(input, (0, 0, 0, pad)).reshape(batch, -1, dim * stack)
    return stacked, torch.div(lengths + stack - 1, stack, rounding_mode="floor")


def reverse_within_lengths(input: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, D) → each sequence's first `lengths[b]` steps in reverse order (padding after)."""
    steps = torch.arange(input.shape[1], device=input.device)
    index = (lengths.to(input.device)[:, None] - 1 - steps[None]).clamp(min=0)
    return input.gather(1, index[:, :, None].expand(-1, -1, input.shape[2]))


class StackedLSTMTranscriber(nn.Module):
    """Stacks `stack` feature frames into one step (subsampling), then runs an LSTM encoder.

    Each layer and direction is its own one-layer `nn.LSTM` over the padded batch: a forward
    LSTM's outputs at valid steps never see the padding that follows them, and the backward
    direction runs forward over each sequence reversed within its length. That is exactly a
    bidirectional LSTM over packed sequences, but it runs oneDNN's fused LSTM kernel, which
    packed sequences cannot use on a CPU (a dense_small training step: 0.79 s → about 0.4 s).
    """

    def __init__(self, config: RNNTConfig) -> None:
        super().__init__()
        self.stack = config.stack
        directions = 2 if config.bidirectional else 1
        width = config.encoder_hidden * directions

        def layers() -> nn.ModuleList:
            return nn.ModuleList(
                nn.LSTM(
                    config.n_mels * config.stack if layer == 0 else width,
                    config.encoder_hidden,
                    batch_first=True,
                )
                for layer in range(config.encoder_layers)
            )

        self.forward_lstms = layers()
        self.backward_lstms = layers() if config.bidirectional else None
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(width, config.joiner_dim)

    def forward(
        self, input: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, stacked_lengths = stack_frames(input, lengths, self.stack)
        for layer, forward_lstm in enumerate(self.forward_lstms):
            if layer:
                hidden = self.dropout(hidden)
            outputs = [forward_lstm(hidden)[0]]
            if self.backward_lstms is not None:
                backward = self.backward_lstms[layer](
                    reverse_within_lengths(hidden, stacked_lengths)
                )[0]
                outputs.append(reverse_within_lengths(backward, stacked_lengths))
            hidden = torch.cat(outputs, dim=-1)
        return self.output(self.dropout(hidden)), stacked_lengths


class ConformerTranscriber(nn.Module):
    """Stacks `stack` feature frames into one step, projects them to the model width and runs
    torchaudio's `Conformer` (Gulati et al. 2020) over them."""

    def __init__(self, config: RNNTConfig) -> None:
        super().__init__()
        self.stack = config.stack
        self.input = nn.Linear(config.n_mels * config.stack, config.encoder_hidden)
        self.conformer = Conformer(
            input_dim=config.encoder_hidden,
            num_heads=config.conformer_heads,
            ffn_dim=config.conformer_ffn,
            num_layers=config.encoder_layers,
            depthwise_conv_kernel_size=config.conformer_kernel,
            dropout=config.dropout,
        )
        self.output = nn.Linear(config.encoder_hidden, config.joiner_dim)

    def forward(
        self, input: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        stacked, stacked_lengths = stack_frames(input, lengths, self.stack)
        encoded, _ = self.conformer(self.input(stacked), stacked_lengths)
        return self.output(encoded), stacked_lengths


class LSTMPredictor(nn.Module):
    """Prediction network: token embedding and an LSTM over the tokens emitted so far."""

    def __init__(self, config: RNNTConfig, vocab_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.predictor_embed)
        self.lstm = nn.LSTM(
            input_size=config.predictor_embed,
            hidden_size=config.predictor_hidden,
            num_layers=config.predictor_layers,
            dropout=config.dropout if config.predictor_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.predictor_hidden, config.joiner_dim)

    def forward(
        self, input: torch.Tensor, lengths: torch.Tensor, state: PredictorState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, PredictorState]:
        hidden = None
        if state is not None:
            hidden = (
                torch.stack([layer[0] for layer in state]),
                torch.stack([layer[1] for layer in state]),
            )
        output, (h, c) = self.lstm(self.dropout(self.embedding(input)), hidden)
        new_state = [[h[layer], c[layer]] for layer in range(h.shape[0])]
        return self.output(self.dropout(output)), lengths, new_state


class Joiner(nn.Module):
    """Combines every encoder frame with every predictor step into token logits (B, T, U, V)."""

    def __init__(self, config: RNNTConfig, vocab_size: int) -> None:
        super().__init__()
        self.output = nn.Linear(config.joiner_dim, vocab_size)

    def forward(
        self,
        source_encodings: torch.Tensor,
        source_lengths: torch.Tensor,
        target_encodings: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        joint = torch.tanh(source_encodings.unsqueeze(2) + target_encodings.unsqueeze(1))
        return self.output(joint), source_lengths, target_lengths


def build_rnnt(config: RNNTConfig, vocab_size: int) -> RNNT:
    """An RNN-T of the given shape, composed by torchaudio's `RNNT`."""
    transcriber = (
        ConformerTranscriber(config)
        if config.encoder == "conformer"
        else StackedLSTMTranscriber(config)
    )
    return RNNT(
        transcriber=transcriber,
        predictor=LSTMPredictor(config, vocab_size),
        joiner=Joiner(config, vocab_size),
    )


def bf16_lstm_runs_on_this_cpu() -> bool:
    """Whether bf16 autocast can run the LSTMs on this CPU: oneDNN's bf16 LSTM needs AVX-512
    (BF16); without it every forward pass fails ("could not create a primitive descriptor for
    the LSTM forward propagation primitive")."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
