import numpy as np
import pytest

from lightning_modules.data.batching import DurationBatchSampler

DURATIONS = np.random.default_rng(0).uniform(1.0, 6.0, size=97).tolist()


def test_batches_respect_padded_budget_and_cover_everything() -> None:
    sampler = DurationBatchSampler(DURATIONS, max_batch_seconds=20.0, shuffle=True, seed=3)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(DURATIONS)))
    for batch in batches:
        longest = max(DURATIONS[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 20.0


def test_order_depends_only_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[list[int]]:
        sampler = DurationBatchSampler(DURATIONS, 20.0, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


def test_ranks_get_disjoint_equal_shares() -> None:
    shares = [
        list(DurationBatchSampler(DURATIONS, 20.0, shuffle=True, seed=0, num_replicas=2, rank=r))
        for r in range(2)
    ]
    assert len(shares[0]) == len(shares[1])
    flat = [i for share in shares for batch in share for i in batch]
    assert len(flat) == len(set(flat))


def test_evaluation_shards_drop_nothing() -> None:
    shares = [
        list(DurationBatchSampler(DURATIONS, 20.0, shuffle=False, num_replicas=3, rank=r))
        for r in range(3)
    ]
    flat = sorted(i for share in shares for batch in share for i in batch)
    assert flat == list(range(len(DURATIONS)))


def test_skip_resumes_part_way_once() -> None:
    sampler = DurationBatchSampler(DURATIONS, 20.0, shuffle=True, seed=0)
    full = list(sampler)
    sampler.skip_batches = 3
    assert list(sampler) == full[3:]
    assert list(sampler) == full


def test_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="max_batch_seconds must be > 0"):
        DurationBatchSampler(DURATIONS, 0, shuffle=True)
    with pytest.raises(ValueError, match="cannot be shared by 500 processes"):
        DurationBatchSampler(DURATIONS, 20.0, shuffle=True, num_replicas=500)


def test_sorted_epochs_go_shortest_first_then_shuffle() -> None:
    """SortaGrad: the first `sorted_epochs` epochs in order of duration, on every rank."""
    for rank in (0, 1):
        sampler = DurationBatchSampler(
            DURATIONS, 20.0, shuffle=True, seed=3, num_replicas=2, rank=rank, sorted_epochs=2
        )
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            longest = [max(DURATIONS[i] for i in batch) for batch in sampler]
            assert longest == sorted(longest)
        sampler.set_epoch(2)
        longest = [max(DURATIONS[i] for i in batch) for batch in sampler]
        assert longest != sorted(longest)
    with pytest.raises(ValueError, match="sorted_epochs must be >= 0, got -1"):
        DurationBatchSampler(DURATIONS, 20.0, shuffle=True, sorted_epochs=-1)
