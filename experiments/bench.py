"""`csp bench`: greedy decoding of the sparse runtime against the dense model, on the same
utterances, measured in one run.

For each batch size the utterances (duration-sorted, so batches pad little) are decoded by
three variants of the saved model, built for that batch size (`lightning_modules.runtime`):

    stock    the model as trained (pruned entries are zeros in dense tensors; fused LSTMs)
    dense    the best dense runtime: each LSTM fused or stepped, whichever measured faster
    sparse   the sparse runtime: each matrix in its fastest measured format as well

Passes alternate after one warm-up each, the order rotating (stock, dense, sparse; dense,
sparse, stock; ...: a variant that follows another on the same weights finds them in the
caches), and each variant's time is its median pass. Reported per batch size and variant:

    seconds, rtf               decoding time of all utterances and its ratio to their audio
    latency_s                  median seconds per batch
    weight_bytes               bytes of weights the variant holds (values and indices)
    weights_read_per_audio_s   bytes of weights its products read per second of audio
                               (a Linear reads its weight once per call, an LSTM its input
                               weights once and its recurrent weights once per step)
    decode_peak_bytes          growth of the resident set during its decoding (Linux: the
                               peak is reset before, /proc/self/clear_refs)

and the `tokens` and `frames` decoded, `speedup` = dense seconds / sparse seconds (what
sparsity buys over the best dense runtime), `speedup_over_stock` = stock seconds / sparse
seconds, `transcripts_equal` (all three, token for token), both runtimes' per-layer choices,
and `sparse_runs_dense` when the sparse runtime chose what the dense one did (or fell back to
it): its speed-up is then 1 by construction, and the measured one shows the timing noise.
Features are computed once, outside the timing.

A file without our recognizer's hyper-parameters is another model: `bench_any_model` builds
it with the user's factory and measures it on a random input of the given shape
(`lightning_modules.runtime.any_model`, its Linears only).
"""

from __future__ import annotations

import gc
import importlib
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments.evaluate import read_corpus_section, read_split
from experiments.files import ConfigError
from lightning_modules.asr.decoding import greedy_decode
from lightning_modules.asr.loading import ModelFileError, load_recognizer
from lightning_modules.asr.module import RNNTSpeechRecognizer
from lightning_modules.data.datamodule import SpeechDataset
from lightning_modules.data.manifest import Utterance
from lightning_modules.pruning.saved import SavedFileError
from lightning_modules.pruning.sparsity_patterns import SparsityPattern, parse_pattern
from lightning_modules.runtime.any_model import SpeedReport, measure_saved
from lightning_modules.runtime.convert import build_runtime, build_runtimes
from lightning_modules.runtime.layers import SparseLinear, SparseLSTM, SparseLSTMTranscriber

Features = list[tuple[torch.Tensor, torch.Tensor]]


def _resident_bytes(field: str) -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class WeightTraffic:
    """Counts the bytes of weights read by the products of a decoding (forward hooks)."""

    def __init__(self, model: nn.Module) -> None:
        self.bytes = 0
        self._handles = []
        for module in model.modules():
            if isinstance(
                module, nn.Linear | SparseLinear | nn.LSTM | SparseLSTM | SparseLSTMTranscriber
            ):
                self._handles.append(module.register_forward_pre_hook(self._count))

    def _count(self, module: nn.Module, args: tuple) -> None:
        steps = args[0].shape[1] if args[0].dim() == 3 else 1
        if isinstance(module, SparseLSTMTranscriber):
            steps = -(-steps // module.stack)  # its recurrence runs over stacked frames
        inputs, recurrent = _weight_bytes(module)
        self.bytes += inputs + recurrent * steps

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _weight_bytes(module: nn.Module) -> tuple[int, int]:
    """Bytes of a decoding-path module's weights (sparse layers: values and indices), split
    into those read once per call and the recurrent ones, read once per step."""
    if isinstance(module, SparseLinear):
        return module.weight_bytes, 0
    if isinstance(module, SparseLSTM | SparseLSTMTranscriber):
        return module.weight_bytes
    if isinstance(module, nn.Linear):
        return module.weight.numel() * module.weight.element_size(), 0
    if isinstance(module, nn.LSTM):
        sizes = {"weight_ih": 0, "weight_hh": 0}
        for name, parameter in module.named_parameters():
            if name.startswith("weight"):
                sizes[name[:9]] += parameter.numel() * parameter.element_size()
        return sizes["weight_ih"], sizes["weight_hh"]
    return 0, 0


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights the decoding path holds (sparse layers: values and indices)."""
    return sum(sum(_weight_bytes(module)) for module in model.modules())


def batch_features(
    recognizer: RNNTSpeechRecognizer, audio: Sequence[torch.Tensor], batch: int
) -> Features:
    """Log-mel features of the utterances in batches of `batch`, in the given order."""
    batches = []
    with torch.no_grad():
        for first in range(0, len(audio), batch):
            chunk = audio[first : first + batch]
            lengths = torch.tensor([len(a) for a in chunk])
            padded = torch.nn.utils.rnn.pad_sequence(list(chunk), batch_first=True)
            batches.append(recognizer.frontend(padded, lengths))
    return batches


def decode_all(recognizer: RNNTSpeechRecognizer, batches: Features) -> list[list[int]]:
    tokens: list[list[int]] = []
    with torch.no_grad():
        for features, lengths in batches:
            tokens += greedy_decode(recognizer.rnnt, features, lengths, recognizer.tokenizer.blank)
    return tokens


def measure(
    model: RNNTSpeechRecognizer,
    audio: Sequence[torch.Tensor],
    batch: int,
    pattern: SparsityPattern,
    repeats: int = 3,
    format: str = "auto",
    min_seconds: float = 0.0,
) -> dict[str, Any]:
    """The three variants at one batch size (see the module docstring): at least `repeats`
    timed passes each, more if fewer would time less than `min_seconds` of the dense one."""
    batches = batch_features(model, audio, batch)
    audio_seconds = sum(len(a) for a in audio) / 16_000
    if format == "auto":
        (dense, dense_report), (sparse, report) = build_runtimes(model, *batches[0], pattern)
    else:
        dense, dense_report = build_runtime(model, *batches[0], pattern, formats=("dense",))
        sparse, report = build_runtime(model, *batches[0], pattern, (format,), measure=False)
    variants = {"stock": model, "dense": dense, "sparse": sparse}
    transcripts, traffic, warm_up = {}, {}, {}
    for name, variant in variants.items():  # the warm-up pass counts the weights read
        counter = WeightTraffic(variant.rnnt)
        started = time.perf_counter()
        transcripts[name] = decode_all(variant, batches)
        warm_up[name] = time.perf_counter() - started
        counter.close()
        traffic[name] = counter.bytes
    repeats = max(repeats, math.ceil(min_seconds / warm_up["dense"]))
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    latencies: dict[str, list[float]] = {name: [] for name in variants}
    peaks: dict[str, int | None] = {}
    names = list(variants)
    for repeat in range(repeats):  # each variant first, second and third in turn
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            variant = variants[name]
            gc.collect()
            before = _resident_bytes("VmRSS") if _reset_peak() else None
            with torch.no_grad():
                started = time.perf_counter()
                for features, lengths in batches:
                    begun = time.perf_counter()
                    greedy_decode(variant.rnnt, features, lengths, variant.tokenizer.blank)
                    latencies[name].append(time.perf_counter() - begun)
                seconds[name].append(time.perf_counter() - started)
            peak = _resident_bytes("VmHWM")
            if before is not None and peak is not None:
                peaks[name] = max(peaks.get(name) or 0, peak - before)
    result: dict[str, Any] = {
        "batch": batch,
        "batches": len(batches),
        "tokens": sum(len(tokens) for tokens in transcripts["stock"]),
        "frames": sum(int(model.rnnt.transcribe(*b)[1].sum()) for b in batches),
    }
    for name, variant in variants.items():
        median = statistics.median(seconds[name])
        result[name] = {
            "seconds": median,
            "rtf": median / audio_seconds,
            "latency_s": statistics.median(latencies[name]),
            "weight_bytes": weight_bytes(variant.rnnt),
            "weights_read_per_audio_s": traffic[name] / audio_seconds,
            "decode_peak_bytes": peaks.get(name),
        }
    result["speedup"] = result["dense"]["seconds"] / result["sparse"]["seconds"]
    result["speedup_over_stock"] = result["stock"]["seconds"] / result["sparse"]["seconds"]
    result["transcripts_equal"] = all(t == transcripts["stock"] for t in transcripts.values())
    result["repeats"] = repeats
    result["sparse_runs_dense"] = report.fell_back or [layer.runs for layer in report.layers] == [
        layer.runs for layer in dense_report.layers
    ]
    result["runtime"] = report.as_dict()
    result["dense_runtime"] = dense_report.as_dict()
    return result


ANY_MODEL_HINT = (
    "To measure another model, give its code: csp bench FILE --model-factory MODULE:FUNCTION "
    "--input-shape 1,128, or in Python lightning_modules.runtime.measure_speed "
    "(docs/runtime.md, Any model)"
)


def load_for_bench(model_path: str | Path) -> tuple[RNNTSpeechRecognizer, SparsityPattern]:
    """The saved model (eval mode) and the pattern it records, refused if the pattern breaks;
    a file of another model is refused with the way to measure it."""
    try:
        model, saved = load_recognizer(model_path)
    except ModelFileError as error:
        raise ConfigError(f"{error}. {ANY_MODEL_HINT}") from None
    except SavedFileError as error:
        raise ConfigError(str(error)) from None
    return model, parse_pattern(saved.pattern)


def model_from_factory(spec: str) -> nn.Module:
    """The model `module:function` returns when called without arguments; modules in the
    working directory import too, as they do for `python -m`."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"--model-factory {spec!r}: write it as MODULE:FUNCTION")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), function_name, None)
    except ImportError as error:
        raise ConfigError(
            f"--model-factory {spec}: cannot import {module_name} ({error})"
        ) from None
    if not callable(factory):
        raise ConfigError(f"--model-factory {spec}: {module_name} has no function {function_name}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model-factory {spec} returned a {type(model).__name__}, not a Module")
    return model


def bench_any_model(
    model_path: str | Path,
    factory: str,
    input_shape: Sequence[int],
    threads: int | None = None,
    repeats: int = 3,
    format: str = "auto",
) -> SpeedReport:
    """`csp bench FILE --model-factory`: the factory's model with the file's weights, dense
    against its sparse Linears, on one standard-normal float32 input of `input_shape`."""
    model = model_from_factory(factory)
    inputs = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    try:
        return measure_saved(
            model_path, model, inputs, formats=format, repeats=repeats, threads=threads
        )
    except SavedFileError as error:
        raise ConfigError(str(error)) from None


def decoding_speedup(model_path: str | Path, utterances: Sequence[Utterance]) -> float:
    """Batch-1 greedy decoding of `utterances`: the best dense runtime's time over the sparse
    runtime's (one timed pass each): the paper table's speed-up column."""
    model, pattern = load_for_bench(model_path)
    dataset = SpeechDataset(utterances, model.tokenizer)
    audio = [dataset[index]["audio"] for index in range(len(dataset))]
    return measure(model, audio, 1, pattern, repeats=1)["speedup"]


def bench(
    model_path: str | Path,
    corpus: str | Path,
    split: str = "test",
    batches: Sequence[int] = (1, 16),
    threads: int | None = None,
    utterances: int = 32,
    repeats: int = 3,
    format: str = "auto",
) -> dict[str, Any]:
    """`csp bench`: the dense model and its sparse runtime on the first `utterances` of the
    split (by id), at each batch size."""
    if threads is not None:
        torch.set_num_threads(threads)
    if not batches or any(not isinstance(b, int) or b < 1 for b in batches):
        raise ConfigError(f"--batch: batch sizes must be positive integers, got {list(batches)}")
    dense, pattern = load_for_bench(model_path)
    chosen = sorted(read_split(read_corpus_section(corpus), split), key=lambda u: u.id)
    chosen = sorted(chosen[:utterances], key=lambda u: u.duration)
    dataset = SpeechDataset(chosen, dense.tokenizer)
    audio = [dataset[index]["audio"] for index in range(len(dataset))]
    return {
        "model": str(model_path),
        "corpus": str(corpus),
        "split": split,
        "utterances": len(chosen),
        "audio_s": sum(u.duration for u in chosen),
        "threads": torch.get_num_threads(),
        "pattern": pattern.spec,
        "format": format,
        "results": [measure(dense, audio, batch, pattern, repeats, format) for batch in batches],
    }
