"""Run records: the one owner of what a run folder holds and what state a run is in.

Every run (a dense model, a grid cell, a sweep trial) is a folder:

    config.yaml      the resolved config           metrics.jsonl    the metrics stream
    result.json      `RunResult`, once it ended    failed.json      why it raised, if it did
    checkpoints/     last.ckpt (and best-*.ckpt)   model.packed     the packed final weights
    provenance.json  commit, packages, command     test_utterances.jsonl   `UtteranceRecord`s

A grid (`csp reproduce`) is a folder `runs/GRID` with `grid.yaml` (what it holds), `results.json`
(what it got, `GridResults`), `dense/` (or the dense folder of the grid it shares it with) and
one folder per cell, `LABEL-sSPARSITY-seedSEED`. A *cell* is always one run; the table
aggregates cells over seeds.

A run's state (`run_state`) is one of:

- `complete`: it wrote result.json and every logged loss is finite;
- `diverged`: it wrote result.json, but a loss (or its test WER) is NaN or infinite;
- `failed`: it raised (`failed.json` holds the reason and the traceback);
- `unfinished`: its folder exists but it has not ended (killed, or still running);
- `not run`: no folder yet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from experiments.files import ConfigError, read_yaml
from experiments.metrics import read_metrics
from lightning_modules.data.manifest import (
    read_json_lines,
    write_json_atomic,
    write_jsonl_atomic,
)
from lightning_modules.errors import field_problems

RunStatus = Literal["complete", "diverged", "failed", "unfinished", "not run"]
ENDED: tuple[RunStatus, ...] = ("complete", "diverged")
"""States in which result.json exists."""

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULT = "result.json"
FAILED = "failed.json"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
PACKED = "model.packed"
PROVENANCE = "provenance.json"
"""What a run was made with (`experiments.provenance.provenance`)."""
TEST_UTTERANCES = "test_utterances.jsonl"
"""Per-utterance test errors of a run (`UtteranceRecord`, one a line)."""
GRID_RECORD = "grid.yaml"
GRID_RESULTS = "results.json"
DENSE = "dense"


class RecordError(ValueError):
    """A run record that cannot be read; the message names the file and the field."""


class RunResult(BaseModel):
    """result.json: what a run ended with. Sizes and sparsity are read from the saved
    weights (`csp audit`), never from the config."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["complete", "diverged"] = "complete"
    reason: str | None = None
    name: str
    seed: int
    params: int
    steps: int
    train_wall_s: float
    train_started_at: float | None = Field(
        None, description="Unix time the (last) fit began: wall_time in metrics.jsonl against it"
    )
    resumed: bool
    checkpoint: str
    dev_wer: float
    test_wer: float | None  # None: a sweep trial, chosen on dev alone, never decodes test
    test_wer_greedy: float | None = None
    test_wer_by_part: dict[str, float] | None = Field(
        None,
        description="test WER of each part of a test split that holds several (LibriSpeech's "
        "test-clean and test-other), from the same decoding as test_wer",
    )
    decoding: dict[str, Any] = Field(default_factory=dict)
    real_wer: float | None = None
    real_cer: float | None = None
    utterances: dict[str, int]
    hours: dict[str, float]
    method: str | None = None
    target_sparsity: float | None = None
    realized_sparsity: float | None = None
    model_sparsity: float | None = None
    sparsity_per_tensor: dict[str, float] | None = None
    dense_bytes: int | None = None
    packed_bytes: int | None = None
    decode_speedup: float | None = None
    """Greedy decoding at batch 1, best dense runtime over sparse runtime (`csp bench`)."""
    early_stopped_at_step: int | None = None

    @property
    def pruned(self) -> bool:
        return self.method is not None


class RunState(BaseModel):
    """Where a run stands, why (for anything but complete), and its result if it ended: what
    `run_state` reads from any run folder (a dense model, a sweep trial, a cell)."""

    model_config = ConfigDict(extra="forbid")

    status: RunStatus | None = "not run"
    reason: str | None = None
    result: RunResult | None = None

    @property
    def note(self) -> str:
        """`unfinished: step 12/24`, `diverged: train_loss nan at step 3`, `not run`."""
        return f"{self.status}: {self.reason}" if self.reason else str(self.status)


class GridDense(RunResult):
    """results.json's `dense`: the grid's dense result and the folder it ran in."""

    run_dir: str


SHARED_WITH_RESULT = ("status", "reason", "seed", "method", "target_sparsity")
"""A cell's fields that its result holds too: in results.json, the cell's value stands."""
CELL_FIELDS = (
    "label", "method", "target_sparsity", "seed", "budget", "status", "reason", "settled",
)  # fmt: skip
"""A cell's own fields as results.json writes them, after its folder and its result's."""


class GridCell(RunState):
    """The one record of a cell (a run of a grid, the grid's dense model among them in a
    report): its folder, what the grid asked of it, its state (`RunState`) and, once it ended,
    its result; `summarize_grid` writes it to results.json and a report reads it back with
    what the folder recorded beside it (config, provenance, metrics: never written to
    results.json).

    results.json holds a cell flat, the result's fields beside the cell's, and the cell's value
    stands where both hold one (`SHARED_WITH_RESULT`): the small-dense control's result names
    no method or target, the grid does."""

    run_dir: str
    label: str
    method: str
    target_sparsity: float
    seed: int
    budget: int | None = Field(
        None, description="the cell's steps in a grid with a budget axis (absent without one)"
    )
    status: RunStatus | None = Field(
        None, description="None: written before cells recorded their state (all had ended)"
    )
    settled: dict[str, Any] | None = Field(
        None,
        description="whether fine-tuning settled (`experiments.reproduce.fine_tuning_settling`)",
    )
    result: RunResult | None = Field(
        None, description="read back from results.json, its shared fields are the cell's"
    )
    config: dict[str, Any] | None = Field(None, exclude=True)
    provenance: dict[str, Any] | None = Field(None, exclude=True)
    metrics: list[dict[str, float]] = Field(default_factory=list, exclude=True)
    metrics_source: str | None = Field(
        None, exclude=True, description="metrics.jsonl, or the history of its offline W&B run"
    )

    @property
    def directory(self) -> Path:
        return Path(self.run_dir)

    @property
    def last_sparsity(self) -> float | None:
        """Realized sparsity of the saved weights if there are any, else the last logged."""
        if self.result is not None and self.result.realized_sparsity is not None:
            return self.result.realized_sparsity
        logged = [row["pruning/sparsity"] for row in self.metrics if "pruning/sparsity" in row]
        return logged[-1] if logged else None

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one logged metric, in step order."""
        rows = [(int(row["step"]), row[key]) for row in self.metrics if key in row]
        rows.sort(key=lambda pair: pair[0])
        return [step for step, _ in rows], [value for _, value in rows]

    @model_validator(mode="wrap")
    @classmethod
    def _from_flat(cls, data: Any, handler: ModelWrapValidatorHandler[GridCell]) -> GridCell:
        """A cell as results.json holds it: the fields it does not declare are its result's."""
        if not isinstance(data, dict) or "result" in data:  # built with its result, not read
            return handler(data)
        facts = {key: value for key, value in data.items() if key in cls.model_fields}
        rest = {key: value for key, value in data.items() if key not in cls.model_fields}
        status = facts.get("status")
        if status is not None and status not in ENDED:
            return handler(data)  # no result: a field the cell does not declare is unknown
        if "label" not in facts and "method" in facts:
            facts["label"] = facts["method"]  # written before labels: the method names the row
        cell = handler(facts)
        if status is not None or rest:
            shared = {key: getattr(cell, key) for key in SHARED_WITH_RESULT}
            given = {key: value for key, value in shared.items() if value is not None}
            cell.result = RunResult.model_validate({**rest, **given})
        return cell

    @model_serializer(mode="wrap")
    def _to_flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The cell's fields over its result's, in one mapping (see the class docstring)."""
        data = handler(self)
        if data["budget"] is None:  # a grid without the budget axis reads as before it
            del data["budget"]
        own = {key: data[key] for key in CELL_FIELDS if key in data}
        return {"run_dir": data["run_dir"], **(data["result"] or {}), **own}


class GridResults(BaseModel):
    """results.json: the grid's dense result and the state of every cell, read from the run
    folders (`experiments.reproduce.summarize_grid`); a report falls back on it where a grid
    has no grid.yaml."""

    model_config = ConfigDict(extra="forbid")

    grid: str
    dense: GridDense
    cells: list[GridCell]


class UtteranceRecord(BaseModel):
    """One line of test_utterances.jsonl (and of `csp evaluate`'s utterances.jsonl): an
    utterance's reference, hypothesis and error counts, which paired tests match by id. Its
    corpus metadata (engine, voice, augmentation, part, ...) is whatever fields the corpus
    gave the utterance, so they ride along as further fields (`meta`)."""

    model_config = ConfigDict(extra="allow")

    id: str
    reference: str
    hypothesis: str
    errors: int
    words: int
    char_errors: int
    chars: int

    @property
    def meta(self) -> dict[str, Any]:
        """The utterance's corpus metadata: the record's other fields."""
        return self.model_extra or {}


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """A run record, written atomically (a reader never sees half of result.json)."""
    write_json_atomic(path, data)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not valid JSON ({error})") from None


Record = TypeVar("Record", bound=BaseModel)


def _validated(model: type[Record], data: Any, where: str, what: str) -> Record:
    """`data` as `model`, or a RecordError naming `where` and every invalid field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(field_problems(error, with_input=False))
        raise RecordError(f"{where}: not {what} ({fields})") from None


def divergence(metrics: list[dict[str, float]]) -> str | None:
    """Why a run diverged (its first non-finite loss), or None if every loss is finite."""
    for record in metrics:
        for key in ("train_loss", "dev_loss"):
            if key in record and not math.isfinite(record[key]):
                return f"{key} {record[key]} at step {record['step']}"
    return None


def ended_status(result: RunResult, metrics: list[dict[str, float]]) -> RunState:
    """The state of a run that wrote its result: complete, or diverged and why."""
    reason = divergence(metrics)
    if reason is None and result.test_wer is not None and not math.isfinite(result.test_wer):
        reason = "test WER is not a number"
    return RunState(status="diverged" if reason else "complete", reason=reason, result=result)


def write_result(run_dir: Path, result: RunResult) -> RunResult:
    """Write result.json with the status the run's metrics give it; returns what was written."""
    metrics = run_dir / METRICS
    state = ended_status(result, read_metrics(metrics) if metrics.is_file() else [])
    result = result.model_copy(update={"status": state.status, "reason": state.reason})
    write_json(run_dir / RESULT, result.model_dump())
    return result


def read_result(run_dir: Path) -> RunResult | None:
    """The run's result.json, or None if it has not ended."""
    path = run_dir / RESULT
    if not path.is_file():
        return None
    return _validated(RunResult, read_json(path), str(path), "a run result")


def write_grid_results(root: Path, results: GridResults) -> None:
    """The grid's results.json."""
    write_json(root / GRID_RESULTS, results.model_dump())


def read_grid_results(root: Path) -> GridResults | None:
    """The grid's results.json, or None if the grid has not written one."""
    path = root / GRID_RESULTS
    if not path.is_file():
        return None
    return _validated(GridResults, read_json(path), str(path), "grid results")


def write_utterance_records(path: Path, records: Iterable[UtteranceRecord]) -> None:
    """Per-utterance records, one JSON line each, written atomically."""
    write_jsonl_atomic(path, (record.model_dump() for record in records))


def read_utterance_records(path: str | Path) -> list[UtteranceRecord]:
    """The records of one per-utterance file (a run's test_utterances.jsonl, or the
    utterances.jsonl of `csp evaluate`); an invalid line is named (`PATH:LINE`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-utterance records")
    return [
        _validated(UtteranceRecord, data, where, "a per-utterance record")
        for where, data in read_json_lines(path, RecordError)
    ]


def run_state(run_dir: Path, metrics: list[dict[str, float]] | None = None) -> RunState:
    """The state of the run in `run_dir` (see the module docstring).

    `metrics` replaces metrics.jsonl (a reader that found the history elsewhere, in W&B).
    """
    if metrics is None:
        path = run_dir / METRICS
        try:
            metrics = read_metrics(path) if path.is_file() else []
        except ValueError as error:
            raise RecordError(str(error)) from None
    result = read_result(run_dir)
    if result is not None:
        return ended_status(result, metrics)
    if (run_dir / FAILED).is_file():
        return RunState(status="failed", reason=read_json(run_dir / FAILED).get("reason", "?"))
    if run_dir.is_dir():
        steps = [row["step"] for row in metrics]
        total = "?"
        if (run_dir / CONFIG).is_file():
            try:
                total = read_yaml(run_dir / CONFIG).get("trainer", {}).get("max_steps", "?")
            except ConfigError as error:
                raise RecordError(str(error)) from None
        return RunState(status="unfinished", reason=f"step {max(steps) if steps else 0}/{total}")
    return RunState(status="not run")


def record_failure(run_dir: Path, reason: str, traceback: str) -> None:
    """failed.json: the run raised; the next attempt clears it (`clear_failure`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / FAILED, {"reason": reason, "traceback": traceback})


def clear_failure(run_dir: Path) -> None:
    (run_dir / FAILED).unlink(missing_ok=True)


def cell_dir_name(label: str, sparsity: float, seed: int, budget: int | None = None) -> str:
    """The folder of one cell of a grid: `LABEL-sSPARSITY-seedSEED`, and `-bSTEPS` in a grid
    with a budget axis."""
    name = f"{label}-s{sparsity:g}-seed{seed}"
    return name if budget is None else f"{name}-b{budget}"


def dense_dir(runs_dir: Path, dense_owner: str) -> Path:
    """The dense model of grid `dense_owner` (a grid may share another grid's)."""
    return runs_dir / dense_owner / DENSE
