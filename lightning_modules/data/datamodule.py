"""The LightningDataModule serving a validated corpus as padded waveform batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import soundfile
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.data.batching import DurationBatchSampler, ResumableDataLoader
from lightning_modules.data.manifest import CorpusError, Utterance
from lightning_modules.data.tokenizer import Tokenizer

Batch = dict[str, Any]


class SpeechDataset(Dataset):
    """Reads one utterance's audio on demand and tokenizes its (normalized) transcript."""

    def __init__(self, utterances: Sequence[Utterance], tokenizer: Tokenizer) -> None:
        self.utterances = list(utterances)
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict[str, Any]:
        utterance = self.utterances[index]
        return {
            "id": utterance.id,
            "audio": torch.from_numpy(read_audio(utterance)),
            "text": utterance.text,
            "tokens": torch.tensor(self.tokenizer.encode(utterance.text), dtype=torch.long),
        }


def read_audio(utterance: Utterance) -> np.ndarray:
    """The utterance's samples (float32): its whole file, or only its segment."""
    try:
        with soundfile.SoundFile(str(utterance.audio)) as audio:
            start, stop = utterance.frame_span(audio.samplerate)
            if start:
                audio.seek(start)
            frames = -1 if stop is None else stop - start
            return audio.read(frames, dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise CorpusError(f"{utterance.audio}: unreadable audio ({error})") from None


def collate(items: list[dict[str, Any]]) -> Batch:
    """Pad waveforms and token sequences; keep ids and texts for scoring."""
    pad = torch.nn.utils.rnn.pad_sequence
    return {
        "ids": [item["id"] for item in items],
        "texts": [item["text"] for item in items],
        "audio": pad([item["audio"] for item in items], batch_first=True),
        "audio_lengths": torch.tensor([len(item["audio"]) for item in items]),
        "tokens": pad([item["tokens"] for item in items], batch_first=True),
        "token_lengths": torch.tensor([len(item["tokens"]) for item in items]),
    }


class SpeechDataModule(pl.LightningDataModule):
    """Train/dev/test loaders over a corpus that `validate_corpus` has already checked.

    The train loader is resumable mid-epoch and draws no global random numbers (its
    generator is seeded), so a resumed run sees exactly the batches an uninterrupted one does.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        tokenizer: Tokenizer,
        max_batch_seconds: float = 60.0,
        num_workers: int = 0,
        seed: int = 0,
        sorted_epochs: int = 0,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.sorted_epochs = sorted_epochs
        self.max_batch_seconds = max_batch_seconds
        self.num_workers = num_workers
        self.seed = seed
        self.splits = {
            split: [u for u in utterances if u.split == split] for split in ("train", "dev", "test")
        }

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        utterances = self.splits[split]
        distributed = self.trainer is not None and self.trainer.world_size > 1
        sampler = DurationBatchSampler(
            [u.duration for u in utterances],
            self.max_batch_seconds,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=self.trainer.world_size if distributed else 1,
            rank=self.trainer.global_rank if distributed else 0,
            sorted_epochs=self.sorted_epochs,
        )
        options = dict(
            dataset=SpeechDataset(utterances, self.tokenizer),
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
        if split == "train":
            return ResumableDataLoader(**options, batches_done=self._train_batches_done)
        return DataLoader(**options)

    def _train_batches_done(self) -> int:
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def calibration_batches(self, count: int, seed: int) -> list[Batch]:
        """`count` training batches drawn by `seed` (never dev or test), the same on every rank
        and at every point of training: the calibration set of data-aware pruning."""
        utterances = self.splits["train"]
        sampler = DurationBatchSampler(
            [u.duration for u in utterances], self.max_batch_seconds, shuffle=True, seed=seed
        )
        dataset = SpeechDataset(utterances, self.tokenizer)
        chosen = list(sampler)[:count]
        return [collate([dataset[index] for index in batch]) for batch in chosen]

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
