import pytest

from lightning_modules.data.text import TranscriptError, normalize_transcript
from lightning_modules.data.tokenizer import CharTokenizer


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Hello, World!", "hello world"),
        ("Don't  stop--me now.", "don't stop me now"),
        ("Café au lait", "cafe au lait"),
        ("'Tis the 'season'", "tis the season"),
        ("rock-n-roll; fine?", "rock n roll fine"),
    ],
)
def test_normalize_transcript(raw: str, normalized: str) -> None:
    assert normalize_transcript(raw) == normalized
    assert normalize_transcript(normalized) == normalized


@pytest.mark.parametrize(("raw", "reason"), [("...", "empty"), ("It is 42", "no spelling")])
def test_normalize_rejects(raw: str, reason: str) -> None:
    with pytest.raises(TranscriptError, match=reason):
        normalize_transcript(raw)


def test_tokenizer_round_trip_and_blank() -> None:
    tokenizer = CharTokenizer()
    ids = tokenizer.encode("don't panic")
    assert tokenizer.blank == 0 and 0 not in ids
    assert max(ids) < tokenizer.vocab_size
    assert tokenizer.decode([0, *ids, 0]) == "don't panic"
    with pytest.raises(ValueError, match="'7'"):
        tokenizer.encode("route 7")
