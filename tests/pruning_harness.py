"""Small models and a fit helper for the pruning tests; also the 2-process DDP script.

Two LightningModules carry the callbacks: our tiny RNN-T on the tiny TTS corpus, and a
classifier on torchaudio's Conformer (attention, convolutions, norms) on random data, to show
the methods do not depend on our module.

    python tests/pruning_harness.py MANIFEST OUT_DIR METHOD   # 2-process CPU DDP run
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchaudio.models import Conformer

from experiments.metrics import JsonlLogger
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.data.datamodule import SpeechDataModule
from lightning_modules.data.manifest import read_manifest
from lightning_modules.data.tokenizer import CharTokenizer
from lightning_modules.data.validation import validate_corpus
from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.schedules import SparsitySchedule


class ConformerClassifier(pl.LightningModule):
    """Sequence classification with torchaudio's Conformer, on fixed random data."""

    def __init__(self, batches: int = 4) -> None:
        super().__init__()
        self.encoder = Conformer(
            input_dim=16, num_heads=2, ffn_dim=32, num_layers=2, depthwise_conv_kernel_size=3
        )
        self.head = nn.Linear(16, 4)
        generator = torch.Generator().manual_seed(0)
        count = 8 * batches
        self.data = TensorDataset(
            torch.randn(count, 20, 16, generator=generator),
            torch.randint(0, 4, (count,), generator=generator),
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        features, labels = batch
        lengths = torch.full((len(features),), features.shape[1])
        encoded, _ = self.encoder(features, lengths)
        loss = nn.functional.cross_entropy(self.head(encoded.mean(1)), labels)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=8)


def tiny_rnnt(max_steps: int) -> RNNTSpeechRecognizer:
    torch.manual_seed(0)
    return RNNTSpeechRecognizer(
        model=model_config("tiny").model_dump(), learning_rate=0.01, max_steps=max_steps
    )


def tiny_data(manifest: Path) -> SpeechDataModule:
    return SpeechDataModule(
        validate_corpus(read_manifest(manifest)), CharTokenizer(), max_batch_seconds=20
    )


def schedule(final: float = 0.7, start: int = 2, end: int = 8, every: int = 2) -> SparsitySchedule:
    return SparsitySchedule(final=final, start=start, end=end, every=every)


def make_method(name: str, sched: SparsitySchedule, **options: Any) -> pl.Callback:
    return METHODS[name](sched, **options)


def fit(
    module: pl.LightningModule,
    callbacks: Sequence[pl.Callback],
    max_steps: int,
    data: pl.LightningDataModule | None = None,
    metrics: Path | None = None,
    ckpt_path: Path | None = None,
    **trainer: Any,
) -> pl.Trainer:
    """Fit on CPU without validation; metrics go to a JSONL file when `metrics` is given."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": 1,
        "deterministic": True,
        "use_distributed_sampler": False,
        "logger": JsonlLogger(metrics) if metrics else False,
        **trainer,
    }
    pl.seed_everything(0, verbose=False)
    runner = pl.Trainer(callbacks=list(callbacks), **options)
    runner.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return runner


class SaveMasks(pl.Callback):
    """Writes each rank's masks at the end of fit, for the DDP test to compare."""

    def __init__(self, method: pl.Callback, out_dir: Path) -> None:
        self.method, self.out_dir = method, out_dir

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        masks = {name: mask.cpu() for name, mask in self.method.masks.items()}
        torch.save(masks, self.out_dir / f"masks-rank{trainer.global_rank}.pt")


def main(manifest: str, out_dir: str, method_name: str) -> None:
    out = Path(out_dir)
    method = make_method(method_name, schedule(final=0.6, start=1, end=5, every=2))
    fit(
        tiny_rnnt(8),
        [method, SaveMasks(method, out)],
        max_steps=8,
        data=tiny_data(Path(manifest)),
        metrics=out / "metrics.jsonl",
        devices=2,
        strategy="ddp",
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
