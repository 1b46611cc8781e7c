"""Saved models as this project reads them: a Lightning checkpoint (`.ckpt`) or a packed file
(`packing`), with their weights, hyper-parameters and which tensors are prunable.

Which sparsity pattern they were pruned in: the pruning callback's state (`pattern`) or the
packed metadata, else unstructured.

Which tensors are prunable: the names recorded with the weights (the masks in a pruning
callback's checkpoint state, found by its `state_key`; `prunable` in a packed file's
metadata), else the default rule by name (`DEFAULT_RULE`).

Every checkpoint a user names is read here (`load_checkpoint`), as weights only: a file from
elsewhere runs no code.
"""

from __future__ import annotations

import fnmatch
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightning_modules.pruning.base import is_pruning_state_key
from lightning_modules.pruning.packing import PackedFormatError, is_packed_file, load_packed
from lightning_modules.pruning.sparsity_patterns import UNSTRUCTURED, parse_pattern

DEFAULT_RULE = (
    "default name rule: floating tensors of >= 2 dims named *.weight, *weight_ih_l*, "
    "*weight_hh_l*, *weight_hr_l* or *in_proj_weight, without 'embedding' or 'norm' in the name"
)
_PRUNABLE_PATTERNS = (
    "*.weight",
    "*weight_ih_l*",
    "*weight_hh_l*",
    "*weight_hr_l*",
    "*in_proj_weight",
)


class SavedFileError(ValueError):
    """A file that is missing, or neither a Lightning checkpoint nor a packed weights file."""


@dataclass
class SavedWeights:
    """The weights of a saved model with what is known about them."""

    path: Path
    kind: str  # "checkpoint" or "packed"
    state_dict: dict[str, torch.Tensor]
    hyper_parameters: dict[str, Any]
    prunable: list[str]
    prunable_rule: str
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    pattern: str = UNSTRUCTURED

    def pattern_breaks(self) -> list[str]:
        """Prunable tensors whose non-zeros break the recorded pattern (none for a sound file)."""
        pattern = parse_pattern(self.pattern)
        return [
            name for name in self.prunable if pattern.violations(self.state_dict[name] != 0) > 0
        ]


def weights_problems(
    expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]
) -> list[str]:
    """What keeps `state_dict` from loading strictly into a model whose state dict is
    `expected`: names and shapes, one line per tensor."""
    problems = [
        f"{name}: shape {tuple(tensor.shape)} in the file, {tuple(expected[name].shape)} "
        "in the model"
        for name, tensor in state_dict.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    problems += [f"{name}: missing from the file" for name in expected if name not in state_dict]
    problems += [f"{name}: not in the model" for name in state_dict if name not in expected]
    return problems


def default_prunable(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Names the default rule (`DEFAULT_RULE`) considers prunable, for files that record none."""
    return [
        name
        for name, tensor in state_dict.items()
        if tensor.dim() >= 2
        and tensor.is_floating_point()
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in _PRUNABLE_PATTERNS)
        and "embedding" not in name
        and "norm" not in name
    ]


def _pruning_states(path: Path, checkpoint: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The states saved by pruning callbacks (under their `state_key`), each with masks."""
    states = []
    callbacks = checkpoint.get("callbacks") or {}
    for key, state in callbacks.items() if isinstance(callbacks, Mapping) else ():
        if not is_pruning_state_key(key):
            continue
        if not isinstance(state, Mapping) or not isinstance(state.get("masks"), Mapping):
            raise SavedFileError(f"{path}: the pruning state {key} holds no masks")
        states.append(state)
    return states


def _recorded_pattern(path: Path, recorded: object) -> str:
    if recorded is None:
        return UNSTRUCTURED
    try:
        return parse_pattern(recorded).spec  # type: ignore[arg-type]
    except ValueError as error:
        raise SavedFileError(f"{path}: recorded pattern: {error}") from None


def _needed_global(error: Exception) -> str | None:
    """The global (a class or function) that torch's weights-only unpickler refused to
    import for a file, or None for an error of another kind (a file that is no pickle)."""
    if not isinstance(error, pickle.UnpicklingError):
        return None
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return found.group(1) if found else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict saved in a Lightning checkpoint, for everything that reads one a user names
    (`read_saved`, a run's `init_from` and `--resume`).

    Loads weights only (tensors and plain data): unpickling anything else could run code
    from the file. Raises `SavedFileError` naming the file for one that needs more, one that
    cannot be read, or one that is not a checkpoint.
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise SavedFileError(f"{path}: cannot read ({error.strerror})") from error
    except Exception as error:  # pickle, zip and torch raise many kinds for a foreign file
        needed = _needed_global(error)
        if needed is not None:
            raise SavedFileError(
                f"{path}: refused: it needs {needed} to load, and loading more than tensors "
                "and plain data could run code from the file"
            ) from None
        raise SavedFileError(
            f"{path}: not a Lightning checkpoint or packed weights file "
            f"(torch.load, weights only: {type(error).__name__})"
        ) from error
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise SavedFileError(f"{path}: not a Lightning checkpoint (it has no state_dict)")
    return dict(checkpoint)


def _check_names(
    path: Path, state_dict: Mapping[str, torch.Tensor], names: Iterable[str], source: str
) -> None:
    absent = [name for name in names if name not in state_dict]
    if absent:
        raise SavedFileError(f"{path}: {source} name tensors absent from the weights: {absent[:5]}")


def read_saved(path: str | Path) -> SavedWeights:
    """The weights, hyper-parameters and prunable names of a checkpoint or packed file.

    Raises `SavedFileError` (naming the file) for a missing file or one of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise SavedFileError(f"{path}: {'not a file' if path.exists() else 'file not found'}")
    try:
        packed = is_packed_file(path)
    except OSError as error:
        raise SavedFileError(f"{path}: cannot read ({error.strerror})") from error
    if packed:
        try:
            state_dict, metadata = load_packed(path)
        except PackedFormatError as error:
            raise SavedFileError(f"{path}: {error}") from error
        recorded = metadata.get("prunable")
        _check_names(path, state_dict, recorded or [], "the packed metadata's prunable list")
        return SavedWeights(
            path,
            "packed",
            state_dict,
            dict(metadata.get("hyper_parameters") or {}),
            list(recorded) if recorded else default_prunable(state_dict),
            "packed metadata" if recorded else DEFAULT_RULE,
            metadata=metadata,
            pattern=_recorded_pattern(path, metadata.get("pattern")),
        )
    checkpoint = load_checkpoint(path)
    state_dict = dict(checkpoint["state_dict"])
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise SavedFileError(f"{path}: state_dict entry {name!r} is not a tensor")
    states = _pruning_states(path, checkpoint)
    masks = {name: mask for state in states for name, mask in state["masks"].items()}
    patterns = {_recorded_pattern(path, state.get("pattern")) for state in states}
    _check_names(path, state_dict, masks, "the pruning masks")
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or mask.shape != state_dict[name].shape:
            raise SavedFileError(f"{path}: the pruning mask of {name} does not fit its tensor")
    order = [name for name in state_dict if name in masks]
    return SavedWeights(
        path,
        "checkpoint",
        state_dict,
        dict(checkpoint.get("hyper_parameters") or {}),
        order if masks else default_prunable(state_dict),
        "checkpoint pruning masks" if masks else DEFAULT_RULE,
        masks={name: masks[name] for name in order},
        metadata={"global_step": checkpoint.get("global_step")},
        pattern=patterns.pop() if len(patterns) == 1 else UNSTRUCTURED,
    )
