"""The typed run records: results.json (`GridResults`) and the per-utterance test records
(`UtteranceRecord`) are written as before, read back through their models, and a bad one is
refused by file, field (and line). Run folders are written by hand: nothing is trained."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.experiment import ReportError, load_experiment
from experiments.evaluate import utterance_records
from experiments.records import (
    ENDED,
    METRICS,
    RecordError,
    RunResult,
    read_grid_results,
    read_utterance_records,
    record_failure,
    run_state,
    write_grid_results,
    write_json,
    write_result,
    write_utterance_records,
)
from experiments.reproduce import Grid, fine_tuning_settling, grid_path, load_grid, summarize_grid
from lightning_modules.data.manifest import Utterance, write_jsonl_atomic

STATES = ["complete", "diverged", "failed", "unfinished", "complete", "not run"]
"""The cells of `grid`, in its order: csp, gmp and the small-dense control × seeds 0, 1."""


def run_result(name: str, seed: int = 0, method: str | None = None, **changes: Any) -> RunResult:
    fields = {
        "name": name,
        "seed": seed,
        "params": 1200,
        "steps": 24,
        "train_wall_s": 1.5,
        "resumed": False,
        "checkpoint": f"/runs/{name}/checkpoints/last.ckpt",
        "dev_wer": 0.8,
        "test_wer": 0.75,
        "test_wer_greedy": 0.8,
        "decoding": {"search": "greedy"},
        "utterances": {"train": 12, "dev": 3, "test": 5},
        "hours": {"train": 0.01, "dev": 0.002, "test": 0.004},
        "method": method,
        "target_sparsity": 0.5 if method else None,
        "realized_sparsity": 0.5 if method else 0.0,
        "sparsity_per_tensor": {"encoder.weight": 0.5 if method else 0.0},
        "dense_bytes": 4800,
        "packed_bytes": 3000 if method else 4800,
    }
    return RunResult(**{**fields, **changes})


def write_metrics(directory: Path, rows: list[dict[str, float]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / METRICS).write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def grid(tmp_path: Path) -> tuple[Grid, RunResult]:
    """The tiny grid with the small-dense control and two seeds, its cells in every state
    (`STATES`), and its dense result."""
    raw = {**yaml.safe_load(grid_path("tiny").read_text()), "small_dense": True, "seeds": [0, 1]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw))
    grid = load_grid(tmp_path / "tiny.yaml", tmp_path / "runs")
    folders = [directory for directory, _ in grid.cell_configs(Path("dense.ckpt"))]
    complete, diverged, failed, unfinished, control, _ = folders
    settling = [{"step": 17, "dev_wer": 0.9}, {"step": 23, "dev_wer": 0.85}]
    write_metrics(complete, [{"step": 3, "train_loss": 2.5}, *settling])
    write_result(complete, run_result("tiny.csp-s0.5-seed0", 0, "csp"))
    write_metrics(diverged, [{"step": 3, "train_loss": math.nan}])
    write_result(diverged, run_result("tiny.csp-s0.5-seed1", 1, "csp", test_wer=math.nan))
    record_failure(failed, "RuntimeError: boom", "Traceback ...")
    write_metrics(unfinished, [{"step": 8, "train_loss": 2.5}])
    write_metrics(control, [{"step": 70, "train_loss": 2.0}])
    write_result(control, run_result("tiny.small_dense-s0.5-seed0"))  # names no method
    return grid, run_result("tiny.dense", checkpoint=str(grid.dense_dir / "last.ckpt"))


def legacy_results(grid: Grid, dense: RunResult, path: Path) -> str:
    """results.json as `summarize_grid` wrote it before the records were typed: one dict."""
    cells = []
    for directory, config in grid.cell_configs(Path(dense.checkpoint)):
        state = run_state(directory)
        facts = grid.facts[directory]
        cells.append(
            {
                "run_dir": str(directory),
                **(state.result.model_dump() if state.result is not None else {}),
                "label": facts.label,
                "method": facts.method,
                "target_sparsity": facts.sparsity,
                "seed": config.seed,
                "status": state.status,
                "reason": state.reason,
                "settled": fine_tuning_settling(directory, config),
            }
        )
    dense_record = {"run_dir": str(grid.dense_dir), **dense.model_dump()}
    write_json(path, {"grid": grid.spec.name, "dense": dense_record, "cells": cells})
    return path.read_text(encoding="utf-8")


def test_results_json_is_written_as_before_and_reads_back_to_the_same_file(
    grid: tuple[Grid, RunResult], tmp_path: Path
) -> None:
    tiny, dense = grid
    summary = summarize_grid(tiny, dense)
    written = (tiny.root / "results.json").read_text(encoding="utf-8")
    assert written == legacy_results(tiny, dense, tmp_path / "legacy.json")

    read = read_grid_results(tiny.root)
    assert read is not None
    assert [cell.status for cell in read.cells] == STATES
    assert [cell.result is not None for cell in read.cells] == [s in ENDED for s in STATES]
    settled = {"middle_step": 17, "dev_wer_middle": 0.9, "end_step": 23, "dev_wer_end": 0.85}
    assert read.cells[0].settled == {**settled, "settled": False}  # 0.05 better at the end
    assert read.cells[1].reason == "train_loss nan at step 3"
    assert read.cells[2].reason == "RuntimeError: boom"
    assert read.cells[3].reason == "step 8/?"  # no config.yaml to say how many
    control = summary.cells[4].result
    assert control is not None and control.method is None  # its own result names no method
    grids = {"method": "small_dense", "target_sparsity": 0.5}  # results.json holds the grid's
    assert read.cells[4].result == control.model_copy(update=grids)
    assert read.dense == summary.dense
    write_grid_results(tmp_path, read)
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == written
    assert read_grid_results(tmp_path / "elsewhere") is None  # not written yet


def damage(change: str, results: dict[str, Any]) -> None:
    cells = results["cells"]
    if change == "seed":
        cells[1]["seed"] = "x"
    elif change == "grid":
        del results["grid"]
    elif change == "params":
        del cells[0]["params"]
    elif change == "unknown":
        cells[0]["wer"] = 0.5
    elif change == "result of a failed cell":
        cells[2]["test_wer"] = 0.5
    elif change == "dense":
        results["dense"]["bytes"] = 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("seed", "cells.1.seed: Input should be a valid integer"),
        ("grid", "grid: Field required"),
        ("params", "cells.0.params: Field required"),
        ("unknown", "cells.0.wer: Extra inputs are not permitted"),
        ("result of a failed cell", "cells.2.test_wer: Extra inputs are not permitted"),
        ("dense", "dense.bytes: Extra inputs are not permitted"),
    ],
)
def test_a_bad_results_json_is_refused_by_file_and_field(
    change: str, problem: str, grid: tuple[Grid, RunResult]
) -> None:
    tiny, dense = grid
    summarize_grid(tiny, dense)
    path = tiny.root / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    damage(change, results)
    path.write_text(json.dumps(results), encoding="utf-8")
    expected = re.escape(f"{path}: not grid results (") + f".*{re.escape(problem)}"
    with pytest.raises(RecordError, match=expected):
        read_grid_results(tiny.root)
    with pytest.raises(ReportError, match=expected):  # no grid.yaml: a report reads it too
        load_experiment(tiny.root)


def test_a_results_json_from_before_grid_yaml_still_loads(tmp_path: Path) -> None:
    """The first layout: no grid.yaml, and cells without label, state or settling."""
    root = tmp_path / "old"
    root.mkdir()
    stateless = {"status", "reason"}  # results had no state then

    def old_result(name: str, method: str | None = None) -> dict[str, Any]:
        result = run_result(name, 0, method).model_dump().items()
        return {key: value for key, value in result if key not in stateless}

    dense = old_result("old.dense")
    cells = [
        {"run_dir": str(root / f"{method}-s0.5-seed0"), **old_result(f"old.{method}", method)}
        for method in ("csp", "magnitude")
    ]
    old = {"grid": "old", "dense": {"run_dir": str(root / "dense"), **dense}, "cells": cells}
    write_json(root / "results.json", old)

    read = read_grid_results(root)
    assert read is not None
    assert [(c.label, c.method, c.status) for c in read.cells] == [
        ("csp", "csp", None),
        ("magnitude", "magnitude", None),
    ]
    assert read.cells[0].result is not None and read.cells[0].result.test_wer == 0.75
    experiment = load_experiment(root)
    assert (experiment.name, experiment.sparsities, experiment.seeds) == ("old", [0.5], [0])
    assert [run.label for run in experiment.cells] == ["csp", "magnitude"]
    assert [run.status for run in experiment.cells] == ["not run", "not run"]  # no folders


def utterances() -> tuple[list[Utterance], dict[str, str]]:
    """Three utterances with corpus metadata (one without), and their hypotheses."""
    texts = {"u0": "a cat", "u1": "the dog sat", "u2": "hi"}
    metas = {
        "u0": {"engine": "piper", "voice": "amy", "augmentation": "noise"},
        "u1": {"part": "x"},
    }
    found = [
        Utterance(key, Path(f"{key}.flac"), text, "test", 1.0, metas.get(key, {}))
        for key, text in texts.items()
    ]
    return found, {"u0": "a cat", "u1": "the dig", "u2": ""}


def test_utterance_records_are_written_as_before_and_read_back(tmp_path: Path) -> None:
    spoken, hypotheses = utterances()
    records = utterance_records(spoken, hypotheses)
    write_utterance_records(tmp_path / "test_utterances.jsonl", records)
    legacy = [
        {**u.meta, "id": u.id, "reference": u.text, "hypothesis": hypotheses[u.id], **counts}
        for u, counts in zip(
            spoken,
            [
                {"errors": 0, "words": 2, "char_errors": 0, "chars": 5},
                {"errors": 2, "words": 3, "char_errors": 5, "chars": 11},
                {"errors": 1, "words": 1, "char_errors": 2, "chars": 2},
            ],
            strict=True,
        )
    ]
    write_jsonl_atomic(tmp_path / "legacy.jsonl", legacy)
    written = (tmp_path / "test_utterances.jsonl").read_text(encoding="utf-8")
    assert written == (tmp_path / "legacy.jsonl").read_text(encoding="utf-8")

    read = read_utterance_records(tmp_path / "test_utterances.jsonl")
    assert read == records
    assert [record.meta for record in read] == [u.meta for u in spoken]
    assert (read[1].id, read[1].errors, read[1].words) == ("u1", 2, 3)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "u2", "errors": 1}', "not a per-utterance record (reference: Field required"),
        (None, "errors: Input should be a valid integer"),
        ("{broken", "not valid JSON"),
    ],
)
def test_a_bad_utterance_line_is_refused_by_file_line_and_field(
    line: str | None, problem: str, tmp_path: Path
) -> None:
    spoken, hypotheses = utterances()
    lines = [json.dumps(record.model_dump()) for record in utterance_records(spoken, hypotheses)]
    lines[1] = line or lines[1].replace('"errors": 2', '"errors": "two"')  # None: a word
    path = tmp_path / "test_utterances.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    where = re.escape(f"{path}:2: ")
    with pytest.raises(RecordError, match=f"{where}.*{re.escape(problem)}"):
        read_utterance_records(path)
