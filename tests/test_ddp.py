"""The same config trains under 2-process CPU DDP (gloo), with records written once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from experiments.metrics import read_metrics


def test_two_process_cpu_ddp_trains(tiny_corpus: Path, tmp_path: Path, csp: Callable) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"name: tiny_ddp\ncorpus: {{kind: manifest, path: {tiny_corpus}}}\n"
        "model: {preset: tiny}\ndata: {max_batch_seconds: 20}\n"
        "trainer: {max_steps: 12, val_every_n_steps: 6, checkpoint_every_n_steps: 6,"
        " accelerator: cpu, devices: 2, strategy: ddp}\n"
    )
    run_dir = tmp_path / "run"
    done = csp("train", "--config", config, "--run-dir", run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in done.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 12
    assert 0.0 <= result["test_wer"] <= 2.0
    validations = [r for r in read_metrics(run_dir / "metrics.jsonl") if "dev_wer" in r]
    assert [r["step"] for r in validations][:2] == [5, 11]  # written once, by rank 0
