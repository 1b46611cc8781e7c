"""Rebuild the RNN-T recognizer from a packed sparse file (`csp export`), like
`load_from_checkpoint` does from a Lightning checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.pruning.packing import load_packed


def load_packed_module(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> RNNTSpeechRecognizer:
    """The module with the file's hyper-parameters and exactly its weights, in eval mode.

    Raises `ValueError` when the file carries no hyper-parameters (it was packed from a bare
    state dict) and, like `load_state_dict(strict=True)`, when the weights do not fit.
    """
    state_dict, metadata = load_packed(path)
    hyper_parameters = metadata.get("hyper_parameters")
    if not hyper_parameters or "model" not in hyper_parameters:
        raise ValueError(f"{path}: no RNNTSpeechRecognizer hyper-parameters in its metadata")
    module = RNNTSpeechRecognizer(**hyper_parameters)
    module.load_state_dict(state_dict, strict=True)
    return module.to(map_location).eval()
