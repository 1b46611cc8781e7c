"""The parts of the dense recipe: word-piece tokenizer, CTC auxiliary loss, LSTM and Conformer
encoders, speed perturbation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from experiments.config import ExperimentConfig
from experiments.train import build_tokenizer, train
from lightning_modules.asr.features import LogMelFrontend
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.presets import model_config
from lightning_modules.asr.rnnt import StackedLSTMTranscriber, stack_frames
from lightning_modules.data.manifest import read_manifest
from lightning_modules.data.real import build_real_corpus
from lightning_modules.data.synth.assistant import assistant_sentences
from lightning_modules.data.tokenizer import (
    CharTokenizer,
    WordPieceTokenizer,
    tokenizer_from_spec,
)
from lightning_modules.pruning.saved import read_saved
from lightning_modules.pruning.targets import discover_tensors

TEXTS = [sentence.text for sentence in assistant_sentences(600)]


def test_word_pieces_are_deterministic_and_round_trip() -> None:
    first = WordPieceTokenizer.train(TEXTS[:500], vocab_size=128)
    again = WordPieceTokenizer.train(TEXTS[:500], vocab_size=128)
    assert first.spec() == again.spec()
    assert first.vocab_size == 129  # the pieces and the blank
    rebuilt = tokenizer_from_spec(first.spec())
    for text in [*TEXTS[500:], "zebra quartz jukebox"]:  # unseen sentences and words
        ids = rebuilt.encode(text)
        assert 0 not in ids and max(ids) < rebuilt.vocab_size
        assert rebuilt.decode([0, *ids, 0]) == text
    # Word pieces are what makes the target sequences short.
    chars = sum(len(CharTokenizer().encode(t)) for t in TEXTS)
    assert sum(len(first.encode(t)) for t in TEXTS) < 0.6 * chars


def test_word_piece_errors_name_the_vocabulary_size() -> None:
    with pytest.raises(ValueError, match="vocab_size 5000"):
        WordPieceTokenizer.train(TEXTS[:20], vocab_size=5000)
    with pytest.raises(ValueError, match="no transcripts"):
        WordPieceTokenizer.train(["", ""], vocab_size=64)
    with pytest.raises(ValueError, match="unknown tokenizer kind 'bytes'"):
        tokenizer_from_spec({"kind": "bytes"})


def _batch(tokenizer: CharTokenizer | WordPieceTokenizer) -> dict:
    torch.manual_seed(0)
    texts = ["set a timer", "what time is it"]
    tokens = [torch.tensor(tokenizer.encode(t)) for t in texts]
    return {
        "ids": ["a", "b"],
        "texts": texts,
        "audio": torch.randn(2, 16_000),
        "audio_lengths": torch.tensor([16_000, 12_000]),
        "tokens": torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True),
        "token_lengths": torch.tensor([len(t) for t in tokens]),
    }


def test_lstm_encoder_equals_a_bidirectional_lstm_over_packed_sequences() -> None:
    """The per-direction padded encoder computes what a packed bidirectional nn.LSTM does, for
    every utterance of a batch of different lengths (padding never leaks into the backward
    direction)."""
    torch.manual_seed(0)
    config = model_config("tiny", encoder_layers=3)
    encoder = StackedLSTMTranscriber(config).eval()
    reference = torch.nn.LSTM(
        config.n_mels * config.stack,
        config.encoder_hidden,
        num_layers=3,
        bidirectional=True,
        batch_first=True,
    )
    with torch.no_grad():
        for layer in range(3):
            for suffix, lstms in (
                ("", encoder.forward_lstms),
                ("_reverse", encoder.backward_lstms),
            ):
                for weight in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    own = getattr(lstms[layer], f"{weight}_l0")
                    getattr(reference, f"{weight}_l{layer}{suffix}").copy_(own)
    features, lengths = torch.randn(4, 90, config.n_mels), torch.tensor([90, 71, 33, 5])
    encoded, encoded_lengths = encoder(features, lengths)
    stacked, stacked_lengths = stack_frames(features, lengths, config.stack)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        stacked, stacked_lengths, batch_first=True, enforce_sorted=False
    )
    expected, _ = reference(packed)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(
        expected, batch_first=True, total_length=stacked.shape[1]
    )
    expected = encoder.output(expected)
    assert torch.equal(encoded_lengths, stacked_lengths)
    for index, length in enumerate(stacked_lengths.tolist()):
        torch.testing.assert_close(encoded[index, :length], expected[index, :length])


def test_ctc_loss_trains_the_encoder_only() -> None:
    module = RNNTSpeechRecognizer(model_config("tiny", ctc_weight=0.5).model_dump())
    losses = module.losses(_batch(module.tokenizer))
    assert set(losses) == {"rnnt", "ctc"} and losses["ctc"] > 0
    losses["ctc"].backward()
    transcriber = module.rnnt.transcriber.forward_lstms[0].weight_ih_l0.grad
    assert transcriber is not None and transcriber.abs().sum() > 0
    assert module.rnnt.predictor.lstm.weight_ih_l0.grad is None
    # The head is an ordinary Linear: in the prunable set like every other weight.
    names = [t.name for t in discover_tensors(module)]
    assert "ctc_head.weight" in names
    plain = RNNTSpeechRecognizer(model_config("tiny").model_dump())
    assert plain.ctc_head is None and set(plain.losses(_batch(plain.tokenizer))) == {"rnnt"}


def test_conformer_encoder_is_prunable_and_decodes() -> None:
    config = model_config(
        "tiny", encoder="conformer", encoder_hidden=32, conformer_heads=4, conformer_ffn=64
    )
    module = RNNTSpeechRecognizer(config.model_dump()).eval()
    batch = _batch(module.tokenizer)
    assert torch.isfinite(module.loss(batch))
    assert len(module.transcribe(batch)) == 2
    names = [t.name for t in discover_tensors(module)]
    conformer = [n for n in names if ".conformer." in n]
    assert any(n.endswith("self_attn.in_proj_weight") for n in conformer)
    assert any(n.endswith("self_attn.out_proj.weight") for n in conformer)
    assert any("conv_module" in n for n in conformer)
    assert any("ffn" in n for n in conformer)


def test_conformer_shape_is_validated() -> None:
    with pytest.raises(ValidationError, match="not divisible by conformer_heads 3"):
        model_config("tiny", encoder="conformer", encoder_hidden=32, conformer_heads=3)
    with pytest.raises(ValidationError, match="conformer_kernel 4 must be odd"):
        model_config("tiny", encoder="conformer", encoder_hidden=32, conformer_kernel=4)


def test_word_piece_model_decodes_from_its_checkpoint(tiny_corpus: Path, tmp_path: Path) -> None:
    """The tokenizer is trained on the training transcripts only, saved in the checkpoint,
    and a run started from that checkpoint (a pruning run) decodes with the same one. The
    run's real-speech test corpus is built where it is missing and scored at the end."""
    build_real_corpus(tmp_path / "real", limit=2, progress=False)
    config = ExperimentConfig.model_validate(
        {
            "name": "tiny-word-pieces",
            "corpus": {"kind": "manifest", "path": str(tiny_corpus)},
            "model": {"preset": "tiny", "overrides": {"ctc_weight": 0.3}},
            "tokenizer": {"kind": "sentencepiece", "vocab_size": 64},
            "data": {"max_batch_seconds": 20},
            "trainer": {"max_steps": 6, "val_every_n_steps": 3, "checkpoint_every_n_steps": 3},
            "tracking": {"mode": "disabled"},
            "real_test": str(tmp_path / "real"),
        }
    )
    result = train(config, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "real_test" / "summary.json").read_text())
    assert summary["utterances"] == 4 and result.real_wer == summary["wer"] > 0
    assert result.real_cer == summary["cer"]
    spec = read_saved(result.checkpoint).hyper_parameters["tokenizer"]
    train_texts = [u.text for u in read_manifest(tiny_corpus) if u.split == "train"]
    assert spec == WordPieceTokenizer.train(train_texts, 64).spec()
    module = RNNTSpeechRecognizer.load_from_checkpoint(result.checkpoint, map_location="cpu")
    assert module.tokenizer.vocab_size == 65 and module.ctc_head is not None

    other = config.model_copy(
        update={
            "init_from": Path(result.checkpoint),
            "tokenizer": config.tokenizer.model_copy(update={"vocab_size": 40}),
        }
    )
    assert build_tokenizer(other, []) == spec  # the start model's, whatever the section says


def test_speed_perturbation_plays_training_batches_at_a_drawn_rate() -> None:
    frontend = LogMelFrontend(40, speed_factors=(1.25,)).train()
    seconds = torch.arange(16_000) / 16_000
    tone = torch.sin(2 * torch.pi * 1000 * seconds)
    audio = torch.stack([tone, tone * (seconds < 0.5)])
    lengths = torch.tensor([16_000, 8_000])
    played, played_lengths = frontend.perturb_speed(audio, lengths)
    assert played_lengths.tolist() == [12_800, 6_400]  # 1.25x faster
    spectrum = torch.fft.rfft(played[0, : played_lengths[0]]).abs()
    assert int(spectrum.argmax()) * 16_000 / int(played_lengths[0]) == pytest.approx(1250, abs=2)
    _, frames = frontend(audio, lengths)
    assert frames.tolist() == [12_800 // 160 + 1, 6_400 // 160 + 1]
    _, frames = frontend.eval()(audio, lengths)  # evaluation hears the audio as it is
    assert frames.tolist() == [16_000 // 160 + 1, 8_000 // 160 + 1]
    # each training batch draws its rate: with three rates, every one comes up
    frontend = LogMelFrontend(40, speed_factors=(0.9, 1.0, 1.1)).train()
    torch.manual_seed(0)
    drawn = {int(frontend.perturb_speed(audio, lengths)[1][0]) for _ in range(30)}
    assert drawn == {17_778, 16_000, 14_546}


def test_reverberation_plays_a_share_of_training_utterances_in_random_rooms() -> None:
    frontend = LogMelFrontend(40, reverb_share=1.0, reverb_rt60_s=(0.3, 0.3)).train()
    click = torch.zeros(2, 16_000)
    click[:, 0] = 1.0
    lengths = torch.tensor([16_000, 2_000])
    torch.manual_seed(0)
    played = frontend.reverberate(click, lengths)
    # the room's response: unit energy, a tail of 0.3 s, nothing after an utterance's end
    assert played[0].square().sum() == pytest.approx(1.0, rel=1e-4)
    tail = played[0].abs() > 1e-6
    assert tail[4_000:4_700].any() and not tail[4_801:].any()
    assert not played[1, 2_000:].any() and played[1, 1_000:2_000].any()
    assert not torch.equal(played[0], played[1])  # each utterance its own room
    torch.manual_seed(0)
    assert torch.equal(frontend.reverberate(click, lengths), played)  # from the global seed
    # with share 0.5 about half the utterances change, and evaluation hears the audio as it is
    frontend = LogMelFrontend(40, reverb_share=0.5).train()
    clicks = torch.zeros(200, 16_000)
    clicks[:, 0] = 1.0
    changed = frontend.reverberate(clicks, torch.full((200,), 16_000))[:, 1:].abs() > 1e-6
    assert 70 < int(changed.any(dim=1).sum()) < 130
    frames, _ = frontend.eval()(click, lengths)
    plain, _ = LogMelFrontend(40).eval()(click, lengths)
    assert torch.equal(frames, plain)
    with pytest.raises(ValidationError, match=r"reverb_rt60_s must be \[low, high\]"):
        model_config("tiny", reverb_rt60_s=[0.8, 0.2])
    module = RNNTSpeechRecognizer(model_config("tiny", reverb_share=0.3).model_dump())
    assert module.frontend.reverb_share == 0.3


def test_speed_factors_are_validated_and_reach_the_frontend() -> None:
    wrong = r"speed factors must lie in \[0.5, 2.0\], got \[3.0\]"
    with pytest.raises(ValidationError, match=wrong):
        model_config("tiny", speed_factors=(0.9, 3.0))
    module = RNNTSpeechRecognizer(model_config("tiny", speed_factors=(0.9, 1.1)).model_dump())
    assert module.frontend.speed_factors == (0.9, 1.1)
