"""The options every pruning method shares, declared and validated once, and the checks a
method's own options use.

A method's constructor takes the schedule, its own options (keyword-only), and the shared ones
as `**shared: Unpack[SharedOptions]`, handed on to `SparsePruning`, which validates them into
`Shared`:

    def __init__(self, schedule, *, strength: float = 1.0, **shared: Unpack[SharedOptions]):
        super().__init__(schedule, **shared)
        self.strength = positive_number("strength", strength)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.sparsity_patterns import SparsityPattern, parse_pattern


class SharedOptions(TypedDict, total=False):
    """What every method accepts besides its schedule (the keywords of `Shared`)."""

    include: Sequence[str]
    exclude: Sequence[str]
    seed: int
    pattern: str


@dataclass(frozen=True, kw_only=True)
class Shared:
    """The shared options, checked.

    Args:
        include: glob patterns on full tensor names to prune (empty: the default set).
        exclude: glob patterns on full tensor names to leave dense.
        seed: seeds every random choice of the method (random masks, sensing matrices,
            calibration batches).
        pattern: where kept entries may lie: `unstructured`, N:M like `2:4`, blocks like `4x4`.
    """

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    seed: int = 0
    pattern: str = "unstructured"

    def __post_init__(self) -> None:
        for field in ("include", "exclude"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise TypeError(f"{field} must be a list of glob patterns, got {value!r}")
            object.__setattr__(self, field, tuple(value))
        integer("seed", self.seed)

    @property
    def sparsity_pattern(self) -> SparsityPattern:
        return parse_pattern(self.pattern)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))


def check_schedule(schedule: object) -> SparsitySchedule:
    if not isinstance(schedule, SparsitySchedule):
        raise TypeError(f"schedule must be a SparsitySchedule, got {type(schedule).__name__}")
    return schedule


def check_pattern_reaches(pattern: SparsityPattern, final: float) -> None:
    """Refuse a pattern whose least sparsity lies above the target (2:4 is at least 0.5
    sparse): the run would silently end sparser than asked."""
    cap = pattern.density_cap
    if final < 1 - cap:
        raise ValueError(
            f"pattern {pattern.spec} keeps at most {cap:.0%} of each tensor: sparsity "
            f"{final:g} must be at least {1 - cap:g}"
        )


def integer(name: str, value: object, minimum: int = 0) -> int:
    """`value` as an option that must be an integer ≥ `minimum` (a bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return value


def number(name: str, value: object, minimum: float = 0.0, infinite: bool = False) -> float:
    """`value` as an option that must be a number ≥ `minimum` (infinity only if allowed)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= minimum:
        bound = "a non-negative number" if minimum == 0 else f"a number ≥ {minimum:g}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if math.isinf(value) and not infinite:
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
