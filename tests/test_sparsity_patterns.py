"""Sparsity patterns: every selection satisfies its constraint, every method prunes in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pruning_harness import fit, make_method, schedule, tiny_data, tiny_rnnt
from test_pruning import ENGINE_METHODS

from experiments.config import PruningSection
from lightning_modules.pruning.sparsity_patterns import as_rows, parse_pattern

PATTERNS = ["2:4", "1:4", "4:8", "1x4", "4x4", "16x16"]
PATTERN_TOLERANCE = 0.03
"""How far a method's realized sparsity may land from its target: whole blocks and groups."""


def n_of_m_holds(mask: torch.Tensor, n: int, m: int) -> bool:
    """The constraint written out directly: at most n kept in every m inputs of a row."""
    rows = as_rows(mask)
    return all(
        int(rows[r, start : start + m].sum()) <= n
        for r in range(rows.shape[0])
        for start in range(0, rows.shape[1], m)
    )


def blocks_hold(mask: torch.Tensor, height: int, width: int) -> bool:
    rows = as_rows(mask)
    for r in range(0, rows.shape[0], height):
        for c in range(0, rows.shape[1], width):
            block = rows[r : r + height, c : c + width]
            if 0 < int(block.sum()) < block.numel():
                return False
    return True


def holds(spec: str, mask: torch.Tensor) -> bool:
    if ":" in spec:
        return n_of_m_holds(mask, *map(int, spec.split(":")))
    return blocks_hold(mask, *map(int, spec.split("x")))


@pytest.mark.parametrize("spec", PATTERNS)
@pytest.mark.parametrize("shape", [(64, 48), (30, 37), (8, 3, 5)])
def test_selection_holds_the_pattern_and_keeps_pruned_entries_pruned(spec, shape) -> None:
    pattern = parse_pattern(spec)
    generator = torch.Generator().manual_seed(len(spec) + sum(shape))
    scores = torch.randn(shape, generator=generator)
    numel = scores.numel()
    for sparsity in (0.5, 0.8, 0.9):
        k = round((1 - sparsity) * numel)
        mask = pattern.select(scores, k)
        assert mask.shape == scores.shape
        assert holds(spec, mask) and pattern.violations(mask) == 0
        if ":" in spec:  # N:M keeps exactly k up to its cap
            n, m = map(int, spec.split(":"))
            rows, width = as_rows(mask).shape
            cap = rows * (width // m * n + min(n, width % m))
            assert int(mask.sum()) == min(k, cap)
        later = pattern.select(scores, k // 2, alive=mask)
        assert not bool((later & ~mask).any())  # masks only grow
        assert holds(spec, later)
    # the kept entries score higher than the pruned ones (a tensor of one block aside)
    mask = pattern.select(scores.abs(), numel // 4)
    if mask.any():
        assert scores.abs()[mask].mean() > scores.abs()[~mask].mean()


def test_n_of_m_keeps_the_largest_n_in_each_group_at_its_cap() -> None:
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 0.6, 0.7, 0.8]])
    mask = parse_pattern("2:4").select(scores, 4)
    assert mask.tolist() == [[True, False, True, False, False, False, True, True]]
    assert parse_pattern("2:4").select(scores, 8).sum() == 4  # capped at N/M


def test_violations_count_broken_groups() -> None:
    mask = torch.tensor([[True, True, True, False, True, False, False, False]])
    assert parse_pattern("2:4").violations(mask) == 1
    assert parse_pattern("1x4").violations(mask) == 2
    assert parse_pattern("1x4").violations(torch.ones(3, 8, dtype=torch.bool)) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("4:4", "N:M needs 1 <= N < M"),
        ("0:2", "N:M needs 1 <= N < M"),
        ("1x1", "H\\*W >= 2"),
        ("diagonal", "unknown pattern 'diagonal'"),
    ],
)
def test_bad_patterns_are_named(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pattern(spec)


def section(**fields) -> dict:
    return {"method": "gmp", "sparsity": 0.8, "schedule": {"start": 0, "end": 10}, **fields}


def test_config_refuses_impossible_patterns() -> None:
    with pytest.raises(ValueError, match="unknown pattern '3-4'"):
        PruningSection.model_validate(section(pattern="3-4"))
    with pytest.raises(ValueError, match="pattern 1:4 keeps at most 25% .* at least 0.75"):
        PruningSection.model_validate(section(pattern="1:4", sparsity=0.5))
    with pytest.raises(ValueError, match="model_pruning runs Lightning's L1 unstructured"):
        PruningSection.model_validate(section(method="model_pruning", pattern="2:4"))
    with pytest.raises(ValueError, match="block_size 100 must be a multiple of pattern '1x8'"):
        PruningSection.model_validate(
            section(method="sparsegpt", pattern="1x8", options={"block_size": 100})
        )
    assert PruningSection.model_validate(section(pattern="4x4")).build(0).pattern.spec == "4x4"


@pytest.mark.parametrize("spec", PATTERNS)
@pytest.mark.parametrize("name", ENGINE_METHODS)
def test_every_method_reaches_its_target_in_every_pattern(
    name: str, spec: str, tiny_corpus: Path
) -> None:
    """Every tensor holds the pattern and the prunable set lands on the target sparsity
    (Narang's threshold included: it once overshot, 0.60 for 2:4 at 0.5)."""
    method = make_method(name, schedule(final=0.75, start=1, end=5, every=2), pattern=spec)
    module = tiny_rnnt(7)
    fit(module, [method], max_steps=7, data=tiny_data(tiny_corpus))
    total = kept = 0
    for tensor in method.tensors:
        nonzero = tensor.parameter.detach() != 0  # the trained weights, not the callback's view
        assert holds(spec, nonzero), f"{name} {spec}: {tensor.name} breaks the pattern"
        total, kept = total + nonzero.numel(), kept + int(nonzero.sum())
    realized = 1 - kept / total
    assert realized == pytest.approx(0.75, abs=PATTERN_TOLERANCE), f"{name} {spec}: {realized:.3f}"
