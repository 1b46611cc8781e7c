"""Sweep specs: a search space over one pruning method, as a YAML file in `sweeps/specs/`.

A trial is one pruning run of a grid (`experiments/grids/`): the grid gives the dense model
(trained once, shared with `csp reproduce`), the pruning budget and the schedule; the spec
names the method, fixes what it does not search, and maps dotted config paths
(`pruning.options.sparsity_weight`, `pruning.schedule.end`, `optim.learning_rate`, ...) to
ranges. Every trial config is checked at `csp sweep create`, at both ends of every range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from experiments.config import ConfigError, StrictModel, format_validation_error
from experiments.files import read_yaml

# What a trial can be chosen by, and in which direction. Test WER is never one of them.
OBJECTIVES: dict[str, Literal["minimize", "maximize"]] = {
    "dev_wer": "minimize",
    "realized_sparsity": "maximize",
    "packed_bytes": "minimize",
    "decode_speedup": "maximize",  # measured latency: dense runtime / sparse runtime, batch 1
}
SPECS = Path(__file__).resolve().parent / "specs"


class ParamSpec(StrictModel):
    """One searched value: a range (`low`, `high`, `log`, `step`) or a list of `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self) -> ParamSpec:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs low and high (or give choices)")
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got {self.low} and {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step")
        return self

    @property
    def is_int(self) -> bool:
        """Integer ranges: integral bounds and step (schedule steps, block sizes)."""
        bounds = (self.low, self.high, self.step if self.step is not None else 1)
        return self.choices is None and all(float(v).is_integer() for v in bounds)

    def extremes(self) -> list[Any]:
        if self.choices is not None:
            return list(self.choices)
        if self.is_int:
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class SamplerSpec(StrictModel):
    kind: Literal["tpe", "random", "nsga2", "qmc"] = "tpe"
    seed: int = Field(0, ge=0)
    startup_trials: int = Field(
        10,
        ge=1,
        description="tpe: trials sampled at random before it models the results (Optuna's "
        "n_startup_trials); a small trial budget needs fewer than the default 10",
    )


class EarlyStoppingSpec(StrictModel):
    """Trial pruning on the dev WER of each validation (Optuna's pruners; not weight pruning)."""

    kind: Literal["none", "median", "percentile", "hyperband", "threshold"] = "median"
    startup_trials: int = Field(2, ge=0, description="trials that always run to the end")
    warmup_steps: int = Field(0, ge=0, description="training steps before a trial may stop")
    percentile: float = Field(25.0, gt=0, lt=100)
    upper: float | None = Field(None, description="threshold: stop above this dev WER")

    @model_validator(mode="after")
    def _threshold_has_bound(self) -> EarlyStoppingSpec:
        if self.kind == "threshold" and self.upper is None:
            raise ValueError("the threshold kind needs `upper`")
        return self


class SweepSpec(StrictModel):
    """A study: one method, its searched values, the objective(s) and the trial budget."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    grid: Path = Field(description="the grid file giving the dense model and pruning budget")
    method: str
    sparsity: float | None = Field(
        None, ge=0, lt=1, description="fixed target sparsity (else search pruning.sparsity)"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="fixed method options")
    fixed: dict[str, Any] = Field(
        default_factory=dict, description="other fixed config values by dotted path"
    )
    space: dict[str, ParamSpec] = Field(min_length=1)
    objectives: list[str] = Field(default_factory=lambda: ["dev_wer"], min_length=1)
    trials: int = Field(20, ge=1, description="the trial budget (the same for every method)")
    seed: int = Field(0, ge=0, description="the seed of every trial's run")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec)

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        for objective in self.objectives:
            if objective not in OBJECTIVES:
                hint = " (test WER is never used to choose)" if "test" in objective else ""
                raise ValueError(
                    f"unknown objective {objective!r}{hint}; choose from {', '.join(OBJECTIVES)}"
                )
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives repeat: {self.objectives}")
        if self.multi_objective and self.early_stopping.kind != "none":
            raise ValueError(
                "early stopping works on one objective only: set early_stopping.kind: none "
                "for a multi-objective study"
            )
        searched = "pruning.sparsity" in self.space
        if searched == (self.sparsity is not None):
            raise ValueError("give a fixed `sparsity` or search `pruning.sparsity`, exactly one")
        return self

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[name] for name in self.objectives]


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a spec file; relative grid paths are relative to the spec's folder
    first, then to the working directory."""
    raw = read_yaml(path, "sweep spec")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(str(path), error)) from None
    if not spec.grid.is_absolute():
        beside = (path.parent / spec.grid).resolve()
        spec.grid = beside if beside.is_file() else spec.grid.resolve()
    return spec
