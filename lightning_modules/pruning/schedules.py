"""Sparsity schedules: the target sparsity as a function of the optimizer step.

Targets are absolute (the share of each tensor that is zero), never relative to what is left.
The shapes are plain functions; `SparsitySchedule` binds them to a window [start, end] and an
update interval, and validates the numbers once, at construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["one_shot", "linear", "cubic"]


def one_shot_sparsity(progress: float, initial: float, final: float) -> float:
    """Everything at once: the final sparsity from the start of the window."""
    return final


def linear_sparsity(progress: float, initial: float, final: float) -> float:
    """A straight ramp from `initial` to `final` over the window."""
    return initial + (final - initial) * progress


def cubic_sparsity(progress: float, initial: float, final: float) -> float:
    """Zhu & Gupta 2017, "To prune, or not to prune": s_f + (s_i − s_f)(1 − progress)³.

    Prunes fast early, when there are many redundant weights, and slowly near the end.
    """
    return final + (initial - final) * (1.0 - progress) ** 3


SHAPES: dict[str, Callable[[float, float, float], float]] = {
    "one_shot": one_shot_sparsity,
    "linear": linear_sparsity,
    "cubic": cubic_sparsity,
}


def kept_count(numel: int, sparsity: float) -> int:
    """How many of `numel` weights stay non-zero at `sparsity`: N − ⌊s·N⌋."""
    return numel - math.floor(sparsity * numel)


@dataclass(frozen=True, kw_only=True)
class SparsitySchedule:
    """Target sparsity s(t) on the optimizer-step clock.

    Before `start`: `initial` sparsity, with no pruning at all when it is 0. Masks are updated at
    `start`, every `every` steps after it, and at `end`, where s = `final`; from `end` on the
    masks are frozen and training only fine-tunes. `one_shot` prunes once, at `start`.
    """

    final: float
    start: int = 0
    end: int
    every: int = 10
    kind: ScheduleKind = "cubic"
    initial: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SHAPES:
            raise ValueError(f"schedule kind must be one of {sorted(SHAPES)}, got {self.kind!r}")
        for field in ("final", "initial"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and 0.0 <= value < 1.0):
                raise ValueError(f"{field} sparsity must lie in [0, 1), got {value!r}")
        if self.initial > self.final:
            raise ValueError(f"initial sparsity {self.initial} exceeds final {self.final}")
        for field in ("start", "end", "every"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"schedule {field} must be a non-negative integer, got {value!r}")
        if self.every < 1:
            raise ValueError(f"schedule update interval `every` must be ≥ 1, got {self.every}")
        if self.kind != "one_shot" and self.end <= self.start:
            raise ValueError(f"schedule end (t1={self.end}) must be after start (t0={self.start})")

    @property
    def last_update(self) -> int:
        """The step of the last mask update: `end`, or `start` for one-shot pruning."""
        return self.start if self.kind == "one_shot" else self.end

    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed at `step`."""
        if self.kind == "one_shot":
            return step == self.start
        return step == self.end or (
            self.start <= step < self.end and (step - self.start) % self.every == 0
        )

    def target(self, step: int) -> float:
        """The sparsity in force at `step`: the value at the latest update step ≤ `step`."""
        if step < self.start:
            return self.initial
        if step >= self.last_update:
            return self.final
        latest = self.start + (step - self.start) // self.every * self.every
        progress = (latest - self.start) / (self.end - self.start)
        return SHAPES[self.kind](progress, self.initial, self.final)
