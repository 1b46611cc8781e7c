from pathlib import Path

import pytest

from experiments.config import ConfigError, ExperimentConfig, load_config
from experiments.train import train
from lightning_modules.asr.rnnt import bf16_lstm_runs_on_this_cpu

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_shipped_configs_are_valid() -> None:
    configs = sorted((REPO / "experiments" / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        config = load_config(path)
        assert config.name == path.stem


def test_overrides_set_nested_fields_with_yaml_types(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "name: x\n"),
        ["trainer.max_steps=7", "model.overrides.bidirectional=false", "optim.learning_rate=2e-3"],
    )
    assert config.trainer.max_steps == 7
    assert config.model.resolve().bidirectional is False
    assert config.optim.learning_rate == pytest.approx(2e-3)


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (
            "name: x\ntrainer: {max_stepz: 5}\n",
            [],
            "trainer.max_stepz: Extra inputs are not permitted",
        ),
        (
            "name: x\n",
            ["trainer.max_steps=many"],
            "trainer.max_steps: Input should be a valid integer",
        ),
        (
            "name: x\n",
            ["trainer.max_steps=0"],
            "trainer.max_steps: Input should be greater than or equal to 1",
        ),
        ("name: x\nmodel: {preset: huge}\n", [], "unknown preset 'huge'"),
        ("name: x\nmodel: {overrides: {layers: 3}}\n", [], "unknown model override(s) ['layers']"),
        ("name: x\ncorpus: {kind: tape}\n", [], "corpus"),
        ("seed: 1\n", [], "name: Field required"),
        ("- a\n- b\n", [], "expected a mapping"),
    ],
)
def test_bad_configs_name_the_field(
    tmp_path: Path, text: str, overrides: list, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, overrides)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_malformed_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--set 'max_steps': expected key=value"):
        load_config(write(tmp_path, "name: x\n"), ["max_steps"])


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.skipif(bf16_lstm_runs_on_this_cpu(), reason="this CPU runs bf16 LSTMs")
def test_bf16_on_a_cpu_without_bf16_lstms_is_refused_before_any_work(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate(
        {
            "name": "bf16",
            "corpus": {"kind": "manifest", "path": str(tmp_path / "absent.jsonl")},
            "trainer": {"precision": "bf16-mixed", "accelerator": "cpu"},
        }
    )
    with pytest.raises(ConfigError, match="trainer.precision: bf16-mixed cannot run"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
