"""`csp reproduce`: the paper comparison as one command.

A grid file (`experiments/grids/PRESET.yaml`) names the dense model and its budget, the pruning
budget shared by every method, the methods with their options, the target sparsities and the
seeds. The protocol of docs/csp.md follows from it:

- the dense model is trained once (`runs/GRID/dense`) and reused by every later invocation;
- every cell (method × sparsity × seed) starts from the dense weights with the same optimizer,
  steps, schedule clock and fine-tune budget, in `runs/GRID/METHOD-sSPARSITY-seedSEED`;
- a finished cell (one with `result.json`) is never trained again; an unfinished one resumes
  from its last checkpoint.

Every config is built and validated before any training starts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
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
from experiments.records import write_json

GRIDS = Path(__file__).resolve().parent / "grids"
PRESETS = ("tiny", "small", "paper")


class GridSpec(StrictModel):
    """Methods × target sparsities × seeds on one corpus and model preset."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    dense: dict[str, Any] = Field(description="the dense run's config, without its name")
    prune: dict[str, Any] = Field(
        default_factory=dict, description="sections that pruning runs change (trainer, optim)"
    )
    schedule: ScheduleSection
    methods: dict[str, dict[str, Any]] = Field(description="method name → its options")
    sparsities: list[float]
    seeds: list[int] = Field(default_factory=lambda: [0])

    @model_validator(mode="after")
    def _has_cells(self) -> GridSpec:
        if not (self.methods and self.sparsities and self.seeds):
            raise ValueError("the grid has no cells: methods, sparsities and seeds must be set")
        return self


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def cell_dir_name(method: str, sparsity: float, seed: int) -> str:
    return f"{method}-s{sparsity:g}-seed{seed}"


class Grid:
    """A validated grid: the dense config and every cell's config, ready to run."""

    def __init__(self, spec: GridSpec, runs_dir: Path, corpus: dict[str, Any] | None) -> None:
        self.spec = spec
        self.root = runs_dir / spec.name
        dense = dict(spec.dense)
        if corpus is not None:
            dense["corpus"] = corpus
        self.dense_raw = {"name": f"{spec.name}.dense", **dense}
        self.dense = self._validate(self.dense_raw, "dense")
        self.cells: list[tuple[Path, dict[str, Any]]] = []
        for method, options in spec.methods.items():
            for sparsity in spec.sparsities:
                for seed in spec.seeds:
                    self.cells.append(
                        (
                            self.root / cell_dir_name(method, sparsity, seed),
                            self._cell_raw(method, options, sparsity, seed),
                        )
                    )
        for directory, raw in self.cells:  # every cell is checked before any work
            self._validate({**raw, "init_from": None}, directory.name)

    def _cell_raw(
        self, method: str, options: dict[str, Any], sparsity: float, seed: int
    ) -> dict[str, Any]:
        raw = _merge(self.dense_raw, self.spec.prune)
        raw.update(
            name=f"{self.spec.name}.{cell_dir_name(method, sparsity, seed)}",
            seed=seed,
            pruning={
                "method": method,
                "sparsity": sparsity,
                "schedule": self.spec.schedule.model_dump(),
                "options": options,
            },
        )
        raw["tracking"] = {**raw.get("tracking", {}), "group": self.spec.name}
        return raw

    def _validate(self, raw: dict[str, Any], where: str) -> ExperimentConfig:
        try:
            return ExperimentConfig.model_validate(raw)
        except ValidationError as error:
            where = f"grid {self.spec.name}, {where}"
            raise ConfigError(format_validation_error(where, error)) from None

    @property
    def dense_dir(self) -> Path:
        return self.root / "dense"

    def cell_configs(self, dense_checkpoint: Path) -> Iterator[tuple[Path, ExperimentConfig]]:
        for directory, raw in self.cells:
            yield (
                directory,
                self._validate({**raw, "init_from": str(dense_checkpoint)}, directory.name),
            )


def load_grid(path: Path, runs_dir: Path, corpus: dict[str, Any] | None = None) -> Grid:
    if not path.is_file():
        raise ConfigError(f"{path}: grid file not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        spec = GridSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(str(path), error)) from None
    return Grid(spec, runs_dir, corpus)


def corpus_from_path(path: Path) -> dict[str, Any]:
    """`--corpus`: a manifest.jsonl, a folder holding one, or a LibriSpeech root."""
    if path.is_file():
        return {"kind": "manifest", "path": str(path)}
    if (path / "manifest.jsonl").is_file():
        return {"kind": "manifest", "path": str(path / "manifest.jsonl")}
    parts = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
    if all((path / part).is_dir() for part in parts.values()):
        return {"kind": "librispeech", **{s: [str(path / p)] for s, p in parts.items()}}
    raise ConfigError(
        f"--corpus {path}: neither a manifest.jsonl, a folder with one, nor a LibriSpeech root "
        f"with {', '.join(parts.values())}"
    )


def _finished(run_dir: Path) -> dict[str, Any] | None:
    result = run_dir / "result.json"
    return json.loads(result.read_text(encoding="utf-8")) if result.is_file() else None


def run_grid(grid: Grid, log: Any = print) -> dict[str, Any]:
    """Train what is not finished yet; return the dense result and every cell's result."""
    from experiments.train import load_corpus, train

    load_corpus(grid.dense)  # render and check the corpus before anything trains
    dense = _finished(grid.dense_dir)
    if dense is None:
        log(f"dense model: training in {grid.dense_dir}")
        dense = train(grid.dense, grid.dense_dir, resume=True)
    else:
        log(f"dense model: finished, reused from {grid.dense_dir}")
    cells = []
    configs = list(grid.cell_configs(Path(dense["checkpoint"])))
    for index, (directory, config) in enumerate(configs, start=1):
        result = _finished(directory)
        if result is None:
            log(f"cell {index}/{len(configs)}: {directory.name}: training")
            result = train(config, directory, resume=True)
        else:
            log(f"cell {index}/{len(configs)}: {directory.name}: finished, skipped")
        cells.append({"run_dir": str(directory), "seed": config.seed, **result})
    summary = {"grid": grid.spec.name, "dense": {"run_dir": str(grid.dense_dir), **dense}}
    summary["cells"] = cells
    write_json(grid.root / "results.json", summary)
    return summary


def results_table(summary: dict[str, Any]) -> str:
    """Test WER (mean over seeds) and realized sparsity per method × target sparsity."""
    dense = summary["dense"]
    sparsities = sorted({cell["target_sparsity"] for cell in summary["cells"]})
    methods = list(dict.fromkeys(cell["method"] for cell in summary["cells"]))
    header = "| method | " + " | ".join(f"s={s:g}: test WER (realized)" for s in sparsities) + " |"
    lines = [header, "|" + "---|" * (len(sparsities) + 1)]
    lines.append(f"| dense | {dense['test_wer']:.3f} (0.000) |" + " |" * (len(sparsities) - 1))
    for method in methods:
        row = []
        for sparsity in sparsities:
            chosen = [
                c
                for c in summary["cells"]
                if c["method"] == method and c["target_sparsity"] == sparsity
            ]
            if not chosen:
                row.append("missing")
                continue
            wer = sum(c["test_wer"] for c in chosen) / len(chosen)
            realized = sum(c["realized_sparsity"] for c in chosen) / len(chosen)
            row.append(f"{wer:.3f} ({realized:.3f})")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def wandb_run_dirs(summary: dict[str, Any]) -> list[Path]:
    """The W&B run folders (offline or online) of the dense run and every cell."""
    runs = [summary["dense"]["run_dir"], *(cell["run_dir"] for cell in summary["cells"])]
    return [
        folder
        for run in runs
        for folder in sorted((Path(run) / "wandb").glob("*run-*"))
        if folder.is_dir()
    ]
