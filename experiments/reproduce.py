"""`csp reproduce`: the paper comparison as one command.

Usage (see `csp reproduce --help`):

    csp reproduce                         # the default grid, experiments/grids/default.yaml
    csp reproduce --grid tiny|paper|FILE  # another grid
    csp reproduce --corpus /data/LibriSpeech

A grid file (`experiments/grids/NAME.yaml`) names the dense model and its budget, the pruning
budget shared by every method, the methods with their options, the target sparsities and the
seeds. The protocol of docs/csp.md follows from it:

- the dense model is trained once (`runs/GRID/dense`) and reused by every later invocation;
- every cell (method × sparsity × seed) starts from the dense weights with the same optimizer,
  steps, schedule clock and fine-tune budget, in `runs/GRID/METHOD-sSPARSITY-seedSEED`;
- a finished cell (one with `result.json`) is never trained again; an unfinished one resumes
  from its last checkpoint;
- with `small_dense: true`, Zhu & Gupta's control joins as a row: at each sparsity a dense
  model as large as the pruned one's non-zeros, trained from scratch for the dense plus the
  pruning steps, in `runs/GRID/small_dense-sSPARSITY-seedSEED`.

Every config is built and validated before any training starts.
"""

from __future__ import annotations

import copy
import fcntl
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from experiments.config import (
    ConfigError,
    ExperimentConfig,
    ScheduleSection,
    StrictModel,
    format_validation_error,
)
from experiments.dense_control import DenseControl
from experiments.files import read_yaml
from experiments.metrics import read_metrics
from experiments.records import (
    GRID_RECORD,
    METRICS,
    GridCell,
    GridDense,
    GridResults,
    RunResult,
    RunState,
    cell_dir_name,
    clear_failure,
    dense_dir,
    read_result,
    record_failure,
    run_state,
    write_grid_results,
)
from experiments.small_dense import SmallDense
from experiments.train import check_run_dir, load_corpus, train
from lightning_modules.pruning.registry import METHODS, ordered

METHOD_SECTIONS = ("schedule", "optim")
"""Sections a grid's method entry may change for itself (its tuned window, learning rate)."""
TUNED_BY = "tuned_by"
"""A grid method entry's provenance: the study trial its values come from (text only)."""
GRIDS = Path(__file__).resolve().parent / "grids"
"""The shipped grids: tiny (tests), default (the main job on a 2-core CPU), paper, ablation."""


class Budget(StrictModel):
    """One budget of a grid's budget axis: the steps of each cell, and the seeds and method
    entries run at it (default: the grid's). A budget may have several entries, each adding
    seeds or methods (a later part's second seeds for a few methods); no cell in two."""

    steps: int = Field(ge=1, description="training steps of every cell of this budget")
    seeds: list[int] | None = Field(None, description="default: the grid's seeds")
    methods: list[str] | None = Field(None, description="labels; default: every entry")
    control: bool = Field(
        True,
        description="train the dense control at this budget (experiments/dense_control.py); "
        "without it, the budget's relative changes have no reference",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_steps(cls, data: Any) -> Any:
        """`400` is short for `{steps: 400}`."""
        return {"steps": data} if isinstance(data, int) and not isinstance(data, bool) else data


SCALED_SCHEDULE = ("start", "end", "every")
SCALED_TRAINER = ("val_every_n_steps", "checkpoint_every_n_steps")
"""What a budget scales with the steps: every schedule window (the grid's and a method
entry's) and update interval, the validation and checkpoint cadence (`Grid.cell_raw`)."""


def scaled_steps(value: int, factor: float, least: int) -> int:
    """`value` steps at a budget `factor` times the grid's, rounded, and at least `least`."""
    return max(least, round(value * factor))


class GridSpec(StrictModel):
    """Methods × target sparsities × seeds on one corpus and model preset."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    dense: dict[str, Any] = Field(description="the dense run's config, without its name")
    dense_from: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="share the dense model of this grid (runs/NAME/dense, trained there if "
        "missing); its dense section must be the same as this one's",
    )
    prune: dict[str, Any] = Field(
        default_factory=dict, description="sections that pruning runs change (trainer, optim)"
    )
    schedule: ScheduleSection
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {cls.name: {} for cls in ordered() if cls.name in METHODS},
        description="label → options (default: every registered method with its defaults, in "
        "the table's order): a method name, or a labelled variant naming its method "
        "(`csp-identity: {method: csp, sensing: identity}`); `schedule` and `optim` in an "
        "entry change the grid's for that method alone (a tuned window or learning rate: the "
        "steps stay the grid's, so every method keeps the same budget); `tuned_by` names where "
        "the entry's values come from (a study's trial) and changes nothing",
    )
    sparsities: list[float]
    seeds: list[int] = Field(default_factory=lambda: [0])
    budgets: list[Budget] | None = Field(
        None,
        description="the budget axis: cell steps (`400`, or `{steps: 1600, seeds: [0], "
        "methods: [...]}`); each cell's schedule windows, update interval, validation and "
        "checkpoint cadence scale from the prune section's max_steps to its budget (a tuned "
        "window keeps its fraction of the budget), and each budget and seed gets a dense "
        "control (experiments/dense_control.py). None: one budget, the prune section's",
    )
    small_dense: bool = Field(
        False,
        description="Zhu & Gupta's control: at each sparsity a dense model with as many "
        "weights as the pruned one has non-zeros, trained from scratch for the dense plus "
        "the pruning budget (experiments/small_dense.py)",
    )

    @model_validator(mode="after")
    def _has_cells(self) -> GridSpec:
        if not (self.methods and self.sparsities and self.seeds):
            raise ValueError("the grid has no cells: methods, sparsities and seeds must be set")
        if self.small_dense and SmallDense.name in self.methods:
            raise ValueError(f"methods: {SmallDense.name!r} is the small-dense control's label")
        for label, options in self.methods.items():
            if not re.fullmatch(r"[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*", label):
                raise ValueError(f"methods: label {label!r} must be letters, digits, _ . and -")
            if not isinstance(options.get("method", label), str):
                raise ValueError(f"methods.{label}.method: expected a method name")
            for section in METHOD_SECTIONS:
                if not isinstance(options.get(section, {}), dict):
                    raise ValueError(f"methods.{label}.{section}: expected a mapping")
            if not isinstance(options.get(TUNED_BY, ""), str):
                raise ValueError(f"methods.{label}.{TUNED_BY}: expected text (study and trial)")
        for index, budget in enumerate(self.budgets or []):
            unknown = sorted(set(budget.methods or []) - set(self.methods))
            if unknown:
                raise ValueError(f"budgets.{index}.methods: {unknown} are not entries of methods")
        cells = Counter(
            (steps, seed, label)
            for steps, seeds, labels in self.budget_axis()
            for seed in seeds
            for label in labels
        )
        twice = [cell for cell, count in cells.items() if count > 1]
        if twice:  # a budget named twice is fine where its entries add other seeds or methods
            steps, seed, label = twice[0]
            raise ValueError(
                f"budgets: {label} at {steps} steps, seed {seed}, is in two entries of that budget"
            )
        if self.budgets is not None and DenseControl.name in self.methods:
            raise ValueError(f"methods: {DenseControl.name!r} is the dense control's label")
        if self.budgets is not None and self.small_dense:
            raise ValueError(
                "small_dense and budgets: the small-dense control has one budget (the dense "
                "plus the prune steps); run it in a grid without a budget axis"
            )
        return self

    def budget_axis(self) -> list[tuple[int | None, list[int], list[str]]]:
        """(steps, seeds, labels) per budget; one (None, ...) for a grid without the axis.
        The dense control is among a budget's labels where it runs."""
        if self.budgets is None:
            return [(None, self.seeds, list(self.methods))]
        return [
            (
                budget.steps,
                budget.seeds or self.seeds,
                [*(budget.methods or self.methods), *([DenseControl.name] * budget.control)],
            )
            for budget in self.budgets
        ]

    def variants(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(label, method, options) per entry; the label names the cells and table rows."""
        variants = []
        for label, options in self.methods.items():
            rest = {key: value for key, value in options.items() if key != "method"}
            variants.append((label, options.get("method", label), rest))
        return variants


@dataclass(frozen=True)
class CellFacts:
    """What a grid asks of one cell: its row label, method, target sparsity and budget."""

    label: str
    method: str
    sparsity: float
    budget: int | None = None


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Grid:
    """A validated grid: the dense config and every cell's config, ready to run."""

    def __init__(self, spec: GridSpec, runs_dir: Path, corpus: dict[str, Any] | None) -> None:
        self.spec = spec
        self.root = runs_dir / spec.name
        dense = dict(spec.dense)
        if corpus is not None:
            dense["corpus"] = corpus
        self.dense_owner = spec.dense_from or spec.name
        self.dense_raw = {"name": f"{self.dense_owner}.dense", **dense}
        self.dense = self.validate(self.dense_raw, "dense")
        self.cells: list[tuple[Path, dict[str, Any]]] = []
        self.facts: dict[Path, CellFacts] = {}
        """What the grid asked of each cell; a control's method is its label."""
        self.controls: set[Path] = set()
        """Cells trained from scratch (the small-dense control)."""
        variants = spec.variants()
        for budget, seeds, labels in spec.budget_axis():  # the shortest budgets run first
            for label, method, options in variants:
                if label not in labels:
                    continue
                for sparsity in spec.sparsities:
                    for seed in seeds:
                        directory = self.root / cell_dir_name(label, sparsity, seed, budget)
                        self.facts[directory] = CellFacts(label, method, sparsity, budget)
                        raw = self.cell_raw(label, method, options, sparsity, seed, budget)
                        self.cells.append((directory, raw))
            if DenseControl.name in labels:
                for seed in seeds:
                    name = DenseControl.name
                    directory = self.root / cell_dir_name(name, 0.0, seed, budget)
                    self.facts[directory] = CellFacts(name, name, 0.0, budget)
                    self.cells.append((directory, self.dense_control_raw(seed, budget)))
        if spec.small_dense:
            for sparsity in spec.sparsities:
                for seed in spec.seeds:
                    directory = self.root / cell_dir_name(SmallDense.name, sparsity, seed)
                    self.facts[directory] = CellFacts(SmallDense.name, SmallDense.name, sparsity)
                    self.controls.add(directory)
                    self.cells.append((directory, self.small_dense_raw(sparsity, seed)))
        for directory, raw in self.cells:  # every cell is checked before any work
            self.validate({**raw, "init_from": None}, directory.name)

    def pruning_raw(self, budget: int | None) -> dict[str, Any]:
        """The dense config with the grid's prune section, its steps and cadence scaled to
        `budget` (`SCALED_TRAINER`); as it is without a budget."""
        raw = _merge(self.dense_raw, self.spec.prune)
        if budget is not None:
            trainer, factor = self.validate(raw, "prune").trainer, self.budget_factor(budget)
            scaled = {key: scaled_steps(getattr(trainer, key), factor, 1) for key in SCALED_TRAINER}
            raw = _merge(raw, {"trainer": {**scaled, "max_steps": budget}})
        return raw

    def budget_factor(self, budget: int | None) -> float:
        """The budget's steps over the prune section's (1 without a budget)."""
        if budget is None:
            return 1.0
        steps = self.validate(_merge(self.dense_raw, self.spec.prune), "prune").trainer.max_steps
        return budget / steps

    def cell_raw(
        self,
        label: str,
        method: str,
        options: dict[str, Any],
        sparsity: float,
        seed: int,
        budget: int | None = None,
    ) -> dict[str, Any]:
        """The raw config of one cell (a sweep trial starts from it too), not yet checked; at a
        `budget`, its schedule window and update interval scale with the steps."""
        options = {key: value for key, value in options.items() if key != TUNED_BY}
        schedule = {**self.spec.schedule.model_dump(), **options.pop("schedule", {})}
        if budget is not None:
            factor = self.budget_factor(budget)
            for key in SCALED_SCHEDULE:
                schedule[key] = scaled_steps(schedule[key], factor, 1 if key == "every" else 0)
        raw = _merge(self.pruning_raw(budget), {"optim": options.pop("optim", {})})
        raw.update(
            name=f"{self.spec.name}.{cell_dir_name(label, sparsity, seed, budget)}",
            seed=seed,
            pruning={
                "method": method,
                "sparsity": sparsity,
                "schedule": schedule,
                "options": options,
            },
        )
        raw["tracking"] = {**raw.get("tracking", {}), "group": self.spec.name, "job_type": label}
        return raw

    def dense_control_raw(self, seed: int, budget: int) -> dict[str, Any]:
        """The dense control at `budget`: the dense weights trained on for the budget's steps
        with the pruning runs' optimizer, learning rate and cadence, no pruning."""
        raw = self.pruning_raw(budget)
        label = cell_dir_name(DenseControl.name, 0.0, seed, budget)
        raw.update(name=f"{self.spec.name}.{label}", seed=seed)
        raw["tracking"] = {
            **raw.get("tracking", {}),
            "group": self.spec.name,
            "job_type": DenseControl.name,
        }
        return raw

    def small_dense_raw(self, sparsity: float, seed: int) -> dict[str, Any]:
        """The control at `sparsity` (`SmallDense.changes`), trained from scratch."""
        pruning_steps = self.validate(_merge(self.dense_raw, self.spec.prune), "prune").trainer
        changes = SmallDense.changes(self.dense, pruning_steps.max_steps, sparsity)
        raw = _merge(self.dense_raw, changes)
        label = cell_dir_name(SmallDense.name, sparsity, seed)
        raw.update(name=f"{self.spec.name}.{label}", seed=seed)
        raw["tracking"] = {
            **raw.get("tracking", {}),
            "group": self.spec.name,
            "job_type": SmallDense.name,
        }
        return raw

    def validate(self, raw: dict[str, Any], where: str) -> ExperimentConfig:
        """`raw` as a checked config; an error names the grid and `where` in it."""
        try:
            return ExperimentConfig.model_validate(raw)
        except ValidationError as error:
            where = f"grid {self.spec.name}, {where}"
            raise ConfigError(format_validation_error(where, error)) from None

    @property
    def dense_dir(self) -> Path:
        """runs/GRID/dense, or the folder of the grid named by `dense_from`."""
        return dense_dir(self.root.parent, self.dense_owner)

    def cell_dirs(self, budgets: Collection[int] | None = None) -> list[Path]:
        """The cells' folders in the grid's order; of `budgets` alone when given (a part of
        a grid with a budget axis: `csp reproduce --budget N`)."""
        if budgets is not None:
            unknown = sorted(set(budgets) - {budget for budget, _, _ in self.spec.budget_axis()})
            if unknown:
                raise ConfigError(f"grid {self.spec.name}: no budget {unknown} in its budgets")
        return [
            directory
            for directory, _ in self.cells
            if budgets is None or self.facts[directory].budget in budgets
        ]

    def cell_configs(self, dense_checkpoint: Path) -> Iterator[tuple[Path, ExperimentConfig]]:
        """Every cell's config: pruning cells and the dense control start from the dense
        weights, the small-dense control from scratch."""
        for directory, raw in self.cells:
            start = None if directory in self.controls else str(dense_checkpoint)
            yield directory, self.validate({**raw, "init_from": start}, directory.name)


def grid_path(name_or_path: str | Path) -> Path:
    """A shipped grid by name (`tiny`, `default`, `paper`, `ablation`), else a grid file."""
    shipped = GRIDS / f"{name_or_path}.yaml"
    return shipped if shipped.is_file() else Path(name_or_path)


def load_grid(path: Path, runs_dir: Path, corpus: dict[str, Any] | None = None) -> Grid:
    raw = read_yaml(path, "grid file")
    try:
        spec = GridSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(str(path), error)) from None
    return Grid(spec, runs_dir, corpus)


def run_cell(config: ExperimentConfig, directory: Path) -> RunState:
    """Train one cell; one that raises is recorded in `failed.json` and the grid goes on.

    The next invocation tries a failed cell again (it resumes from its last checkpoint).
    """
    clear_failure(directory)
    try:
        train(config, directory, resume=True)
    except Exception as error:  # any failure of one cell is that cell's record
        record_failure(
            directory, f"{type(error).__name__}: {error}".strip(), traceback.format_exc()
        )
    return run_state(directory)


def check_dense(grid: Grid) -> None:
    """Before any work: the corpus renders and reads, and a dense model already in the
    grid's dense folder was trained with this grid's dense config (an edited or shared grid
    would otherwise reuse another model silently)."""
    check_run_dir(grid.dense, grid.dense_dir, resume=True)
    load_corpus(grid.dense)


def dense_result(grid: Grid, log: Callable[[str], None] = print) -> RunResult:
    """The dense model's result: reused when it ended, else trained (or resumed)."""
    dense = read_result(grid.dense_dir)
    if dense is not None:
        log(f"dense model: complete, reused from {grid.dense_dir}")
        return dense
    log(f"dense model: training in {grid.dense_dir}")
    return train(grid.dense, grid.dense_dir, resume=True)


SETTLED_TOLERANCE = 0.01
"""A cell's fine-tuning has settled when its dev WER fell by at most this much (absolute)
from the middle of fine-tuning to its end."""


def fine_tuning_settling(directory: Path, config: ExperimentConfig) -> dict[str, Any] | None:
    """Dev WER at the middle and at the end of a pruning cell's fine-tuning (the steps after
    its schedule ends), from the cell's metrics stream, and whether it has settled; None for a
    run without a schedule or fewer than two validations in its fine-tuning."""
    metrics = directory / METRICS
    if config.pruning is None or not metrics.is_file():
        return None
    start, end = config.pruning.schedule.end, config.trainer.max_steps
    dev = {}
    for row in read_metrics(metrics):
        if "dev_wer" in row and start <= row["step"] < end:
            dev.setdefault(row["step"], row["dev_wer"])  # the first: not the final re-check
    if len(dev) < 2:
        return None
    middle = min(dev, key=lambda step: abs(step - (start + end) / 2))
    last = max(dev)
    if middle == last:
        return None
    return {
        "middle_step": middle,
        "dev_wer_middle": dev[middle],
        "end_step": last,
        "dev_wer_end": dev[last],
        "settled": dev[middle] - dev[last] <= SETTLED_TOLERANCE,
    }


def train_dense(grid: Grid, log: Callable[[str], None] = print) -> RunResult:
    """The grid's dense model, trained if missing under a lock, so that processes starting at
    once on one machine never train it twice."""
    check_dense(grid)
    grid.root.mkdir(parents=True, exist_ok=True)
    with open(grid.root / ".dense.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dense_result(grid, log)


def start_grid(grid: Grid, log: Callable[[str], None] = print) -> RunResult:
    """Check the grid, record which cells it holds (`grid.yaml` in its folder, so a report
    can show the ones that never ran) and return its dense model (`train_dense`)."""
    check_dense(grid)
    grid.root.mkdir(parents=True, exist_ok=True)
    spec = {**grid.spec.model_dump(mode="json"), "dense": grid.dense.model_dump(mode="json")}
    (grid.root / GRID_RECORD).write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return train_dense(grid, log)


def run_grid(
    grid: Grid, log: Callable[[str], None] = print, budgets: Collection[int] | None = None
) -> GridResults:
    """Train what has not ended yet (of `budgets` alone when given), one cell after another;
    return the summary of the whole grid (`summarize_grid`). A cell that raises or diverges
    is recorded with its state and reason; the other cells still run."""
    chosen = set(grid.cell_dirs(budgets))  # an unknown budget fails before any work
    dense = start_grid(grid, log)
    configs = [
        (directory, config)
        for directory, config in grid.cell_configs(Path(dense.checkpoint))
        if directory in chosen
    ]
    todo = sum(run_state(directory).result is None for directory, _ in configs)
    trained, spent = 0, 0.0
    for index, (directory, config) in enumerate(configs, start=1):
        where = f"cell {index}/{len(configs)}: {directory.name}"
        state = run_state(directory)
        if state.result is None:
            left = (
                f" (about {spent / trained * (todo - trained) / 60:.0f} min left)"
                if trained
                else ""
            )
            log(f"{where}: training{left}")
            started = time.perf_counter()
            state = run_cell(config, directory)
            trained, spent = trained + 1, spent + time.perf_counter() - started
        else:
            log(f"{where}: {state.status}, skipped")
        if state.status != "complete":
            log(f"{where}: {state.note}")
    return summarize_grid(grid, dense)


def summarize_grid(grid: Grid, dense: RunResult) -> GridResults:
    """The dense result and every cell's state, read from the run folders, written to the
    grid's results.json."""
    cells = []
    for directory, config in grid.cell_configs(Path(dense.checkpoint)):
        state = run_state(directory)
        facts = grid.facts[directory]
        cells.append(
            GridCell(
                run_dir=str(directory),
                label=facts.label,  # a control's result names no method or target: the grid
                method=facts.method,
                target_sparsity=facts.sparsity,
                seed=config.seed,
                budget=facts.budget,
                status=state.status,
                reason=state.reason,
                settled=fine_tuning_settling(directory, config),
                result=state.result,
            )
        )
    summary = GridResults(
        grid=grid.spec.name,
        dense=GridDense(run_dir=str(grid.dense_dir), **dense.model_dump()),
        cells=cells,
    )
    write_grid_results(grid.root, summary)
    return summary


def wandb_run_dirs(summary: GridResults) -> list[Path]:
    """The W&B run folders (offline or online) of the dense run and every cell."""
    runs = [summary.dense.run_dir, *(cell.run_dir for cell in summary.cells)]
    return [
        folder
        for run in runs
        for folder in sorted((Path(run) / "wandb").glob("*run-*"))
        if folder.is_dir()
    ]
