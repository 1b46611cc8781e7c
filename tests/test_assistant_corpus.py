"""The default corpus text, a voice-assistant domain, keeps the task real: checked on the plan
of the default size (`small`), without rendering it."""

from __future__ import annotations

from collections import Counter

import pytest

from lightning_modules.data.manifest import SPLITS
from lightning_modules.data.synth.assistant import TEMPLATES, assistant_sentences, number_words
from lightning_modules.data.synth.plan import CORPUS_SIZES, TEXTS, plan_corpus
from lightning_modules.data.text import ALPHABET

DEFAULT_SIZE = "small"  # the size of the default grid's corpus


def planned(size: str = DEFAULT_SIZE, seed: int = 0, text: str = "assistant") -> list:
    return plan_corpus(size, seed, TEXTS[text](sum(vars(CORPUS_SIZES[size]).values())))


@pytest.fixture(scope="module")
def plan() -> list:
    return planned()


def by_split(plan: list, value) -> dict[str, list]:
    return {split: [value(p) for p in plan if p.split == split] for split in SPLITS}


def test_the_training_transcripts_hold_over_a_thousand_distinct_words(plan: list) -> None:
    words = by_split(plan, lambda p: p.sentence.text.split())
    assert len({word for sentence in words["train"] for word in sentence}) >= 1000
    assert all(set(" ".join(s)) <= set(ALPHABET) for s in words["train"] + words["test"])


def test_test_sentences_and_voices_are_held_out(plan: list) -> None:
    texts = by_split(plan, lambda p: p.sentence.text)
    voices = by_split(plan, lambda p: p.voice)
    assert not set(texts["test"]) & set(texts["train"])
    assert not set(texts["dev"]) & set(texts["train"])
    assert not set(voices["test"]) & (set(voices["train"]) | set(voices["dev"]))
    assert len(set(voices["test"])) >= 8
    assert len({voice.engine for voice in voices["test"]}) >= 3


def test_every_split_has_noise_reverb_and_every_domain(plan: list) -> None:
    for split in SPLITS:
        kinds = Counter(p.augmentation for p in plan if p.split == split)
        assert kinds["none"] and kinds["noise"] and kinds["reverb"], (split, kinds)
    spoken = " ".join(p.sentence.text for p in plan if p.split == "train")
    for domain, templates in TEMPLATES.items():  # each domain's fixed words are heard
        first_words = {template.split()[0].strip("?").lower() for template in templates}
        assert any(f"{word} " in spoken for word in first_words), domain


def test_the_plan_is_deterministic_and_the_seed_changes_it(plan: list) -> None:
    assert planned() == plan
    other = planned(seed=1)
    assert {p.sentence.text for p in other if p.split == "test"} != {
        p.sentence.text for p in plan if p.split == "test"
    }


def test_the_open_vocabulary_text_stays_available() -> None:
    open_plan = planned(size="tiny", text="open")
    assert {p.sentence.source for p in open_plan} == {"fortunes", "bible"}


def test_the_pool_holds_distinct_sentences_said_in_words() -> None:
    pool = assistant_sentences(500)
    assert len({s.text for s in pool}) == 500 and pool == sorted(pool)
    assert number_words(0) == "zero" and number_words(1335) == (
        "one thousand three hundred and thirty five"
    )
    assert number_words(2005) == "two thousand and five" and number_words(40) == "forty"
    with pytest.raises(ValueError, match="0 to 9999"):
        number_words(10_000)
