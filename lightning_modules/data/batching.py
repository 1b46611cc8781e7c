"""Batching by audio duration, reproducible per (seed, epoch) and resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler


class DurationBatchSampler(Sampler[list[int]]):
    """Groups utterances of similar length into batches of at most `max_batch_seconds` of
    padded audio, so little compute goes to padding.

    Batches are fixed once (sorted by duration); with `shuffle` (training), their order is
    drawn anew each epoch from (seed, epoch) and each DDP rank takes every `num_replicas`-th
    batch, all ranks the same count (the remainder is dropped). The first `sorted_epochs`
    epochs go from the shortest batches to the longest instead ("SortaGrad", Amodei et al.
    2016: short utterances first help the alignment losses leave their blank-only plateau).
    Without it (evaluation), each rank packs every `num_replicas`-th utterance, so nothing is
    dropped and no rank is left empty. `skip_batches` starts the next epoch part-way, for resuming.
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_batch_seconds: float,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        sorted_epochs: int = 0,
    ) -> None:
        if max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {max_batch_seconds}")
        if sorted_epochs < 0:
            raise ValueError(f"sorted_epochs must be >= 0, got {sorted_epochs}")
        self.shuffle = shuffle
        self.sorted_epochs = sorted_epochs
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip_batches = 0
        indices = np.arange(len(durations))
        if not shuffle:
            indices = indices[rank::num_replicas]
        self.batches = self._pack(indices, np.asarray(durations, dtype=float), max_batch_seconds)
        shared = len(self.batches) if shuffle else len(durations)
        if shared < num_replicas:
            unit = "batch(es)" if shuffle else "utterance(s)"
            raise ValueError(
                f"{shared} {unit} cannot be shared by {num_replicas} processes; "
                "lower max_batch_seconds or use fewer devices"
            )

    @staticmethod
    def _pack(
        indices: np.ndarray, durations: np.ndarray, max_batch_seconds: float
    ) -> list[list[int]]:
        order = indices[np.argsort(durations[indices], kind="stable")]
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order.tolist():
            # Sorted ascending: the newest utterance is the longest, so it sets the padding.
            if current and (len(current) + 1) * durations[index] > max_batch_seconds:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_batches(self) -> list[list[int]]:
        if not self.shuffle:
            return self.batches
        order = np.arange(len(self.batches))  # packed shortest first
        if self.epoch >= self.sorted_epochs:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        usable = len(order) - len(order) % self.num_replicas
        return [self.batches[i] for i in order[self.rank : usable : self.num_replicas]]

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip_batches = self.skip_batches, 0
        yield from self._epoch_batches()[skip:]

    def __len__(self) -> int:
        return len(self._epoch_batches())


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Lightning stores `state_dict()` of stateful train loaders and hands it back before the
    resumed epoch starts. The position is the number of batches the training loop has
    finished (`batches_done`), not what the loader has prefetched, so it is exact.
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "batches_done": self._batches_done()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.set_epoch(state["epoch"])
        self.batch_sampler.skip_batches = state["batches_done"]
