"""Benchmark: greedy decoding with the sparse runtime against the dense model, per sparsity
pattern and sparsity, at batch 1 and 16, for the large preset's shapes and the default small
model's (`experiments/configs/dense_small.yaml`).

Speed does not depend on what the weights learned, only on their shapes and zeros, so the
models have random weights (seed 0), magnitude-pruned in each pattern on every prunable
tensor. One thing does depend on training: how many tokens greedy decoding emits per encoder
frame (each one runs the prediction network). An untrained joiner emits at almost every step,
so each pruned model's joiner is set to emit about `EMISSION_RATE` tokens per frame, what a
character model emits on this corpus (15 characters/s at 40 ms frames; `calibrate_blank`);
each case records the tokens and frames it decoded. The utterances are
seeded noise of 2 to 3.5 s (the corpus's lengths); dense and sparse decode the same ones.

Dense is the best dense runtime (`csp bench`'s `dense`: each LSTM fused or stepped, whichever
is faster), so a speed-up is what the zeros buy; `speedup_over_stock` is against the model as
trained (fused LSTMs, whose per-call overhead makes the one-step prediction network slow).

Writes benchmarks/results/sparse_inference.json (+ .png):
    speedup[pattern][sparsity][batch]        large shapes: dense seconds / sparse seconds
    speedup_small[pattern][sparsity][batch]  the small model's
    speedup_over_stock, speedup_over_stock_small
    transcripts_equal                        every case: the same tokens as the dense model
    slowest_running_sparse                   the lowest speed-up where the sparse runtime runs
                                             sparse parts
    running_dense, noise                     how many cases chose the dense runtime (or fell
                                             back to it), and the range of their measured
                                             speed-ups: 1 by construction, so the noise
    cases                                    every measurement with its per-layer choices
Goal (issue 15), large shapes at batch 1: >= 2x at s = 0.9 (any pattern), >= 1.3x at 0.8;
every model never slower than dense (where it runs sparse); transcripts identical.

    python benchmarks/sparse_inference.py [--repeats N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from experiments.bench import batch_features, measure  # noqa: E402
from experiments.config import load_config  # noqa: E402
from lightning_modules.asr.module import RNNTSpeechRecognizer  # noqa: E402
from lightning_modules.asr.presets import model_config  # noqa: E402
from lightning_modules.pruning.sparsity_patterns import parse_pattern  # noqa: E402
from lightning_modules.pruning.targets import discover_tensors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PATTERNS = ("unstructured", "2:4", "16x16")
SPARSITIES = (0.5, 0.8, 0.9)
BATCHES = (1, 16)
EMISSION_RATE = 0.6
EMISSION_SLACK = 0.2
"""The emission rate may be this share off its target, for a clear decision threshold."""
UTTERANCES = 16
BATCH1_UTTERANCES = 4
PREDICTOR_SCALE = 1e-6
MAX_SYMBOLS = 5
"""`greedy_decode`'s default `max_symbols_per_frame`."""
MIN_SECONDS = 2.0
"""Each variant is timed over at least this long (more passes for short ones)."""
GOAL = {"large_batch1_s0.9_min": 2.0, "large_batch1_s0.8_min": 1.3, "never_slower": 1.0}


def small_model_config() -> dict[str, Any]:
    config = load_config(REPO / "experiments" / "configs" / "dense_small.yaml")
    return model_config(config.model.preset, **config.model.overrides).model_dump()


def random_model(model: dict[str, Any]) -> RNNTSpeechRecognizer:
    torch.manual_seed(0)
    return RNNTSpeechRecognizer(model=model).eval()


def utterances(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.linspace(2.0, 3.5, count)
    return [0.1 * torch.randn(int(16_000 * s), generator=generator) for s in lengths.tolist()]


@torch.no_grad()
def calibrate_blank(recognizer: RNNTSpeechRecognizer, audio: list[torch.Tensor]) -> None:
    """Make greedy decoding emit `EMISSION_RATE` tokens per frame on average: the prediction
    network's output weights are scaled by `PREDICTOR_SCALE` (zeros stay zeros, the products
    cost the same), so the joiner's logits depend on the encoder frame alone and a frame
    that emits emits `MAX_SYMBOLS`; the blank bias is set so that that share of the frames
    emits. A random encoder forgets its input, so many frames' margins agree to 1e-7, where
    float summation order alone would decide their tokens: the threshold is the midpoint of
    the widest gap between margins within `EMISSION_SLACK` of that share."""
    rnnt, blank = recognizer.rnnt, recognizer.tokenizer.blank
    rnnt.predictor.output.weight.mul_(PREDICTOR_SCALE)
    margins = []
    for features, lengths in batch_features(recognizer, audio, 1):
        encoded, _ = rnnt.transcribe(features, lengths)
        start = torch.full((1, 1), blank, dtype=torch.long)
        predicted, _, _ = rnnt.predict(start, torch.ones(1, dtype=torch.long), None)
        logits = rnnt.joiner.output(torch.tanh(encoded[0] + predicted[0]))
        others = torch.cat([logits[:, :blank], logits[:, blank + 1 :]], dim=1)
        margins.append(logits[:, blank] - others.max(dim=1).values)
    ordered = torch.cat(margins).sort().values
    target = EMISSION_RATE / MAX_SYMBOLS * len(ordered)
    low, high = (round(target * (1 + side * EMISSION_SLACK)) for side in (-1, 1))
    widest = low + int((ordered[low : high + 1] - ordered[low - 1 : high]).argmax())
    rnnt.joiner.output.bias[blank] -= (ordered[widest - 1] + ordered[widest]) / 2


@torch.no_grad()
def pruned(dense: RNNTSpeechRecognizer, spec: str, sparsity: float) -> RNNTSpeechRecognizer:
    """A copy with every prunable tensor magnitude-pruned to `sparsity` in pattern `spec`, and
    rescaled to its dense norm: the signal then survives the layers, as it does in a trained
    pruned model (a random one shrunk tenfold forgets its input, and frames tie)."""
    model = RNNTSpeechRecognizer(**dense.hparams).eval()
    model.load_state_dict(dense.state_dict())
    pattern = parse_pattern(spec)
    for tensor in discover_tensors(model):
        weight = tensor.parameter
        norm = weight.norm()
        weight.mul_(pattern.select(weight.abs(), round((1 - sparsity) * weight.numel())))
        weight.mul_(norm / weight.norm())
    return model


def run_shapes(label: str, model: dict[str, Any], audio: list[torch.Tensor], repeats: int) -> dict:
    dense = random_model(model)
    speedup: dict[str, dict[str, dict[str, float]]] = {}
    over_stock: dict[str, dict[str, dict[str, float]]] = {}
    cases = []
    for spec in PATTERNS:
        for sparsity in SPARSITIES:
            model_ = pruned(dense, spec, sparsity)
            calibrate_blank(model_, audio)
            for batch in BATCHES:
                chosen = audio[:BATCH1_UTTERANCES] if batch == 1 else audio
                pattern = parse_pattern(spec)
                result = measure(model_, chosen, batch, pattern, repeats, min_seconds=MIN_SECONDS)
                for table, key in ((speedup, "speedup"), (over_stock, "speedup_over_stock")):
                    table.setdefault(spec, {}).setdefault(str(sparsity), {})[str(batch)] = result[
                        key
                    ]
                cases.append({"shapes": label, "pattern": spec, "sparsity": sparsity, **result})
                print(
                    f"{label} {spec} s={sparsity} batch {batch}: {result['speedup']:.2f}x "
                    f"(dense {result['dense']['seconds']:.3f} s, sparse "
                    f"{result['sparse']['seconds']:.3f} s, "
                    f"{result['tokens'] / result['frames']:.2f} tokens/frame), same text: "
                    f"{result['transcripts_equal']}"
                    + (", runs dense" if result["sparse_runs_dense"] else ""),
                    flush=True,
                )
    return {"speedup": speedup, "over_stock": over_stock, "cases": cases}


def plot(record: dict[str, Any], out: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    ideal = [1 / (1 - s) for s in SPARSITIES]
    for axis, (key, title) in zip(
        axes, (("speedup", "large shapes"), ("speedup_small", "small model")), strict=True
    ):
        axis.plot(SPARSITIES, ideal, "k:", label="ideal 1/(1-s)")
        for spec in PATTERNS:
            for batch, style in (("1", "o-"), ("16", "s--")):
                values = [record[key][spec][str(s)][batch] for s in SPARSITIES]
                axis.plot(SPARSITIES, values, style, label=f"{spec}, batch {batch}")
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("sparsity")
        axis.set_title(f"decoding speed-up over dense, {title}")
    axes[0].set_ylabel("dense time / sparse time")
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    audio = utterances(UTTERANCES)
    large = run_shapes("large", model_config("large").model_dump(), audio, arguments.repeats)
    small = run_shapes("small", small_model_config(), audio, arguments.repeats)
    cases = large["cases"] + small["cases"]
    large_batch1 = large["speedup"]
    best = {s: max(large_batch1[spec][str(s)]["1"] for spec in PATTERNS) for s in (0.8, 0.9)}
    as_dense = [case["speedup"] for case in cases if case["sparse_runs_dense"]]
    sparse_speedups = [case["speedup"] for case in cases if not case["sparse_runs_dense"]]
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "utterances": UTTERANCES,
        "emission_rate_target": EMISSION_RATE,
        "speedup": large["speedup"],
        "speedup_small": small["speedup"],
        "speedup_over_stock": large["over_stock"],
        "speedup_over_stock_small": small["over_stock"],
        "best_large_batch1": {str(s): v for s, v in best.items()},
        "slowest": min(case["speedup"] for case in cases),
        "slowest_running_sparse": min(sparse_speedups, default=None),
        "running_dense": len(as_dense),
        "noise": {"min": min(as_dense, default=None), "max": max(as_dense, default=None)},
        "transcripts_equal": all(case["transcripts_equal"] for case in cases),
        "goal": GOAL,
        "goal_met": {
            "large_batch1_s0.9": best[0.9] >= GOAL["large_batch1_s0.9_min"],
            "large_batch1_s0.8": best[0.8] >= GOAL["large_batch1_s0.8_min"],
            "never_slower": min(sparse_speedups, default=1.0) >= GOAL["never_slower"],
        },
        "cases": cases,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sparse_inference.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(record, RESULTS / "sparse_inference.png")
    shown = ("best_large_batch1", "slowest_running_sparse", "noise", "goal_met")
    print(json.dumps({k: record[k] for k in shown}))


if __name__ == "__main__":
    main()
