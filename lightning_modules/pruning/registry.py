"""The registry of pruning methods: everything configs, sweeps, tables and figures know about a
method comes from its class.

A method is a Lightning callback class with five facts as class attributes and its options
as keyword-only arguments of `__init__`, the shared ones (`include`, `exclude`, `seed`,
`pattern`: `options.SharedOptions`) handed on to the base:

    @register
    class MyPruning(SparsePruning):
        name = "mine"                    # the key of configs, grids, sweeps and cell folders
        title = "My pruning"             # its row in the paper table and its figure legend
        role = Role.BASELINE             # where it stands in the comparison
        citation = "Author et al., Title, Venue (Year)"
        color = "#1f77b4"                # its colour in every figure

        def __init__(self, schedule, *, strength: float = 1.0, **shared: Unpack[SharedOptions]):
            super().__init__(schedule, **shared)
            self.strength = number("strength", strength)

A method may also take options that only Python code passes (objects such as a DataLoader):
it lists them in `code_options`, and configs never see them.

A *control* (role `control`) is registered the same way but is not a pruning callback: a
model trained without pruning that the table compares the methods with (Zhu & Gupta's small
dense model, `experiments/small_dense.py`). It lands in `CONTROLS`, not in `METHODS`, so
configs, sweeps and the engine never take it for a method; tables, legends and figures find
either with `registered(name)`.

Optional facts: `option_phrases` ({(option, value): "how a variant with it reads in a table"})
and, for the proposed method, `about` (paragraphs a report shows before its tables).

Adding a method is one new module in `lightning_modules/pruning/methods/` (found and imported
by that package) or any module the user imports before building configs.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from lightning_modules.pruning.options import Shared


class Role(StrEnum):
    """Where a method stands in the paper comparison."""

    PROPOSED = "proposed"  # the method under study: paired against the best baseline
    BASELINE = "baseline"  # a published pruning method it is compared with
    FLOOR = "floor"  # what every method must beat
    PEER = "peer"  # a tool users already have, run as it ships
    CONTROL = "control"  # no pruning: a dense reference (small dense, dense trained on)


FACTS = ("name", "title", "role", "citation", "color")
COMMON_ARGUMENTS = ("self", "schedule", *Shared.names())
"""Arguments every method takes from the pruning section itself; the rest are its options."""

METHODS: dict[str, type] = {}
"""Method name → class, in registration order."""
CONTROLS: dict[str, type] = {}
"""Control name → class: the registered classes of role `control`."""


def register(cls: type) -> type:
    """Add a method class to `METHODS` (a control to `CONTROLS`), after checking its facts;
    returns the class."""
    missing = [fact for fact in FACTS if not isinstance(cls.__dict__.get(fact), str)]
    if missing:
        raise TypeError(f"{cls.__name__}: a pruning method must set {', '.join(missing)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name):
        raise ValueError(f"{cls.__name__}: name {cls.name!r} must be lower_case letters/digits")
    if cls.role not in set(Role):
        raise ValueError(f"{cls.__name__}: role {cls.role!r} is not one of {[*map(str, Role)]}")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", cls.color):
        raise ValueError(f"{cls.__name__}: color {cls.color!r} must be #rrggbb")
    known = registered(cls.name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {cls.name!r} is taken by {known.__qualname__}")
    (CONTROLS if cls.role == Role.CONTROL else METHODS)[cls.name] = cls
    return cls


def registered(name: str) -> type | None:
    """The registered method or control of that name, if any."""
    return METHODS.get(name) or CONTROLS.get(name)


@functools.cache
def option_schema(method: type) -> type[BaseModel]:
    """A strict pydantic model of the method's options, read from its `__init__` signature:
    unknown options and values of the wrong type are errors naming the option. Built once per
    class (every config validation asks for it)."""
    hints = typing.get_type_hints(method.__init__)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(method.__init__).parameters.items():
        if name in (*COMMON_ARGUMENTS, *getattr(method, "code_options", ())) or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        ):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    return create_model(
        f"{method.__name__}Options",
        __config__=ConfigDict(extra="forbid", ser_json_inf_nan="constants"),
        **fields,
    )


def proposed() -> type | None:
    """The method under study (the registered method of role `proposed`), if any."""
    return next((cls for cls in METHODS.values() if cls.role == Role.PROPOSED), None)


def ordered(roles: typing.Iterable[Role] = tuple(Role)) -> list[type]:
    """Registered methods and controls with one of `roles`: baselines first, then the floor,
    the peers, the proposed method and the controls, each group in registration order (the
    paper table's order)."""
    rank = [Role.BASELINE, Role.FLOOR, Role.PEER, Role.PROPOSED, Role.CONTROL]
    chosen = [cls for cls in [*METHODS.values(), *CONTROLS.values()] if cls.role in set(roles)]
    return sorted(chosen, key=lambda cls: rank.index(cls.role))
