"""An experiment folder (`csp reproduce`'s runs/GRID) read back from its local run records.

The records are the source of truth: `grid.yaml` says which cells the grid holds, and each
run folder's `result.json`, `metrics.jsonl`, `config.yaml`, `provenance.json` and
`failed.json` say how far it got. A run folder without `metrics.jsonl` falls back to the
history in its offline W&B run. Every cell of the grid is returned, with its status and the
reason when it has no result, so nothing is silently dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from experiments.config import format_validation_error
from experiments.records import divergence, read_metrics
from experiments.reproduce import FAILED, GridSpec, cell_dir_name

RESULT_FIELDS = ("test_wer", "dev_wer")
PRUNED_RESULT_FIELDS = ("realized_sparsity", "model_sparsity", "sparsity_per_tensor")
PRUNED_RESULT_FIELDS += ("packed_bytes", "dense_bytes")


class ReportError(ValueError):
    """Records a report cannot be built from; the message names the file and the field."""


@dataclass
class Run:
    """One training run of an experiment (the dense model or a cell) and what it recorded."""

    directory: Path
    label: str
    method: str
    target_sparsity: float
    seed: int
    status: str = "not run"  # finished, failed, unfinished or not run
    reason: str | None = None
    result: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    metrics: list[dict[str, float]] = field(default_factory=list)
    metrics_source: str | None = None

    @property
    def note(self) -> str:
        """Status and reason: `unfinished: step 12/24`, `failed: diverged: ...`, `not run`."""
        return f"{self.status}: {self.reason}" if self.reason else self.status

    @property
    def last_sparsity(self) -> float | None:
        """Realized sparsity of the saved weights if there are any, else the last logged."""
        if self.result is not None and "realized_sparsity" in self.result:
            return self.result["realized_sparsity"]
        logged = [row["pruning/sparsity"] for row in self.metrics if "pruning/sparsity" in row]
        return logged[-1] if logged else None

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one logged metric, in step order."""
        rows = [(int(row["step"]), row[key]) for row in self.metrics if key in row]
        rows.sort(key=lambda pair: pair[0])
        return [step for step, _ in rows], [value for _, value in rows]


@dataclass
class Experiment:
    root: Path
    name: str
    variants: list[tuple[str, str, dict[str, Any]]]  # (label, method, options)
    sparsities: list[float]
    seeds: list[int]
    dense: Run
    cells: list[Run]
    spec: dict[str, Any]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error})") from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ReportError(f"{path}: not valid YAML ({error})") from None


def _read_metrics(path: Path) -> list[dict[str, float]]:
    try:
        return read_metrics(path)
    except ValueError as error:
        raise ReportError(str(error)) from None


def _wandb_history(directory: Path) -> list[dict[str, float]] | None:
    """The history of the run's offline W&B run, with W&B's step as `step`."""
    from analysis.wandb_records import read_offline_run

    folders = sorted((directory / "wandb").glob("offline-run-*"))
    if not folders:
        return None
    try:
        history = read_offline_run(folders[-1])["history"]
    except ValueError as error:
        raise ReportError(str(error)) from None
    rows = []
    for item in history:
        step = item.get("trainer/global_step", item.get("_step"))
        values = {k: v for k, v in item.items() if isinstance(v, int | float) and k[0] != "_"}
        if step is not None:
            rows.append({**values, "step": int(step)})
    return rows


def _check_result(path: Path, result: Any, pruned: bool) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise ReportError(f"{path}: expected a JSON object")
    needed = RESULT_FIELDS + (PRUNED_RESULT_FIELDS if pruned else ())
    missing = [name for name in needed if name not in result]
    if missing:
        raise ReportError(f"{path}: missing field(s) {', '.join(missing)}")
    for name in ("test_wer", "dev_wer", "realized_sparsity"):
        value = result.get(name)
        if name in result and not isinstance(value, int | float):
            raise ReportError(f"{path}: field {name} must be a number, got {value!r}")
    return result


def load_run(run: Run, pruned: bool = True) -> Run:
    """Fill in what the run's folder recorded, and decide its status."""
    directory = run.directory
    if (directory / "config.yaml").is_file():
        run.config = _read_yaml(directory / "config.yaml")
    if (directory / "provenance.json").is_file():
        run.provenance = _read_json(directory / "provenance.json")
    if (directory / "metrics.jsonl").is_file():
        run.metrics, run.metrics_source = _read_metrics(directory / "metrics.jsonl"), "metrics"
    elif (history := _wandb_history(directory)) is not None:
        run.metrics, run.metrics_source = history, "wandb"
    if (directory / "result.json").is_file():
        path = directory / "result.json"
        run.result = _check_result(path, _read_json(path), pruned)
        run.reason = divergence(run.metrics)
        if run.reason is None and not math.isfinite(run.result["test_wer"]):
            run.reason = "diverged: test WER is not a number"
        run.status = "failed" if run.reason else "finished"
    elif (directory / FAILED).is_file():
        run.status, run.reason = "failed", _read_json(directory / FAILED).get("reason", "?")
    elif directory.is_dir():
        steps = [row["step"] for row in run.metrics]
        total = (run.config or {}).get("trainer", {}).get("max_steps", "?")
        run.status, run.reason = "unfinished", f"step {max(steps) if steps else 0}/{total}"
    if run.status == "failed" and pruned and run.last_sparsity is not None:
        run.reason = f"{run.reason}; last sparsity {run.last_sparsity:.3f}"
    return run


def _layout(root: Path) -> tuple[dict[str, Any], GridSpec | None]:
    """The grid's own record (`grid.yaml`), else what `results.json` lists."""
    grid_file, results_file = root / "grid.yaml", root / "results.json"
    if grid_file.is_file():
        raw = _read_yaml(grid_file)
        try:
            return raw, GridSpec.model_validate(raw)
        except ValidationError as error:
            raise ReportError(format_validation_error(str(grid_file), error)) from None
    if results_file.is_file():
        return _read_json(results_file), None
    raise ReportError(
        f"{root}: not an experiment folder (no grid.yaml or results.json; "
        "`csp reproduce` writes them in runs/GRID)"
    )


def load_experiment(root: str | Path) -> Experiment:
    """Every run of the experiment in `root`, finished or not."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: no such experiment folder")
    raw, spec = _layout(root)
    if spec is not None:
        name, variants = spec.name, spec.variants()
        sparsities, seeds = sorted(spec.sparsities), sorted(spec.seeds)
    else:  # written before grid.yaml existed: the cells results.json lists
        cells = raw.get("cells")
        if not isinstance(cells, list) or "grid" not in raw:
            raise ReportError(f"{root / 'results.json'}: expected fields 'grid' and 'cells'")
        name = raw["grid"]
        labels = {c.get("label", c.get("method")): c.get("method") for c in cells}
        variants = [(label, method, {}) for label, method in labels.items()]
        sparsities = sorted({c["target_sparsity"] for c in cells})
        seeds = sorted({c["seed"] for c in cells})
    dense_seed = (raw.get("dense") or {}).get("seed", 0)
    shared = raw.get("dense_from")  # the grid whose dense model this one shares
    dense_dir = root.parent / shared / "dense" if shared else root / "dense"
    dense = load_run(Run(dense_dir, "dense", "dense", 0.0, dense_seed), pruned=False)
    runs = [
        load_run(Run(root / cell_dir_name(label, sparsity, seed), label, method, sparsity, seed))
        for label, method, _ in variants
        for sparsity in sparsities
        for seed in seeds
    ]
    return Experiment(root, name, variants, sparsities, seeds, dense, runs, raw)
