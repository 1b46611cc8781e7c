"""An experiment folder (`csp reproduce`'s runs/GRID) read back from its local run records.

The records are the source of truth: `grid.yaml` says which cells the grid holds, and each
run folder's `result.json`, `metrics.jsonl`, `config.yaml`, `provenance.json` and
`failed.json` say how far it got. A run folder without `metrics.jsonl` falls back to the
history in its offline W&B run. Every cell of the grid is returned, with its status and the
reason when it has no result, so nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from analysis.wandb_records import read_offline_run
from experiments.config import format_validation_error
from experiments.dense_control import DenseControl
from experiments.files import ConfigError, read_yaml
from experiments.metrics import read_metrics
from experiments.records import (
    CONFIG,
    GRID_RECORD,
    METRICS,
    PROVENANCE,
    GridCell,
    GridResults,
    RecordError,
    cell_dir_name,
    dense_dir,
    read_grid_results,
    read_json,
    run_state,
)
from experiments.reproduce import GridSpec
from experiments.small_dense import SmallDense
from lightning_modules.pruning.registry import CONTROLS

PRUNED_RESULT_FIELDS = ("realized_sparsity", "model_sparsity", "sparsity_per_tensor")
PRUNED_RESULT_FIELDS += ("packed_bytes", "dense_bytes")


class ReportError(ValueError):
    """Records a report cannot be built from; the message names the file and the field."""


@dataclass
class Experiment:
    root: Path
    name: str
    variants: list[tuple[str, str, dict[str, Any]]]  # (label, method, options)
    sparsities: list[float]
    seeds: list[int]
    dense: GridCell
    cells: list[GridCell]
    spec: dict[str, Any]
    budgets: list[int | None] = field(default_factory=lambda: [None])
    """Cell steps of a grid with a budget axis, shortest first; [None] without one."""

    def at_budget(self, budget: int | None) -> list[GridCell]:
        """The cells of one budget."""
        return [run for run in self.cells if run.budget == budget]


def _wandb_history(directory: Path) -> list[dict[str, float]] | None:
    """The history of the run's offline W&B run, with W&B's step as `step`."""
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


def load_run(run: GridCell, pruned: bool = True) -> GridCell:
    """Fill in what the run's folder recorded, and its state (`experiments.records`)."""
    directory = run.directory
    try:
        if (directory / CONFIG).is_file():
            run.config = read_yaml(directory / CONFIG)
        if (directory / PROVENANCE).is_file():
            run.provenance = read_json(directory / PROVENANCE)
        if (directory / METRICS).is_file():
            run.metrics, run.metrics_source = read_metrics(directory / METRICS), "metrics"
        elif (history := _wandb_history(directory)) is not None:
            run.metrics, run.metrics_source = history, "wandb"
        state = run_state(directory, run.metrics)
    except (ConfigError, RecordError, ValueError) as error:
        raise ReportError(str(error)) from None
    run.status, run.reason, run.result = state.status, state.reason, state.result
    if pruned and run.result is not None:
        missing = [name for name in PRUNED_RESULT_FIELDS if getattr(run.result, name) is None]
        if missing:
            raise ReportError(f"{directory / 'result.json'}: missing field(s) {', '.join(missing)}")
    if run.status in ("failed", "diverged") and pruned and run.last_sparsity is not None:
        run.reason = f"{run.reason}; last sparsity {run.last_sparsity:.3f}"
    return run


def _layout(root: Path) -> tuple[dict[str, Any], GridSpec | GridResults]:
    """The grid's own record (`grid.yaml`), else what `results.json` lists."""
    grid_file = root / GRID_RECORD
    if grid_file.is_file():
        try:
            raw = read_yaml(grid_file, "grid record")
        except ConfigError as error:
            raise ReportError(str(error)) from None
        try:
            return raw, GridSpec.model_validate(raw)
        except ValidationError as error:
            raise ReportError(format_validation_error(str(grid_file), error)) from None
    try:
        results = read_grid_results(root)
    except RecordError as error:
        raise ReportError(str(error)) from None
    if results is not None:
        return results.model_dump(), results
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
    if isinstance(spec, GridSpec):
        name, variants = spec.name, spec.variants()
        if spec.small_dense:
            variants.append((SmallDense.name, SmallDense.name, {}))
        sparsities, seeds = sorted(spec.sparsities), sorted(spec.seeds)
        axis = spec.budget_axis()
        if spec.budgets is not None:
            variants.append((DenseControl.name, DenseControl.name, {}))
            seeds = sorted({seed for _, budget_seeds, _ in axis for seed in budget_seeds})
        cells = [
            (label, method, sparsity, seed, budget)
            for budget, budget_seeds, labels in axis
            for label, method, _ in variants
            if label != DenseControl.name and (label in labels or label == SmallDense.name)
            for sparsity in sparsities
            for seed in sorted(budget_seeds)
        ]
        cells += [
            (DenseControl.name, DenseControl.name, 0.0, seed, budget)
            for budget, budget_seeds, labels in axis
            if DenseControl.name in labels
            for seed in sorted(budget_seeds)
        ]
    else:  # written before grid.yaml existed: the cells results.json lists
        name = spec.grid
        labels = {cell.label: cell.method for cell in spec.cells}
        variants = [(label, method, {}) for label, method in labels.items()]
        sparsities = sorted({c.target_sparsity for c in spec.cells if c.label != DenseControl.name})
        seeds = sorted({cell.seed for cell in spec.cells})
        cells = [
            (cell.label, cell.method, cell.target_sparsity, cell.seed, cell.budget)
            for cell in spec.cells
        ]
    budgets = sorted({budget for *_, budget in cells}, key=lambda b: -1 if b is None else b)
    dense_seed = (raw.get("dense") or {}).get("seed", 0)
    shared = raw.get("dense_from")  # the grid whose dense model this one shares
    dense_folder = dense_dir(root.parent, shared or root.name)
    dense = GridCell(
        run_dir=str(dense_folder),
        label="dense",
        method="dense",
        target_sparsity=0.0,
        seed=dense_seed,
    )
    dense = load_run(dense, pruned=False)
    runs = [
        load_run(
            GridCell(
                run_dir=str(root / cell_dir_name(label, sparsity, seed, budget)),
                label=label,
                method=method,
                target_sparsity=sparsity,
                seed=seed,
                budget=budget,
            ),
            pruned=method not in CONTROLS,
        )
        for label, method, sparsity, seed, budget in cells
    ]
    experiment = Experiment(root, name, variants, sparsities, seeds, dense, runs, raw)
    experiment.budgets = budgets or [None]
    return experiment
