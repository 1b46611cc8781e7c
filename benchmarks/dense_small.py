"""Benchmark: the default dense model (small preset, `experiments/configs/dense_small.yaml`),
from a fresh rendering of the small corpus to its WER on held-out voices and on real speech.

Writes benchmarks/results/dense_small.json and dense_small.png:
    render_wall_s     rendering the small corpus from scratch (into the benchmark's folder)
    train_wall_s      training, validations included
    dev_wer, test_wer WER of the best checkpoint (by greedy dev WER) with the config's
                      decoding (`decoding`: beam search fused with a character LM of the
                      training transcripts, tuned on dev); test: held-out voices and sentences
    dev_wer_greedy, test_wer_greedy  the same checkpoint, greedy search
    decode_wall_s     decoding the test split, with the config's decoding and greedy
    real_wer, real_cer the same checkpoint on real human speech (`csp data real`): an
                      out-of-domain check, never a tuning target
    test_wer_by_engine, test_wer_by_condition  test_wer broken down by TTS engine of the
                      held-out voices and by recording condition: what limits it
    params, steps, hours, data_card, learning_curve (dev WER at each validation against wall
    seconds since training started)
Goal (issue 11): test_wer <= 0.15 with train_wall_s <= 1200 on a 2-core CPU, rendering
<= 300 s.

    python benchmarks/dense_small.py [--set key=value ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from analysis.breakdown import wer_by  # noqa: E402
from experiments.config import DecodingSection, load_config  # noqa: E402
from experiments.evaluate import evaluate  # noqa: E402
from experiments.metrics import read_metrics  # noqa: E402
from experiments.records import (  # noqa: E402
    METRICS,
    TEST_UTTERANCES,
    RunResult,
    read_utterance_records,
    write_json,
)
from experiments.train import REAL_TEST, train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
GOAL = {"test_wer_max": 0.15, "train_wall_s_max": 1200, "render_wall_s_max": 300}


def learning_curve(run_dir: Path, result: RunResult) -> list[dict[str, float]]:
    """Dev WER at each validation during training, against wall seconds since it began (the
    validation of the chosen checkpoint after training is not a point of the curve)."""
    started, ended = result.train_started_at, result.train_started_at + result.train_wall_s
    return [
        {"step": row["step"], "wall_s": row["wall_time"] - started, "dev_wer": row["dev_wer"]}
        for row in read_metrics(run_dir / METRICS)
        if "dev_wer" in row and started <= row["wall_time"] <= ended
    ]


def plot(record: dict[str, Any], out: Path) -> None:
    curve = record["learning_curve"]
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    axes.plot(
        [p["wall_s"] for p in curve], [p["dev_wer"] for p in curve], "o-", label="dev WER, greedy"
    )
    end = record["train_wall_s"]
    axes.plot([end], [record["test_wer"]], "s", label="test WER (held-out voices)")
    axes.plot([end], [record["test_wer_greedy"]], "x", label="test WER, greedy search")
    axes.plot([end], [record["real_wer"]], "^", label="real speech WER (out of domain)")
    axes.axhline(GOAL["test_wer_max"], color="grey", linestyle="--", linewidth=0.8, label="goal")
    axes.axvline(GOAL["train_wall_s_max"], color="grey", linestyle=":", linewidth=0.8)
    axes.set(xlabel="training wall seconds", ylabel="WER", ylim=(0, 1.05))
    axes.set_title("dense_small: learning curve on this machine", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = REPO / "runs" / f"benchmark-dense_small-{stamp}"
    overrides = [f"corpus.dir={folder / 'corpus'}", f"real_test={folder / 'real'}", *args.overrides]
    config = load_config(REPO / "experiments" / "configs" / "dense_small.yaml", overrides)

    started = time.perf_counter()
    config.corpus.read()  # renders the corpus: it is new
    render_wall_s = time.perf_counter() - started

    result = train(config, folder / "run")  # builds and scores the real-speech test set too
    on_real = json.loads((folder / "run" / REAL_TEST / "summary.json").read_text("utf-8"))
    card = json.loads((folder / "corpus" / "corpus.json").read_text(encoding="utf-8"))
    scored = {
        (split, search): evaluate(
            result.checkpoint,
            folder / "corpus",
            split,
            decoding=config.decoding if search == "configured" else DecodingSection(),
            batch_seconds=config.data.max_batch_seconds,
            progress=False,
        )
        for split in ("dev", "test")
        for search in ("configured", "greedy")
    }
    test_records = read_utterance_records(folder / "run" / TEST_UTTERANCES)
    record = {
        "render_wall_s": render_wall_s,
        "train_wall_s": result.train_wall_s,
        "dev_wer": scored["dev", "configured"]["wer"],
        "test_wer": result.test_wer,
        "test_wer_by_engine": wer_by(test_records, "engine"),
        "test_wer_by_condition": wer_by(test_records, "condition"),
        "dev_wer_greedy": result.dev_wer,
        "test_wer_greedy": scored["test", "greedy"]["wer"],
        "decoding": result.decoding,
        "decode_wall_s": {
            search: scored["test", search]["decode_wall_s"] for search in ("configured", "greedy")
        },
        "real_wer": on_real["wer"],
        "real_cer": on_real["cer"],
        "real_utterances": on_real["utterances"],
        "params": result.params,
        "steps": result.steps,
        "hours": result.hours,
        "data_card": card.get("data_card"),
        "learning_curve": learning_curve(folder / "run", result),
        "overrides": args.overrides,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "goal": GOAL,
        "goal_met": result.test_wer <= GOAL["test_wer_max"]
        and result.train_wall_s <= GOAL["train_wall_s_max"]
        and render_wall_s <= GOAL["render_wall_s_max"],
        "date": stamp,
    }
    write_json(RESULTS / "dense_small.json", record)
    plot(record, RESULTS / "dense_small.png")
    print(
        f"test WER {result.test_wer:.3f} (greedy {record['test_wer_greedy']:.3f}; dev "
        f"{record['dev_wer']:.3f}, real speech "
        f"{on_real['wer']:.3f}) after {result.train_wall_s:.0f} s of training; rendering "
        f"{render_wall_s:.0f} s; wrote {RESULTS / 'dense_small.json'}"
    )


if __name__ == "__main__":
    main()
