"""Turning encoder output into token sequences: batched greedy search and beam search."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchaudio.models import RNNT

from lightning_modules.asr.language_model import CharNGramLM, Lexicon
from lightning_modules.asr.rnnt import PredictorState


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


@dataclass(frozen=True)
class ShallowFusion:
    """A character LM added to the RNN-T scores in beam search (shallow fusion, Gulcehre et
    al. 2015; for RNN-T e.g. Kannan et al. 2018): each emitted character adds `weight` ×
    log P_LM(character | text so far) and `length_bonus`, the end of the hypothesis adds
    `weight` × log P_LM(end | text). The bonus offsets the LM's cost per character, which
    would otherwise favour deletions."""

    lm: CharNGramLM
    weight: float
    length_bonus: float = 0.0
    lexicon: Lexicon | None = None


@dataclass
class _Hypothesis:
    tokens: tuple[int, ...]
    text: str
    score: float
    row: int
    """Its predictor output and state: a row of the search's state tensors."""


class _PredictorRows:
    """Prediction-network outputs and LSTM states of many hypotheses, one row each."""

    def __init__(self, output: torch.Tensor, state: PredictorState) -> None:
        self.output, self.state = output, state  # (N, 1, D); per layer [h (N, H), c (N, H)]

    def extend(self, model: RNNT, rows: list[int], tokens: list[int]) -> int:
        """Advance the predictor of `rows` by `tokens`; append the results; first new row."""
        first = self.output.shape[0]
        index = torch.tensor(rows, dtype=torch.long, device=self.output.device)
        state = [[tensor[index] for tensor in layer] for layer in self.state]
        token_tensor = torch.tensor(tokens, dtype=torch.long, device=index.device)[:, None]
        ones = torch.ones(len(rows), dtype=torch.long, device=index.device)
        output, _, new_state = model.predict(token_tensor, ones, state)
        self.output = torch.cat([self.output, output])
        self.state = [
            [torch.cat([old, new]) for old, new in zip(old_layer, new_layer, strict=True)]
            for old_layer, new_layer in zip(self.state, new_state, strict=True)
        ]
        return first

    def keep(self, beams: list[list[_Hypothesis]]) -> None:
        """Drop the rows no hypothesis of `beams` uses; renumber the hypotheses' rows."""
        hypotheses = [hypothesis for beam in beams for hypothesis in beam]
        index = torch.tensor([h.row for h in hypotheses], dtype=torch.long)
        self.output = self.output[index]
        self.state = [[tensor[index] for tensor in layer] for layer in self.state]
        for row, hypothesis in enumerate(hypotheses):
            hypothesis.row = row


@torch.no_grad()
def beam_search_decode(
    model: RNNT,
    features: torch.Tensor,
    lengths: torch.Tensor,
    blank: int,
    beam_width: int,
    fusion: ShallowFusion | None = None,
    max_symbols_per_frame: int = 2,
) -> list[list[int]]:
    """Frame-synchronous RNN-T beam search over a whole batch at once (after Saon et al.,
    Alignment-length synchronous decoding for RNN transducer, ICASSP 2020, and the
    "modified beam search" of k2/icefall), optionally fused with a character LM.

    At each encoder frame, every hypothesis either ends the frame with blank or emits a
    token and stays, up to `max_symbols_per_frame` tokens; per utterance the `beam_width`
    best emissions of each round go on, hypotheses with the same tokens merge (their
    probabilities add), and the `beam_width` best that ended the frame start the next. The
    joiner and the prediction network run once per round for all hypotheses of the batch,
    which is what makes it usable on a CPU (torchaudio's `RNNTBeamSearch` decodes one
    utterance at a time). With `fusion`, token i is the character `fusion.lm.symbols[i - 1]`
    (the character tokenizer).
    """
    encoded, encoded_lengths = model.transcribe(features, lengths)
    batch, device = encoded.shape[0], encoded.device
    ones = torch.ones(batch, dtype=torch.long, device=device)
    start = torch.full((batch, 1), blank, dtype=torch.long, device=device)
    output, _, state = model.predict(start, ones, None)
    rows = _PredictorRows(output, state)
    beams = [[_Hypothesis((), "", 0.0, b)] for b in range(batch)]
    for t in range(int(encoded_lengths.max())):
        active = [b for b in range(batch) if t < encoded_lengths[b]]
        owners = [b for b in active for _ in beams[b]]
        hypotheses = [h for b in active for h in beams[b]]
        ended: dict[int, dict[tuple[int, ...], _Hypothesis]] = {b: {} for b in active}
        for round_ in range(max_symbols_per_frame + 1):
            if not hypotheses:
                break
            index = torch.tensor([h.row for h in hypotheses], dtype=torch.long, device=device)
            frames = encoded[torch.tensor(owners, device=device), t][:, None]
            count = torch.ones(len(owners), dtype=torch.long, device=device)
            logits, _, _ = model.join(frames, count, rows.output[index], count)
            log_probs = logits[:, 0, 0].float().log_softmax(-1).cpu()
            scores = torch.tensor([h.score for h in hypotheses])
            for hypothesis, owner, score in zip(
                hypotheses, owners, (scores + log_probs[:, blank]).tolist(), strict=True
            ):
                _merge(ended[owner], hypothesis, score)
            if round_ == max_symbols_per_frame:
                break
            emissions = log_probs + scores[:, None]
            if fusion is not None:
                lm = torch.stack([fusion.lm.log_probs(h.text) for h in hypotheses])
                emissions[:, 1:] += fusion.weight * lm[:, : emissions.shape[1] - 1]
                emissions += fusion.length_bonus
                if fusion.lexicon is not None:
                    allowed = torch.stack([fusion.lexicon.allowed(h.text) for h in hypotheses])
                    emissions[:, 1:][~allowed[:, : emissions.shape[1] - 1]] = -math.inf
            emissions[:, blank] = -math.inf
            owners, hypotheses = _best_emissions(owners, hypotheses, emissions, beam_width, fusion)
            if hypotheses:
                first = rows.extend(
                    model, [h.row for h in hypotheses], [h.tokens[-1] for h in hypotheses]
                )
                for offset, hypothesis in enumerate(hypotheses):
                    hypothesis.row = first + offset
        for b in active:
            beams[b] = sorted(ended[b].values(), key=lambda h: -h.score)[:beam_width]
        rows.keep(beams)
    return [list(_best(beam, fusion).tokens) for beam in beams]


def _merge(
    ended: dict[tuple[int, ...], _Hypothesis], hypothesis: _Hypothesis, score: float
) -> None:
    """Add `hypothesis`, ending its frame with `score`, to `ended`, merging equal tokens."""
    same = ended.get(hypothesis.tokens)
    if same is None:
        ended[hypothesis.tokens] = _Hypothesis(
            hypothesis.tokens, hypothesis.text, score, hypothesis.row
        )
    else:
        same.score = float(torch.logaddexp(torch.tensor(same.score), torch.tensor(score)))


def _best_emissions(
    owners: list[int],
    hypotheses: list[_Hypothesis],
    emissions: torch.Tensor,
    beam_width: int,
    fusion: ShallowFusion | None,
) -> tuple[list[int], list[_Hypothesis]]:
    """Per utterance, the `beam_width` best (hypothesis, token) extensions of `emissions`
    (N, V); their `row` is still the parent's, until the predictor has run."""
    new_owners: list[int] = []
    extended: list[_Hypothesis] = []
    vocab = emissions.shape[1]
    begin = 0
    while begin < len(owners):
        end = begin
        while end < len(owners) and owners[end] == owners[begin]:
            end += 1
        flat = emissions[begin:end].flatten()
        values, picks = flat.topk(min(beam_width, flat.numel()))
        for value, pick in zip(values.tolist(), picks.tolist(), strict=True):
            if value == -math.inf:
                break
            parent, token = hypotheses[begin + pick // vocab], pick % vocab
            text = parent.text + fusion.lm.symbols[token - 1] if fusion is not None else ""
            extended.append(_Hypothesis((*parent.tokens, token), text, value, parent.row))
            new_owners.append(owners[begin])
        begin = end
    return new_owners, extended


def _best(beam: list[_Hypothesis], fusion: ShallowFusion | None) -> _Hypothesis:
    """The best hypothesis of a final beam, with the LM's end-of-sentence term. With a
    lexicon, the best whose last word is complete; if none is, the best with its unfinished
    last word dropped."""
    if fusion is None:
        return beam[0]

    def final(hypothesis: _Hypothesis) -> float:
        return hypothesis.score + fusion.weight * float(fusion.lm.log_probs(hypothesis.text)[-1])

    if fusion.lexicon is None:
        return max(beam, key=final)
    complete = [h for h in beam if bool(fusion.lexicon.allowed(h.text)[-1])]
    if complete:
        return max(complete, key=final)
    best = max(beam, key=final)
    kept = best.text[: max(best.text.rfind(" "), 0)]
    return _Hypothesis(best.tokens[: len(kept)], kept, best.score, best.row)
