"""The RNN-T speech recognizer as a LightningModule: loss, WER on dev and test, optimizer."""

from __future__ import annotations

from typing import Any

import jiwer
import lightning.pytorch as pl
import torch
from torchaudio.functional import rnnt_loss

from lightning_modules.asr.decoding import ShallowFusion, beam_search_decode, greedy_decode
from lightning_modules.asr.features import LogMelFrontend
from lightning_modules.asr.presets import RNNTConfig
from lightning_modules.asr.rnnt import build_rnnt
from lightning_modules.data.datamodule import Batch
from lightning_modules.data.tokenizer import TokenizerSpec, tokenizer_from_spec


def build_ctc_head(config: RNNTConfig, vocab_size: int) -> torch.nn.Linear:
    """The auxiliary CTC head: token logits from each transcriber output frame."""
    return torch.nn.Linear(config.joiner_dim, vocab_size)


class RNNTSpeechRecognizer(pl.LightningModule):
    """RNN-T ASR (log-mel → transcriber, LSTM predictor, joiner) trained with RNN-T loss.

    With `model.ctc_weight` > 0, a CTC head on the transcriber output adds
    `ctc_weight` × CTC loss in training (Graves et al. 2006; as an auxiliary RNN-T loss, e.g.
    Boyer et al. 2021): it gives the encoder a direct alignment signal early, which makes the
    RNN-T converge in fewer steps. Decoding never uses it.

    Logs `train_loss` (and its `train_rnnt_loss`, `train_ctc_loss` parts) every step;
    `dev_loss` (RNN-T) and `dev_wer` (greedy decoding, jiwer) every validation; in testing
    `test_wer` (greedy, or with `beam_width` > 1 beam search fused with `fusion`, and then
    `test_wer_greedy` beside it). WER is pooled over all
    utterances of all processes, not averaged over batches. The tokenizer (`tokenizer`, a
    `TokenizerSpec`; None: characters) is a hyper-parameter, so every saved model decodes
    on its own.
    """

    def __init__(
        self,
        model: dict[str, Any],
        tokenizer: TokenizerSpec | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-2,
        warmup_fraction: float = 0.1,
        max_steps: int = 1000,
        beam_width: int = 0,
    ) -> None:
        super().__init__()
        # The loggers get the experiment config instead (experiments/tracking.py): the
        # tokenizer spec holds a whole sentencepiece model.
        self.save_hyperparameters(logger=False)
        config = RNNTConfig(**model)
        self.tokenizer = tokenizer_from_spec(tokenizer)
        self.frontend = LogMelFrontend(
            config.n_mels,
            config.freq_masks,
            config.freq_mask_width,
            config.time_masks,
            config.time_mask_width,
            config.speed_factors,
            config.reverb_share,
            tuple(config.reverb_rt60_s),
        )
        self.rnnt = build_rnnt(config, self.tokenizer.vocab_size)
        self.ctc_weight = config.ctc_weight
        self.ctc_head = (
            build_ctc_head(config, self.tokenizer.vocab_size) if config.ctc_weight > 0 else None
        )
        self._word_counts: dict[str, torch.Tensor] = {}
        self.fusion: ShallowFusion | None = None
        """The LM and lexicon the test's beam search fuses: estimated on training transcripts
        by whoever tests the model, so not a hyper-parameter."""
        self.test_hypotheses: dict[str, str] = {}
        """Utterance id → greedy hypothesis of the last test on this rank, for paired
        significance tests between systems (`analysis.significance`)."""
        self.validated_at_step: int | None = None  # global step of the last validation

    def losses(self, batch: Batch, with_ctc: bool = True) -> dict[str, torch.Tensor]:
        """Mean RNN-T loss per utterance of `batch` (blank prepended to the predictor input)
        and, with a CTC head and `with_ctc`, the mean CTC loss per utterance of the
        transcriber output."""
        features, lengths = self.frontend(batch["audio"], batch["audio_lengths"])
        blank = self.tokenizer.blank
        tokens, token_lengths = batch["tokens"], batch["token_lengths"]
        encoded, encoded_lengths = self.rnnt.transcribe(features, lengths)
        prepended = torch.nn.functional.pad(tokens, (1, 0), value=blank)
        predicted, _, _ = self.rnnt.predict(prepended, token_lengths + 1, None)
        logits, _, _ = self.rnnt.join(encoded, encoded_lengths, predicted, token_lengths + 1)
        losses = {
            "rnnt": rnnt_loss(
                logits.float(),
                tokens.int(),
                encoded_lengths.int(),
                token_lengths.int(),
                blank=blank,
                reduction="mean",
            )
        }
        if self.ctc_head is not None and with_ctc:
            log_probs = self.ctc_head(encoded).float().log_softmax(-1).transpose(0, 1)
            losses["ctc"] = torch.nn.functional.ctc_loss(
                log_probs,
                tokens,
                encoded_lengths,
                token_lengths,
                blank=blank,
                reduction="sum",
                zero_infinity=True,  # an utterance too short for its tokens adds nothing
            ) / len(token_lengths)
        return losses

    def loss(self, batch: Batch) -> torch.Tensor:
        """The RNN-T loss of `batch`: what dev and sweeps compare."""
        return self.losses(batch, with_ctc=False)["rnnt"]

    def calibration_step(self, batch: Batch) -> None:
        """The forward pass data-aware pruning calibrates on: every layer, the CTC head too."""
        self.losses(batch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        size = len(batch["ids"])
        loss = losses["rnnt"]
        if "ctc" in losses:
            loss = loss + self.ctc_weight * losses["ctc"]
            self.log("train_rnnt_loss", losses["rnnt"], batch_size=size)
            self.log("train_ctc_loss", losses["ctc"], batch_size=size)
        self.log("train_loss", loss, prog_bar=True, batch_size=size)
        return loss

    def transcribe(
        self, batch: Batch, beam_width: int = 0, fusion: ShallowFusion | None = None
    ) -> list[str]:
        """Decode a batch to text: greedy search, or beam search when `beam_width` > 1
        (with `fusion`, fused with a character LM of this model's alphabet)."""
        features, lengths = self.frontend(batch["audio"], batch["audio_lengths"])
        blank = self.tokenizer.blank
        if fusion is not None:
            alphabet = getattr(self.tokenizer, "alphabet", None)
            if alphabet is None or fusion.lm.symbols[:-1] != alphabet or beam_width < 2:
                raise ValueError(
                    "LM fusion needs beam search (beam > 1) and a character model whose "
                    "alphabet is the LM's"
                )
        if beam_width > 1:
            tokens = beam_search_decode(self.rnnt, features, lengths, blank, beam_width, fusion)
        else:
            tokens = greedy_decode(self.rnnt, features, lengths, blank)
        return [self.tokenizer.decode(sequence) for sequence in tokens]

    def _count_errors(self, name: str, references: list[str], hypotheses: list[str]) -> None:
        words = jiwer.process_words(references, hypotheses)
        errors = words.substitutions + words.deletions + words.insertions
        reference_words = words.hits + words.substitutions + words.deletions
        counts = torch.tensor([errors, reference_words], dtype=torch.float64, device=self.device)
        self._word_counts[name] = self._word_counts.get(name, 0) + counts

    def _log_wer(self, name: str) -> None:
        counts = self._word_counts.pop(
            name, torch.zeros(2, dtype=torch.float64, device=self.device)
        )
        errors, words = self.all_gather(counts).reshape(-1, 2).sum(0)
        self.log(name, (errors / words.clamp(min=1)).float())

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        size = len(batch["ids"])
        self.log("dev_loss", self.loss(batch), batch_size=size, sync_dist=True)
        self._count_errors("dev_wer", batch["texts"], self.transcribe(batch))

    def on_validation_epoch_end(self) -> None:
        self._log_wer("dev_wer")
        if not self.trainer.sanity_checking:
            self.validated_at_step = self.trainer.global_step

    def on_test_epoch_start(self) -> None:
        self.test_hypotheses = {}

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        hypotheses = self.transcribe(batch, self.hparams.beam_width, self.fusion)
        self.test_hypotheses.update(zip(batch["ids"], hypotheses, strict=True))
        self._count_errors("test_wer", batch["texts"], hypotheses)
        if self.hparams.beam_width > 1:
            self._count_errors("test_wer_greedy", batch["texts"], self.transcribe(batch))

    def on_test_epoch_end(self) -> None:
        self._log_wer("test_wer")
        if self.hparams.beam_width > 1:
            self._log_wer("test_wer_greedy")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )
        steps = self.hparams.max_steps
        if steps < 3:  # too short for a warm-up and a decay phase: a constant rate
            schedule = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
        else:  # OneCycleLR divides by the length of each phase: both must last over a step
            warmup = min(max(self.hparams.warmup_fraction, 2 / steps), 0.5)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.hparams.learning_rate, total_steps=steps, pct_start=warmup
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout and SpecAugment draw from the global generators: a resumed run must go on
        # with the same random stream as an uninterrupted one.
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states", {})
        if "torch" in states:
            torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
