"""The one loader of saved recognizers: a Lightning checkpoint or a packed sparse file
(`csp export`) back into the `RNNTSpeechRecognizer` it describes, like
`load_from_checkpoint`, checked before any weight is loaded (its hyper-parameters, every
tensor's shape, and the sparsity pattern the file records). Evaluation, transcription and
`csp bench` load models through it."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.pruning.saved import (
    SavedFileError,
    SavedWeights,
    read_saved,
    weights_problems,
)

MAX_LISTED_MISMATCHES = 3


class ModelFileError(SavedFileError):
    """A saved file whose hyper-parameters or weights do not make the model it describes."""


def recognizer_for(saved: SavedWeights) -> RNNTSpeechRecognizer:
    """A recognizer of the shape the saved hyper-parameters describe (weights not loaded)."""
    if "model" not in saved.hyper_parameters:
        raise ModelFileError(
            f"{saved.path}: no RNNTSpeechRecognizer hyper-parameters in the {saved.kind} file"
        )
    try:
        return RNNTSpeechRecognizer(**saved.hyper_parameters)
    except (TypeError, ValueError, ValidationError) as error:
        first = str(error).strip().splitlines()[0]
        raise ModelFileError(
            f"{saved.path}: its hyper-parameters do not describe an RNNTSpeechRecognizer ({first})"
        ) from None


def load_weights(module: RNNTSpeechRecognizer, saved: SavedWeights) -> None:
    """The saved weights into `module`, strictly, as `load_from_checkpoint` does. Refuses,
    naming the file and tensors, weights that do not fit the module's shape and prunable
    tensors that break the sparsity pattern the file records."""
    problems = weights_problems(module.state_dict(), saved.state_dict)
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_MISMATCHES])
        more = len(problems) - MAX_LISTED_MISMATCHES
        raise ModelFileError(
            f"{saved.path}: the weights do not fit the model "
            f"({len(problems)} tensor(s): {listed}{f'; ... and {more} more' if more > 0 else ''})"
        )
    broken = saved.pattern_breaks()
    if broken:
        raise ModelFileError(
            f"{saved.path}: its recorded pattern {saved.pattern} does not hold on {broken[0]}"
            f"{f' and {len(broken) - 1} more tensor(s)' if len(broken) > 1 else ''}"
        )
    module.load_state_dict(saved.state_dict, strict=True)


def load_recognizer(path: str | Path) -> tuple[RNNTSpeechRecognizer, SavedWeights]:
    """The recognizer saved in `path`, in eval mode on the CPU, and what the file holds.

    Raises `SavedFileError` naming the file for a missing or foreign file, one without the
    recognizer's hyper-parameters, or weights that do not fit the model they describe.
    """
    saved = read_saved(path)
    module = recognizer_for(saved)
    load_weights(module, saved)
    return module.eval(), saved
