"""Turning encoder output into token sequences: batched greedy search and beam search."""

from __future__ import annotations

import torch
from torchaudio.models import RNNT, RNNTBeamSearch


@torch.no_grad()
def greedy_decode(
    model: RNNT,
    features: torch.Tensor,
    lengths: torch.Tensor,
    blank: int,
    max_symbols_per_frame: int = 5,
) -> list[list[int]]:
    """Greedy RNN-T search over a whole batch at once.

    At each encoder frame, emit the best token and advance the prediction network for the
    utterances that emitted; move to the next frame when blank wins (or after
    `max_symbols_per_frame` tokens, which bounds the loop on untrained models).
    """
    encoded, encoded_lengths = model.transcribe(features, lengths)
    batch = encoded.shape[0]
    device = encoded.device
    ones = torch.ones(batch, dtype=torch.long, device=device)
    previous = torch.full((batch, 1), blank, dtype=torch.long, device=device)
    predicted, _, state = model.predict(previous, ones, None)
    hypotheses: list[list[int]] = [[] for _ in range(batch)]
    for t in range(encoded.shape[1]):
        active = t < encoded_lengths
        for _ in range(max_symbols_per_frame):
            logits, _, _ = model.join(encoded[:, t : t + 1], ones, predicted, ones)
            best = logits[:, 0, 0].argmax(-1)
            emit = active & (best != blank)
            if not emit.any():
                break
            for b in emit.nonzero().flatten().tolist():
                hypotheses[b].append(int(best[b]))
            new_predicted, _, new_state = model.predict(best[:, None], ones, state)
            keep = emit[:, None]
            predicted = torch.where(keep[:, :, None], new_predicted, predicted)
            state = [
                [torch.where(keep, new, old) for new, old in zip(new_layer, old_layer, strict=True)]
                for new_layer, old_layer in zip(new_state, state, strict=True)
            ]
    return hypotheses


@torch.no_grad()
def beam_search_decode(
    model: RNNT, features: torch.Tensor, lengths: torch.Tensor, blank: int, beam_width: int
) -> list[list[int]]:
    """Beam search with torchaudio's `RNNTBeamSearch`, one utterance at a time."""
    search = RNNTBeamSearch(model, blank)
    hypotheses = []
    for utterance, length in zip(features, lengths, strict=True):
        best = search(utterance[None, :length], length[None], beam_width)[0]
        hypotheses.append([token for token in best[0] if token != blank])
    return hypotheses
