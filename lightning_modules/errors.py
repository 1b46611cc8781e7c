"""Pydantic's validation errors as text a user can act on, for every layer: one problem per
invalid field, by its dotted path, with the value given."""

from __future__ import annotations

from pydantic import ValidationError


def field_problems(error: ValidationError, with_input: bool = True) -> list[str]:
    """`loc.of.field: message (got value)` per invalid field (no value for a missing one)."""
    return [
        f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}"
        + (f" (got {e['input']!r})" if with_input and e["type"] != "missing" else "")
        for e in error.errors()
    ]
