"""Experiment configuration: YAML files validated strictly (unknown keys and wrong types fail).

A config names a corpus, a model preset (with optional overrides), the data batching, the
optimizer and the trainer budget. `load_config` applies `--set key=value` overrides and
reports every invalid field by its dotted path before any work starts.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from experiments.files import ConfigError, read_yaml
from lightning_modules.asr.presets import PRESETS, RNNTConfig, model_config
from lightning_modules.data.readers import CorpusSection, corpus_section
from lightning_modules.errors import field_problems
from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.registry import option_schema
from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.sparsity_patterns import parse_pattern


class StrictModel(BaseModel):
    # inf stays inf in config.yaml (`.inf`), not null: ε = ∞ is a real CSP setting
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class ModelSection(StrictModel):
    preset: str = "small"
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of {sorted(PRESETS)}")
        return value

    @model_validator(mode="after")
    def _valid_overrides(self) -> ModelSection:
        unknown = sorted(set(self.overrides) - set(RNNTConfig.model_fields))
        if unknown:
            raise ValueError(f"unknown model override(s) {unknown}")
        self.resolve()
        return self

    def resolve(self) -> RNNTConfig:
        return model_config(self.preset, **self.overrides)


class TokenizerSection(StrictModel):
    """The output units: characters, or word pieces trained on the training transcripts."""

    kind: Literal["char", "sentencepiece"] = "char"
    vocab_size: int = Field(
        256, ge=32, description="sentencepiece pieces (the blank comes on top); ignored for char"
    )
    model_type: Literal["unigram", "bpe"] = "unigram"


class DataSection(StrictModel):
    max_batch_seconds: float = Field(60.0, gt=0)
    num_workers: int = Field(0, ge=0)
    sorted_epochs: int = Field(
        0, ge=0, description="first epochs in order of duration, shortest first (SortaGrad)"
    )


class OptimSection(StrictModel):
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup_fraction: float = Field(0.1, gt=0, lt=1)


class TrainerSection(StrictModel):
    max_steps: int = Field(1000, ge=1)
    val_every_n_steps: int = Field(200, ge=1)
    checkpoint_every_n_steps: int = Field(100, ge=1)
    accelerator: str = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float = Field(5.0, ge=0)
    accumulate_grad_batches: int = Field(1, ge=1)
    deterministic: bool | Literal["warn"] = True
    bench_utterances: int = Field(
        4,
        ge=0,
        description="test utterances a pruned run decodes at batch 1 to measure its sparse "
        "runtime's speed-up over the dense runtime (csp bench; 0: not measured)",
    )


class DecodingSection(StrictModel):
    """How the final test and the real-speech test decode. Dev WER during training is always
    greedy: it is computed often and must stay cheap."""

    beam: int = Field(0, ge=0, description="beam width; 0 or 1: greedy search")
    lm_weight: float = Field(
        0.0,
        ge=0,
        description="weight of a character n-gram LM of the training transcripts, fused into "
        "the beam search (0: no LM)",
    )
    length_bonus: float = Field(0.0, description="added per emitted character with the LM")
    lm_order: int = Field(8, ge=1, description="the LM's order (history of order − 1 characters)")
    lexicon: bool = Field(
        False, description="spell only words of the training transcripts (closed vocabulary)"
    )

    @model_validator(mode="after")
    def _fusion_needs_a_beam(self) -> DecodingSection:
        if (self.lm_weight > 0 or self.lexicon) and self.beam < 2:
            raise ValueError(f"lm_weight and lexicon need beam search: beam is {self.beam}, set 2+")
        return self

    @property
    def fused(self) -> bool:
        return self.lm_weight > 0 or self.lexicon


def _schedule_fields() -> dict[str, Any]:
    """The fields of `SparsitySchedule` but its final sparsity (the pruning section's)."""
    hints = typing.get_type_hints(SparsitySchedule)
    return {
        field.name: (
            hints[field.name],
            ... if field.default is dataclasses.MISSING else field.default,
        )
        for field in dataclasses.fields(SparsitySchedule)
        if field.name != "final"
    }


ScheduleSection = create_model(
    "ScheduleSection",
    __base__=StrictModel,
    __doc__="When the pruning happens: `SparsitySchedule`'s fields (pruning/schedules.py).",
    **_schedule_fields(),
)


class PruningSection(StrictModel):
    """A pruning method (by its registered name), its target sparsity and its own options."""

    method: str
    sparsity: float = Field(ge=0, lt=1, description="absolute target of every pruned tensor")
    schedule: ScheduleSection
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    pattern: str = Field(
        "unstructured", description="where kept weights lie: unstructured, N:M (2:4), HxW (4x4)"
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown pruning method {value!r}; choose one of {sorted(METHODS)}")
        return value

    @field_validator("pattern")
    @classmethod
    def _known_pattern(cls, value: str) -> str:
        return parse_pattern(value).spec

    @model_validator(mode="after")
    def _constructible(self) -> PruningSection:
        schema = option_schema(METHODS[self.method])
        unknown = sorted(set(self.options) - set(schema.model_fields))
        if unknown:
            known = sorted(schema.model_fields) or "none"
            raise ValueError(f"unknown option(s) {unknown} for {self.method}; known: {known}")
        try:  # the options against the method's schema, then by the method itself
            schema.model_validate(self.options)
        except ValidationError as error:
            problems = "; ".join(field_problems(error, with_input=False))
            raise ValueError(f"{self.method} options: {problems}") from None
        self.build(seed=0)
        return self

    def build(self, seed: int) -> Any:
        """The method's Lightning callback."""
        options = option_schema(METHODS[self.method]).model_validate(self.options)
        schedule = SparsitySchedule(final=self.sparsity, **self.schedule.model_dump())
        return METHODS[self.method](
            schedule,
            include=self.include,
            exclude=self.exclude,
            seed=seed,
            pattern=self.pattern,
            **dict(options),
        )


class TrackingSection(StrictModel):
    """Weights & Biases: offline unless the user has logged in or asks otherwise."""

    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="default: $WANDB_MODE, else online when logged in, else offline"
    )
    project: str = "csp-asr"
    group: str | None = Field(None, description="default: the experiment name")
    job_type: str | None = Field(None, description="default: the pruning method, or dense")
    tags: list[str] = Field(default_factory=list)
    sweep: dict[str, Any] = Field(
        default_factory=dict,
        description="the sweep trial this run is (study, trial number, parameters); set by "
        "`csp sweep`, logged in the W&B config",
    )


class ExperimentConfig(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    corpus: SerializeAsAny[CorpusSection] = Field(
        default_factory=lambda: corpus_section({}),
        description="a registered corpus kind's section (lightning_modules/data/readers/)",
    )
    model: ModelSection = Field(default_factory=ModelSection)
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    data: DataSection = Field(default_factory=DataSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    decoding: DecodingSection = Field(default_factory=DecodingSection)
    pruning: PruningSection | None = None
    init_from: Path | None = Field(
        None, description="a checkpoint whose weights start the run (the dense model)"
    )
    real_test: Path | None = Field(
        None,
        description="a real-speech test corpus (`csp data real`; built there if missing) "
        "scored after the test split: an out-of-domain check, never a tuning target",
    )
    tracking: TrackingSection = Field(default_factory=TrackingSection)

    @field_validator("corpus", mode="before")
    @classmethod
    def _corpus_of_its_kind(cls, value: Any) -> CorpusSection:
        return corpus_section(value)


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, making the sections on the way."""
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is not a config section")
    node[leaf] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys from ``key=value`` strings; values are parsed as YAML scalars."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. trainer.max_steps=500)")
        try:
            set_dotted(raw, key, yaml.safe_load(value))
        except ConfigError as error:
            raise ConfigError(f"--set {item!r}: {error}") from None
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate an experiment config."""
    raw = apply_overrides(read_yaml(path, "config file"), overrides or [])
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(str(path), error)) from None
    return config


def format_validation_error(where: str, error: ValidationError) -> str:
    """Every invalid field by its dotted path, with the value given."""
    lines = [f"  {problem}" for problem in field_problems(error)]
    return f"{where}: invalid config\n" + "\n".join(lines)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
