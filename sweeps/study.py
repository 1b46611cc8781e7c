"""A sweep: an Optuna study plus the spec and grid it was created from.

The spec, the grid and the corpus are stored in the study itself (user attributes), so a
worker on another machine needs only the study's name and the storage URL.
"""

from __future__ import annotations

import json
import socket
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from experiments.config import ConfigError, ExperimentConfig, set_dotted
from experiments.records import read_result
from experiments.reproduce import Grid, GridSpec, load_grid
from sweeps.spec import EarlyStoppingSpec, SweepSpec
from sweeps.storage import open_storage, shown

SPEC_ATTR = "csp.spec"
GRID_ATTR = "csp.grid"
CORPUS_ATTR = "csp.corpus"
RUN_DIR_ATTR = "run_dir"
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class Sweep:
    """A study with its spec and grid, and the storage it was opened from (kept, so the
    workers read and fail trials through Optuna's public storage API)."""

    study: optuna.Study
    spec: SweepSpec
    grid: Grid
    storage_url: str
    storage: optuna.storages.BaseStorage

    @property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.spec.name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    @property
    def trials_dir(self) -> Path:
        return self.grid.root.parent / "sweeps" / self.spec.name

    def trial_dir(self, number: int) -> Path:
        return self.trials_dir / f"trial-{number:04d}"

    def trial_config(
        self, params: dict[str, Any], number: int, init_from: Path | None
    ) -> ExperimentConfig:
        return trial_config(self.spec, self.grid, params, number, init_from)

    def dense_checkpoint(self) -> Path | None:
        """The grid's finished dense model (absolute path), or None if not trained yet."""
        result = read_result(self.grid.dense_dir)
        return Path(result.checkpoint).resolve() if result is not None else None

    def counts(self) -> Counter[str]:
        return Counter(t.state.name for t in self.study.get_trials(deepcopy=False))

    def done(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=DONE_STATES))


def trial_config(
    spec: SweepSpec, grid: Grid, params: dict[str, Any], number: int, init_from: Path | None
) -> ExperimentConfig:
    """The experiment config of one trial: a grid cell with the trial's values set."""
    raw = grid.cell_raw(
        label=spec.method,
        method=spec.method,
        options=dict(spec.options),
        sparsity=spec.sparsity if spec.sparsity is not None else 0.0,
        seed=spec.seed,
    )
    raw["name"] = f"{spec.name}.trial-{number:04d}"
    for key, value in {**spec.fixed, **params}.items():
        set_dotted(raw, key, value)
    raw["tracking"] = {
        **raw.get("tracking", {}),
        "group": spec.name,
        "job_type": spec.method,
        "sweep": {"study": spec.name, "trial": number, "params": params},
    }
    raw["init_from"] = str(init_from) if init_from is not None else None
    return grid.validate(raw, f"sweep {spec.name}, trial {number}")


def build_grid(spec: SweepSpec, grid_spec: dict[str, Any], corpus: Any, runs_dir: Path) -> Grid:
    try:
        parsed = GridSpec.model_validate(grid_spec)
    except Exception as error:
        raise ConfigError(f"sweep {spec.name}: its grid does not validate ({error})") from None
    return Grid(parsed, runs_dir, corpus)


def check_trial_configs(spec: SweepSpec, grid: Grid) -> None:
    """Build the trial config at both ends of every range (and every choice): a value that
    cannot run is reported now, not hours into the study."""
    base = {key: param.extremes()[0] for key, param in spec.space.items()}
    for key, param in spec.space.items():
        for value in param.extremes():
            try:
                trial_config(spec, grid, {**base, key: value}, 0, None)
            except ConfigError as error:
                raise ConfigError(f"sweep {spec.name}: space {key} = {value!r}: {error}") from None


def create_sweep(
    spec: SweepSpec, storage_url: str, corpus: dict[str, Any] | None, runs_dir: Path
) -> tuple[Sweep, bool]:
    """Create the study once (workers never race on a fresh database); returns it and
    whether it was new. Creating it again with the same spec is a no-op."""
    grid = load_grid(spec.grid, runs_dir, corpus)
    check_trial_configs(spec, grid)
    storage = open_storage(storage_url)
    stored_spec = spec.model_dump(mode="json")
    stored_grid = grid.spec.model_dump(mode="json")
    existing = set(optuna.get_all_study_names(storage=storage))
    if spec.name in existing:
        study = optuna.load_study(study_name=spec.name, storage=storage)
        if study.user_attrs.get(SPEC_ATTR) != stored_spec:
            raise ConfigError(
                f"study {spec.name!r} already exists in {shown(storage_url)} with another "
                "spec; rename the sweep or delete the study"
            )
        return Sweep(study, spec, grid, storage_url, storage), False
    sweep = Sweep(
        optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions),
        spec,
        grid,
        storage_url,
        storage,
    )
    sweep.study.set_user_attr(SPEC_ATTR, stored_spec)
    sweep.study.set_user_attr(GRID_ATTR, stored_grid)
    sweep.study.set_user_attr(CORPUS_ATTR, corpus)
    sweep.study.set_metric_names(spec.objectives)  # experimental: quiet (sweeps.storage)
    return sweep, True


def open_sweep(name: str, storage_url: str, runs_dir: Path, worker: int = 0) -> Sweep:
    """Load a created study with its spec; the sampler is seeded per host and worker so
    concurrent workers do not propose the same point."""
    storage = open_storage(storage_url)
    names = optuna.get_all_study_names(storage=storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            f"no study {name!r} in {shown(storage_url)} (studies there: {known}); "
            "create it first with `csp sweep create SPEC`"
        )
    study = optuna.load_study(study_name=name, storage=storage)
    spec = SweepSpec.model_validate(study.user_attrs[SPEC_ATTR])
    grid = build_grid(spec, study.user_attrs[GRID_ATTR], study.user_attrs[CORPUS_ATTR], runs_dir)
    seed = spec.sampler.seed ^ zlib.crc32(f"{socket.gethostname()}:{worker}".encode())
    study.sampler = make_sampler(spec, seed)
    study.pruner = make_pruner(spec.early_stopping)
    return Sweep(study, spec, grid, storage_url, storage)


def make_sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    kind = spec.sampler.kind
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=spec.sampler.startup_trials
    )


def make_pruner(early: EarlyStoppingSpec) -> optuna.pruners.BasePruner:
    if early.kind == "none":
        return optuna.pruners.NopPruner()
    if early.kind == "median":
        return optuna.pruners.MedianPruner(early.startup_trials, early.warmup_steps)
    if early.kind == "percentile":
        return optuna.pruners.PercentilePruner(
            early.percentile, early.startup_trials, early.warmup_steps
        )
    if early.kind == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.ThresholdPruner(upper=early.upper, n_warmup_steps=early.warmup_steps)


def suggest(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    """The trial's values for the spec's search space, by dotted config path."""
    params: dict[str, Any] = {}
    for key, param in spec.space.items():
        if param.choices is not None:
            params[key] = trial.suggest_categorical(key, param.choices)
        elif param.is_int:
            step = int(param.step or 1)
            params[key] = trial.suggest_int(
                key, int(param.low), int(param.high), step=step, log=param.log
            )
        else:
            params[key] = trial.suggest_float(
                key, param.low, param.high, step=param.step, log=param.log
            )
    return params


GRID_ENTRY_SECTIONS = {"pruning.options.": None, "pruning.schedule.": "schedule", "optim.": "optim"}
"""Where a searched value goes in a grid's method entry: an option, or the method's own
schedule or optimizer section (experiments.reproduce.METHOD_SECTIONS)."""


def grid_entry(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as a method entry of a grid file (`experiments/grids/`), so that a
    grid runs the method as the trial did: its options, its schedule and its learning rate."""
    entry: dict[str, Any] = dict(spec.options)
    for key, value in sorted({**spec.fixed, **params}.items()):
        prefix = next((p for p in GRID_ENTRY_SECTIONS if key.startswith(p)), None)
        if prefix is None:
            raise ConfigError(
                f"sweep {spec.name}: {key} has no place in a grid's method entry (only "
                f"{', '.join(p + '*' for p in GRID_ENTRY_SECTIONS)})"
            )
        section, name = GRID_ENTRY_SECTIONS[prefix], key.removeprefix(prefix)
        (entry.setdefault(section, {}) if section else entry)[name] = value
    return entry


def best_trials(sweep: Sweep) -> list[FrozenTrial]:
    """The best trial (one objective) or the Pareto front (several), by the first objective."""
    if not sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if sweep.spec.multi_objective:
        return sorted(sweep.study.best_trials, key=lambda t: t.values[0])
    return [sweep.study.best_trial]


def describe(trial: FrozenTrial, spec: SweepSpec) -> str:
    values = ", ".join(f"{n}={v:.4g}" for n, v in zip(spec.objectives, trial.values, strict=True))
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
    )
    return f"trial {trial.number}: {values}  [{params}]"


def status_report(sweep: Sweep, budget: int | None = None) -> str:
    """Counts by state, the budget, the best trial so far or the Pareto front."""
    counts = sweep.counts()
    budget = budget or sweep.spec.trials
    states = ", ".join(f"{counts.get(s.name, 0)} {s.name.lower()}" for s in TrialState)
    lines = [
        f"study {sweep.spec.name} ({sweep.spec.method}, {shown(sweep.storage_url)})",
        f"trials: {sweep.done()}/{budget} done; {states}",
    ]
    best = best_trials(sweep)
    if not best:
        lines.append("no finished trial yet")
    elif sweep.spec.multi_objective:
        lines.append(f"Pareto front ({len(best)} trials, by {sweep.spec.objectives[0]}):")
        lines += [f"  {describe(trial, sweep.spec)}" for trial in best]
    else:
        lines.append(f"best so far: {describe(best[0], sweep.spec)}")
    for trial in best:
        if RUN_DIR_ATTR in trial.user_attrs:
            lines.append(f"  trial {trial.number} run: {trial.user_attrs[RUN_DIR_ATTR]}")
    return "\n".join(lines)


def best_config_yaml(sweep: Sweep, number: int | None, init_from: Path | None) -> str:
    """The chosen trial as an experiment YAML that `csp train --config` runs as it is."""
    best = best_trials(sweep)
    if number is None:
        if not best:
            raise ConfigError(f"study {sweep.spec.name!r} has no finished trial yet")
        trial = best[0]
    else:
        matching = [t for t in sweep.study.get_trials(deepcopy=False) if t.number == number]
        if not matching or matching[0].state != TrialState.COMPLETE:
            state = matching[0].state.name.lower() if matching else "not in the study"
            raise ConfigError(
                f"study {sweep.spec.name!r}: trial {number} is {state}; only a complete "
                "trial has objective values to choose it by"
            )
        trial = matching[0]
    config = sweep.trial_config(trial.params, trial.number, init_from)
    raw = config.model_dump(mode="json")
    raw["name"] = f"{sweep.spec.name}.best"
    values = dict(zip(sweep.spec.objectives, trial.values, strict=True))
    header = (
        f"# Trial {trial.number} of study {sweep.spec.name} ({trial.state.name.lower()}), "
        f"chosen on {json.dumps(values)}\n# run it: csp train --config THIS_FILE\n"
    )
    return header + yaml.safe_dump(raw, sort_keys=False)
