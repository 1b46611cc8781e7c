"""The batched RNN-T beam search and the character LM it can fuse: checked against exhaustive
search on a model small enough to enumerate every output, and against itself one utterance
at a time."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.asr.decoding import ShallowFusion, beam_search_decode
from lightning_modules.asr.language_model import END, CharNGramLM, Lexicon
from lightning_modules.asr.presets import model_config
from lightning_modules.asr.rnnt import build_rnnt

ALPHABET = "ab"
BLANK = 0


def random_model(seed: int = 0, alphabet: str = ALPHABET) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_rnnt(model_config("tiny", n_mels=8, stack=1), vocab_size=len(alphabet) + 1)
    for parameter in model.parameters():  # peaked distributions, so that paths differ clearly
        parameter.data.mul_(3.0)
    return model.eval()


@torch.no_grad()
def exhaustive_log_probs(
    model: torch.nn.Module, features: torch.Tensor, max_symbols: int
) -> dict[tuple[int, ...], float]:
    """log P(tokens | audio) of every output, summed over all alignments that emit at most
    `max_symbols` tokens per frame, by enumerating the alignments."""
    encoded, lengths = model.transcribe(features[None], torch.tensor([features.shape[0]]))
    one = torch.ones(1, dtype=torch.long)
    predictions: dict[tuple[int, ...], tuple[torch.Tensor, list]] = {}

    def predicted(tokens: tuple[int, ...]) -> torch.Tensor:
        if tokens not in predictions:
            if tokens:
                predicted(tokens[:-1])
                state = predictions[tokens[:-1]][1]
            else:
                state = None
            last = tokens[-1] if tokens else BLANK
            output, _, new_state = model.predict(torch.tensor([[last]]), one, state)
            predictions[tokens] = (output, new_state)
        return predictions[tokens][0]

    totals: dict[tuple[int, ...], float] = {}

    def walk(t: int, tokens: tuple[int, ...], emitted: int, log_prob: float) -> None:
        if t == int(lengths[0]):
            previous = totals.get(tokens, -math.inf)
            totals[tokens] = float(torch.logaddexp(torch.tensor(previous), torch.tensor(log_prob)))
            return
        logits, _, _ = model.join(encoded[:, t : t + 1], one, predicted(tokens), one)
        log_probs = logits[0, 0, 0].log_softmax(-1)
        walk(t + 1, tokens, 0, log_prob + float(log_probs[BLANK]))
        if emitted < max_symbols:
            for token in range(1, len(ALPHABET) + 1):
                walk(t, (*tokens, token), emitted + 1, log_prob + float(log_probs[token]))

    walk(0, (), 0, 0.0)
    return totals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wide_beam_finds_the_most_probable_output(seed: int) -> None:
    model = random_model(seed)
    features = torch.randn(3, 8, generator=torch.Generator().manual_seed(seed))
    totals = exhaustive_log_probs(model, features, max_symbols=2)
    best = max(totals, key=totals.__getitem__)
    (found,) = beam_search_decode(
        model, features[None], torch.tensor([3]), BLANK, len(totals), max_symbols_per_frame=2
    )
    assert tuple(found) == best
    assert sorted(totals.values())[-1] - sorted(totals.values())[-2] > 1e-6  # no tie


def test_each_utterance_of_a_batch_is_decoded_as_if_alone() -> None:
    model = random_model(3)
    generator = torch.Generator().manual_seed(3)
    lengths = torch.tensor([9, 5, 7])
    features = torch.randn(3, 9, 8, generator=generator)
    for b, length in enumerate(lengths):
        features[b, length:] = 0.0
    batched = beam_search_decode(model, features, lengths, BLANK, beam_width=4)
    alone = [
        beam_search_decode(model, features[b : b + 1, :length], lengths[b : b + 1], BLANK, 4)[0]
        for b, length in enumerate(lengths)
    ]
    assert batched == alone
    assert any(batched)  # not all empty: the comparison says something


def test_the_character_lm_is_a_distribution_and_prefers_its_text() -> None:
    texts = ["set a timer", "set an alarm", "stop the timer"]
    lm = CharNGramLM(texts, " abcdefghijklmnopqrstuvwxyz", order=4)
    for history in ["", "se", "set a ", "zzz", "stop the timer"]:
        assert float(lm.log_probs(history).exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert lm.sentence_log_prob("set a timer") > lm.sentence_log_prob("tes a remit")
    assert lm.log_probs("set a tim")[lm.symbols.index("e")] > math.log(0.5)
    assert lm.spec()["sentences"] == 3
    with pytest.raises(ValueError, match="outside the alphabet"):
        CharNGramLM(["set 5 timers"], " abcdefghijklmnopqrstuvwxyz")


def test_the_lexicon_allows_only_its_words() -> None:
    lexicon = Lexicon(["set", "sat", "a"], " aest")
    allowed = dict(zip(lexicon.symbols, lexicon.allowed("set s").tolist(), strict=True))
    assert allowed == {" ": False, "a": True, "e": True, "s": False, "t": False, END: False}
    complete = dict(zip(lexicon.symbols, lexicon.allowed("set").tolist(), strict=True))
    assert complete[" "] and complete[END] and not complete["a"]


def test_fusion_with_a_lexicon_spells_only_lexicon_words() -> None:
    alphabet = " ab"
    model = random_model(4, alphabet)
    features = torch.randn(3, 12, 8, generator=torch.Generator().manual_seed(4))
    lengths = torch.tensor([12, 12, 12])
    lm = CharNGramLM(["ab ba", "ab"], alphabet, order=3)
    texts = []
    for lexicon in (None, Lexicon(["ab", "ba"], alphabet)):
        fusion = ShallowFusion(lm, weight=0.0, lexicon=lexicon)
        decoded = beam_search_decode(model, features, lengths, BLANK, 4, fusion)
        texts.append(["".join(alphabet[token - 1] for token in tokens) for tokens in decoded])
    free, constrained = texts
    assert any(set(text.split()) - {"ab", "ba"} for text in free)  # the constraint matters
    assert all(set(text.split()) <= {"ab", "ba"} and text for text in constrained)
