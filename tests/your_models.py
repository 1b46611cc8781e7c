"""Models a researcher might bring, written here and not taken from the project: CTC models on
torchaudio's Conformer, a small wav2vec2 and a 2-layer LSTM, and torchaudio's Emformer RNN-T,
each a LightningModule on random features with its own DataLoader (tuple batches, or dict
batches for the DataModule variant). None of them knows about pruning."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchaudio.models import Conformer, emformer_rnnt_model, wav2vec2_model

FEATURES, FRAMES, LABELS, TARGET_LENGTH = 16, 24, 6, 4


def random_data(count: int = 32, features: int = FEATURES, frames: int = FRAMES) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(
        torch.randn(count, frames, features, generator=generator),
        torch.randint(1, LABELS, (count, TARGET_LENGTH), generator=generator),
    )


class DictBatches(Dataset):
    """The same examples as dicts, as many speech toolkits give them."""

    def __init__(self, data: TensorDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        features, targets = self.data[index]
        return {"features": features, "targets": targets}


def unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        return batch["features"], batch["targets"]
    return batch[0], batch[1]


class CTCModel(pl.LightningModule):
    """CTC over an encoder that maps (batch, frames, features) to (batch, frames', width)."""

    def __init__(self, width: int = FEATURES) -> None:
        super().__init__()
        self.head = nn.Linear(width, LABELS)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: Any) -> torch.Tensor:
        features, targets = unpack(batch)
        log_probs = self.head(self.encode(features)).log_softmax(-1).transpose(0, 1)
        frames = torch.full((len(features),), log_probs.shape[0], dtype=torch.long)
        lengths = torch.full((len(features),), targets.shape[1], dtype=torch.long)
        return nn.functional.ctc_loss(log_probs, targets, frames, lengths, zero_infinity=True)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class ConformerCTC(CTCModel):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Conformer(
            input_dim=FEATURES, num_heads=2, ffn_dim=32, num_layers=2, depthwise_conv_kernel_size=3
        )

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((len(features),), features.shape[1])
        return self.encoder(features, lengths)[0]


class LSTMCTC(CTCModel):
    def __init__(self) -> None:
        super().__init__(width=32)
        self.lstm = nn.LSTM(FEATURES, 32, num_layers=2, batch_first=True)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        return self.lstm(features)[0]


class Wav2Vec2CTC(CTCModel):
    """A small wav2vec2 built locally (no download) on raw waveforms: the features are read
    as 16 ms of samples per frame."""

    def __init__(self) -> None:
        super().__init__(width=16)
        self.encoder = wav2vec2_model(
            extractor_mode="group_norm",
            extractor_conv_layer_config=[(8, 10, 5), (8, 3, 2)],
            extractor_conv_bias=False,
            encoder_embed_dim=16,
            encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=4,
            encoder_pos_conv_groups=2,
            encoder_num_layers=2,
            encoder_num_heads=2,
            encoder_attention_dropout=0.0,
            encoder_ff_interm_features=32,
            encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0,
            encoder_layer_norm_first=False,
            encoder_layer_drop=0.0,
            aux_num_out=None,
        )

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(features.flatten(1))[0]


class EmformerRNNT(pl.LightningModule):
    """torchaudio's Emformer RNN-T with torchaudio's RNN-T loss."""

    def __init__(self) -> None:
        super().__init__()
        self.model = emformer_rnnt_model(
            input_dim=FEATURES,
            encoding_dim=16,
            num_symbols=LABELS,
            segment_length=4,
            right_context_length=0,
            time_reduction_input_dim=16,
            time_reduction_stride=2,
            transformer_num_heads=2,
            transformer_ffn_dim=32,
            transformer_num_layers=2,
            transformer_dropout=0.0,
            transformer_activation="gelu",
            transformer_left_context_length=8,
            transformer_max_memory_size=0,
            transformer_weight_init_scale_strategy="depthwise",
            transformer_tanh_on_mem=True,
            symbol_embedding_dim=8,
            num_lstm_layers=1,
            lstm_layer_norm=True,
            lstm_layer_norm_epsilon=1e-5,
            lstm_dropout=0.0,
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        import torchaudio.functional as F

        features, targets = unpack(batch)
        count = len(features)
        frames = torch.full((count,), features.shape[1], dtype=torch.int32)
        lengths = torch.full((count,), targets.shape[1], dtype=torch.int32)
        blank_first = nn.functional.pad(targets, (1, 0), value=0)
        logits, out_frames, _, _ = self.model(features, frames, blank_first, lengths + 1)
        loss = F.rnnt_loss(logits, targets.int(), out_frames.int(), lengths, blank=0)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class ManualLSTMCTC(LSTMCTC):
    """The LSTM model with manual optimization: its `training_step` steps the optimizer."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = self.loss(batch)
        self.manual_backward(loss)
        optimizer.step()
        self.log("train_loss", loss)
        return loss


class PlainDataModule(pl.LightningDataModule):
    """An ordinary DataModule: dict batches, shuffled."""

    def __init__(self, count: int = 32, batch_size: int = 4, model: str = "lstm") -> None:
        super().__init__()
        self.data = DictBatches(random_data(count, frames=frames_for(model)))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)


MODELS = {
    "conformer": ConformerCTC,
    "emformer_rnnt": EmformerRNNT,
    "wav2vec2": Wav2Vec2CTC,
    "lstm": LSTMCTC,
}


def frames_for(model: str) -> int:
    """wav2vec2 reads the frames as a waveform: it needs more of them."""
    return FRAMES * 4 if model == "wav2vec2" else FRAMES


def loader(
    count: int = 32, batch_size: int = 4, model: str = "lstm", shuffle: bool = True
) -> DataLoader:
    """Tuple batches."""
    data = random_data(count, frames=frames_for(model))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle)


def trainer(max_steps: int, **options: Any) -> pl.Trainer:
    """A plain CPU Trainer, as a user would write it (no logger unless given)."""
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "max_steps": max_steps,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        **options,
    }
    return pl.Trainer(**settings)
