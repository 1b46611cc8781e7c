"""`csp train`: one experiment run, from config to checkpoints, metrics and final WER.

A run directory holds everything about the run:

    config.yaml        the resolved config (every default filled in)
    provenance.json    git commit, package versions, command
    metrics.jsonl      every logged metric, one JSON object per line
    checkpoints/       last.ckpt (for --resume) and, for dense runs, the best one by dev WER
    model.packed       the final weights as a packed sparse file (`csp export`)
    wandb/             the W&B run files (offline unless W&B is set up)
    real_test/         with `real_test`: the chosen checkpoint on real speech (`csp evaluate`
                       records: utterances.jsonl, summary.json)
    test_utterances.jsonl  the test split, one line per utterance: reference, hypothesis and
                       errors of the chosen checkpoint (what paired significance tests read)
    result.json        the final dev and test WER (and real-speech WER), sparsity and size
                       from the saved weights, parameter count and training time

A pruning run (a config with a `pruning` section) starts from the weights of `init_from`,
prunes with the method's callback and is evaluated on its final weights: the best dev WER of
a pruning run would come from before the pruning finished.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

from experiments.bench import decoding_speedup
from experiments.config import ConfigError, ExperimentConfig, dump_config
from experiments.evaluate import (
    decoding_record,
    evaluate,
    read_corpus_section,
    read_split,
    text_prior,
    utterance_records,
    wer_by_part,
)
from experiments.files import read_yaml
from experiments.metrics import JsonlLogger
from experiments.provenance import provenance
from experiments.records import (
    CHECKPOINTS,
    CONFIG,
    LAST_CHECKPOINT,
    METRICS,
    PACKED,
    PROVENANCE,
    TEST_UTTERANCES,
    RunResult,
    write_json,
    write_result,
    write_utterance_records,
)
from experiments.tracking import finish_tracking, wandb_logger
from lightning_modules.asr.loading import load_weights
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.asr.rnnt import bf16_lstm_runs_on_this_cpu
from lightning_modules.data.datamodule import SpeechDataModule
from lightning_modules.data.manifest import Utterance
from lightning_modules.data.real import build_real_corpus
from lightning_modules.data.tokenizer import CharTokenizer, TokenizerSpec, WordPieceTokenizer
from lightning_modules.data.validation import validate_corpus
from lightning_modules.pruning.audit import audit
from lightning_modules.pruning.export import export_packed
from lightning_modules.pruning.methods.model_pruning import LightningModelPruning
from lightning_modules.pruning.saved import (
    SavedFileError,
    SavedWeights,
    load_checkpoint,
    read_saved,
)


def load_corpus(config: ExperimentConfig) -> list[Utterance]:
    """The run's utterances, read by its corpus kind (rendered first if it is the synthetic
    corpus), then validated."""
    return validate_corpus(config.corpus.read())


def is_launching_process() -> bool:
    """False in the processes a DDP launcher (Lightning, torchrun, SLURM) started for ranks
    other than 0: they re-run this command, but only rank 0 owns the run directory."""
    rank_variables = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") == "0" for name in rank_variables)


def check_run_dir(config: ExperimentConfig, run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None to start; never overwrite another run.

    With `resume`, a run directory that holds the same config continues from its last
    checkpoint (or starts, if it was stopped before the first one), and an empty or absent
    one starts. Without it, an existing run is an error.
    """
    last = run_dir / CHECKPOINTS / LAST_CHECKPOINT
    saved_config = run_dir / CONFIG
    if not saved_config.exists():
        return None
    if not resume:
        raise ConfigError(
            f"{run_dir}: a run already exists here; pass --resume to continue it "
            "or choose another --run-dir"
        )
    saved = read_yaml(saved_config, "run config")
    given = config.model_dump(mode="json")
    differing = sorted(key for key in given if given[key] != saved.get(key))
    if differing:
        raise ConfigError(
            f"{saved_config}: the run was started with a different config "
            f"(sections differ: {', '.join(differing)}); resume with the same config"
        )
    return last if last.is_file() else None


def build_trainer(
    config: ExperimentConfig,
    run_dir: Path,
    resume_step: int | None,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> tuple[pl.Trainer, ModelCheckpoint | None]:
    """The Lightning trainer of a run, with its loggers, checkpoints and pruning callback."""
    checkpoints = run_dir / CHECKPOINTS
    callbacks: list[pl.Callback] = list(extra_callbacks)
    t = config.trainer
    epoch_batches: int | float = 1.0  # Lightning's limit_train_batches: the whole split
    if config.pruning is not None:
        pruner = config.pruning.build(config.seed)
        callbacks.append(pruner)
        if isinstance(pruner, LightningModelPruning):  # it prunes at epoch ends
            epoch_batches = pruner.epoch_steps * t.accumulate_grad_batches
    callbacks.append(
        ModelCheckpoint(
            dirpath=checkpoints,
            every_n_train_steps=config.trainer.checkpoint_every_n_steps,
            save_top_k=0,
            save_last=True,
        )
    )
    best = None
    if config.pruning is None:
        best = ModelCheckpoint(
            dirpath=checkpoints, filename="best-{step}", monitor="dev_wer", mode="min", save_top_k=1
        )
        callbacks.append(best)
    loggers: list[Logger] = [
        JsonlLogger(run_dir / METRICS, resume_step=resume_step if is_launching_process() else None)
    ]
    tracker = wandb_logger(config, run_dir)
    if tracker is not None:
        loggers.append(tracker)
    trainer = pl.Trainer(
        default_root_dir=run_dir,
        max_steps=t.max_steps,
        limit_train_batches=epoch_batches,
        val_check_interval=t.val_every_n_steps,
        check_val_every_n_epoch=None,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        gradient_clip_val=t.gradient_clip_val or None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        deterministic=t.deterministic,
        logger=loggers,
        callbacks=callbacks,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the batch sampler shards by rank itself
    )
    return trainer, best


def read_start_weights(checkpoint: Path) -> SavedWeights:
    """What `init_from` holds, read as weights only (a file from elsewhere runs no code); its
    refusals as the `ConfigError` every command reports."""
    try:
        return read_saved(checkpoint)
    except SavedFileError as error:
        raise ConfigError(f"init_from: {error}") from None


def load_start_weights(module: RNNTSpeechRecognizer, checkpoint: Path) -> None:
    """Start from another run's weights (the dense model): weights only, no trainer state."""
    saved = read_start_weights(checkpoint)
    try:
        load_weights(module, saved)
    except SavedFileError as error:
        raise ConfigError(f"init_from: {error}") from None


def resume_checkpoint_step(checkpoint: Path) -> int:
    """The step a run resumes at, from its last checkpoint read as weights only: a run
    directory may come from elsewhere, and Lightning reads the same file next."""
    try:
        step = load_checkpoint(checkpoint).get("global_step")
    except SavedFileError as error:
        raise ConfigError(f"resume: {error}") from None
    if not isinstance(step, int):
        raise ConfigError(f"resume: {checkpoint}: not a training checkpoint (no global_step)")
    return step


def check_start_weights(config: ExperimentConfig) -> None:
    if config.init_from is not None and not config.init_from.is_file():
        raise ConfigError(f"init_from: {config.init_from}: checkpoint not found")


def check_precision(config: ExperimentConfig) -> None:
    """bf16 on a CPU whose oneDNN cannot run bf16 LSTMs fails at the first batch: say so now."""
    t = config.trainer
    on_cpu = t.accelerator == "cpu" or (t.accelerator == "auto" and not torch.cuda.is_available())
    if "bf16" in t.precision and on_cpu and not bf16_lstm_runs_on_this_cpu():
        raise ConfigError(
            f"trainer.precision: {t.precision} cannot run this model's LSTMs on this CPU "
            "(oneDNN's bf16 LSTM needs AVX-512); use 32-true here, or a GPU"
        )


def size_record(checkpoint: Path, packed: Path) -> dict[str, Any]:
    """Sparsity and size read back from the saved weights, never from the config."""
    report = audit(checkpoint)
    export_packed(checkpoint, packed)
    return {
        "realized_sparsity": report["prunable"]["sparsity"],
        "model_sparsity": report["model"]["sparsity"],
        "sparsity_per_tensor": {
            name: entry["sparsity"]
            for name, entry in report["tensors"].items()
            if entry["prunable"]
        },
        "dense_bytes": report["model"]["dense_bytes"],
        "packed_bytes": packed.stat().st_size,
    }


REAL_TEST = "real_test"


def prepare_real_test(path: Path) -> None:
    """Build the real-speech test corpus if `path` holds none yet (like the synthetic corpus
    renders itself), and validate it, before the first training step."""
    if not (path / "manifest.jsonl").is_file() and not path.is_file():
        try:
            build_real_corpus(path, progress=False)
        except (ValueError, OSError) as error:
            raise ConfigError(f"real_test: {path}: {error}") from None
    read_split(read_corpus_section(path), "test")


def build_tokenizer(config: ExperimentConfig, utterances: Sequence[Utterance]) -> TokenizerSpec:
    """The run's tokenizer: its start model's (a pruning run decodes like its dense model),
    else characters, or word pieces trained on the training transcripts (deterministic, so a
    resumed run gets the same one)."""
    if config.init_from is not None:
        saved = read_start_weights(config.init_from)
        return saved.hyper_parameters.get("tokenizer") or CharTokenizer().spec()
    section = config.tokenizer
    if section.kind == "char":
        return CharTokenizer().spec()
    texts = [u.text for u in utterances if u.split == "train"]
    try:
        return WordPieceTokenizer.train(texts, section.vocab_size, section.model_type).spec()
    except ValueError as error:
        raise ConfigError(f"tokenizer: {error}") from None


def build_module(config: ExperimentConfig, tokenizer: TokenizerSpec) -> RNNTSpeechRecognizer:
    return RNNTSpeechRecognizer(
        model=config.model.resolve().model_dump(),
        tokenizer=tokenizer,
        learning_rate=config.optim.learning_rate,
        weight_decay=config.optim.weight_decay,
        warmup_fraction=config.optim.warmup_fraction,
        max_steps=config.trainer.max_steps,
        beam_width=config.decoding.beam,
    )


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[pl.Callback] = (),
    score_test: bool = True,
) -> RunResult:
    """Train (or resume) one run, evaluate the best checkpoint on dev and test, record it all.

    `callbacks` join the run's own (a sweep's trial early stopping). Without `score_test` the
    test split and real speech are never decoded (sweep trials are chosen on dev alone; their
    `test_wer` stays empty). Everything that can be
    wrong with the config, the run directory or the corpus is checked before the first
    training step.
    """
    run_dir = Path(run_dir)
    owner = is_launching_process()
    if owner:
        checkpoint = check_run_dir(config, run_dir, resume)
    else:  # the launching process has checked the run directory and written its records
        last = run_dir / CHECKPOINTS / LAST_CHECKPOINT
        checkpoint = last if resume and last.is_file() else None
    check_start_weights(config)
    check_precision(config)
    utterances = load_corpus(config)
    if owner and config.real_test is not None:
        prepare_real_test(config.real_test)
    if owner:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG).write_text(dump_config(config), encoding="utf-8")
        write_json(run_dir / PROVENANCE, provenance())

    pl.seed_everything(config.seed, workers=True)
    resume_step = None
    if checkpoint is not None:
        resume_step = resume_checkpoint_step(checkpoint)
    module = build_module(config, build_tokenizer(config, utterances))
    if checkpoint is None and config.init_from is not None:
        load_start_weights(module, config.init_from)
    data = SpeechDataModule(
        utterances,
        module.tokenizer,
        config.data.max_batch_seconds,
        config.data.num_workers,
        seed=config.seed,
        sorted_epochs=config.data.sorted_epochs,
    )
    trainer, best = build_trainer(config, run_dir, resume_step, callbacks)
    try:
        return fit_and_evaluate(
            config, run_dir, trainer, best, module, data, checkpoint, score_test
        )
    finally:
        finish_tracking(trainer)


def gathered(hypotheses: dict[str, str]) -> dict[str, str]:
    """Every rank's test hypotheses (DDP tests each rank on its share of the split)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return hypotheses
    shares: list[dict[str, str] | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shares, hypotheses)
    return {key: text for share in shares for key, text in (share or {}).items()}


def validated_dev_wer(
    trainer: pl.Trainer, best: ModelCheckpoint | None, module: RNNTSpeechRecognizer
) -> float | None:
    """The dev WER of the chosen weights as the training loop measured it, or None if it did
    not: the best checkpoint's score, or (no best: the last weights) the validation at the
    final step. Validating those weights again would cost a dev decoding for the same number."""
    if best is not None:
        score = best.best_model_score
        return float(score) if best.best_model_path and score is not None else None
    if module.validated_at_step != trainer.global_step or "dev_wer" not in trainer.callback_metrics:
        return None
    return float(trainer.callback_metrics["dev_wer"])


def fit_and_evaluate(
    config: ExperimentConfig,
    run_dir: Path,
    trainer: pl.Trainer,
    best: ModelCheckpoint | None,
    module: RNNTSpeechRecognizer,
    data: SpeechDataModule,
    checkpoint: Path | None,
    score_test: bool = True,
) -> RunResult:
    """Fit, save the last checkpoint, evaluate the chosen one on dev and test, record it."""
    started, started_at = time.perf_counter(), time.time()
    # weights_only: Lightning reads these files too, and must run no code from them either
    trainer.fit(module, datamodule=data, ckpt_path=checkpoint, weights_only=True)
    train_wall_s = time.perf_counter() - started
    last = run_dir / CHECKPOINTS / LAST_CHECKPOINT
    trainer.save_checkpoint(last)

    chosen = (best.best_model_path if best else "") or str(last)
    dev_wer = validated_dev_wer(trainer, best, module)
    if dev_wer is None:  # the chosen weights were never validated in the loop (a resumed run)
        dev = trainer.validate(
            module, datamodule=data, ckpt_path=chosen, verbose=False, weights_only=True
        )[0]
        dev_wer = dev["dev_wer"]
    train_texts = [u.text for u in data.splits["train"]]
    module.fusion = text_prior(config.decoding, train_texts, module.tokenizer)
    test: dict[str, Any] = {"test_wer": None}
    if score_test:
        test = trainer.test(
            module, datamodule=data, ckpt_path=chosen, verbose=False, weights_only=True
        )[0]
        hypotheses = gathered(module.test_hypotheses)
        if trainer.is_global_zero:
            records = utterance_records(data.splits["test"], hypotheses)
            write_utterance_records(run_dir / TEST_UTTERANCES, records)
            test["test_wer_by_part"] = wer_by_part(records)
    real = {}
    if score_test and config.real_test is not None and trainer.is_global_zero:
        summary = evaluate(
            chosen,
            config.real_test,
            decoding=config.decoding,
            lm_texts=train_texts,
            out=run_dir / REAL_TEST,
            batch_seconds=config.data.max_batch_seconds,
            progress=False,
        )
        real = {"real_wer": summary["wer"], "real_cer": summary["cer"]}
    pruning = config.pruning
    result = RunResult(
        name=config.name,
        seed=config.seed,
        params=sum(p.numel() for p in module.parameters()),
        steps=trainer.global_step,
        train_wall_s=train_wall_s,
        train_started_at=started_at,
        resumed=checkpoint is not None,
        checkpoint=chosen,
        dev_wer=dev_wer,
        test_wer=test["test_wer"],
        test_wer_greedy=test.get("test_wer_greedy"),
        test_wer_by_part=test.get("test_wer_by_part"),
        decoding=decoding_record(config.decoding, module.fusion),
        utterances={split: len(items) for split, items in data.splits.items()},
        hours={
            split: sum(u.duration for u in items) / 3600 for split, items in data.splits.items()
        },
        method=pruning.method if pruning is not None else None,
        target_sparsity=pruning.sparsity if pruning is not None else None,
        **real,
    )
    if trainer.is_global_zero:
        result = result.model_copy(update=size_record(Path(chosen), run_dir / PACKED))
        if pruning is not None and config.trainer.bench_utterances:
            speed = decoding_speedup(chosen, data.splits["test"][: config.trainer.bench_utterances])
            result = result.model_copy(update={"decode_speedup": speed})
        result = write_result(run_dir, result)
    return result
