"""The sweep specs shipped in sweeps/specs/ are valid: every range end builds a trial config,
and GMP and Narang get the same trial budget as CSP (a fair comparison)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO

from experiments.config import ConfigError
from experiments.reproduce import load_grid
from sweeps.spec import load_spec
from sweeps.study import check_trial_configs, grid_entry, make_sampler, trial_config

SPECS = sorted((REPO / "sweeps" / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[path.stem for path in SPECS])
def test_shipped_spec_builds_a_config_at_every_range_end(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    assert "test_wer" not in spec.objectives
    grid = load_grid(spec.grid, tmp_path, None)
    check_trial_configs(spec, grid)
    low = {key: param.extremes()[0] for key, param in spec.space.items()}
    config = trial_config(spec, grid, low, 7, None)
    assert config.pruning is not None and config.pruning.method == spec.method
    assert config.tracking.sweep == {"study": spec.name, "trial": 7, "params": low}
    for key, value in low.items():  # the trial's values reach the config
        section: object = config
        for part in key.split("."):
            section = section[part] if isinstance(section, dict) else getattr(section, part)
        assert section == value, key


def test_methods_get_the_same_trial_budget() -> None:
    single = [load_spec(path) for path in SPECS]
    single = [spec for spec in single if len(spec.objectives) == 1]
    budgets = {spec.method: spec.trials for spec in single}
    assert set(budgets) >= {"csp", "gmp", "narang"}
    assert len(set(budgets.values())) == 1, budgets


@pytest.mark.parametrize("path", SPECS, ids=[path.stem for path in SPECS])
def test_a_trials_grid_entry_runs_the_method_as_the_trial_did(path: Path, tmp_path: Path) -> None:
    """`grid_entry` turns a trial's values into a grid method entry (how the default grid takes
    each method's best trial): the grid's cell must be the trial's run, name and W&B aside."""
    spec = load_spec(path)
    if spec.sparsity is None:  # searches the sparsity itself: a grid fixes it per cell
        return
    grid = load_grid(spec.grid, tmp_path, None)
    for end in (0, 1):
        params = {key: param.extremes()[end] for key, param in spec.space.items()}
        trial = trial_config(spec, grid, params, 3, None)
        raw = {
            **grid.spec.model_dump(mode="json"),
            "methods": {"tuned": {"method": spec.method, **grid_entry(spec, params)}},
            "sparsities": [spec.sparsity],
            "seeds": [spec.seed],
        }
        (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(raw))
        tuned = load_grid(tmp_path / "tuned.yaml", tmp_path, None)
        ((_, cell),) = tuned.cell_configs(Path("dense.ckpt"))
        different = {"name", "tracking", "init_from"}
        assert cell.model_dump(exclude=different) == trial.model_dump(exclude=different)


def test_a_value_outside_the_grid_entrys_sections_is_refused() -> None:
    spec = load_spec(SPECS[0]).model_copy(update={"fixed": {"trainer.max_steps": 5}})
    with pytest.raises(ConfigError, match="trainer.max_steps has no place in a grid"):
        grid_entry(spec, {})


def test_the_tpe_samples_at_random_only_for_its_startup_trials() -> None:
    spec = load_spec(REPO / "sweeps" / "specs" / "csp.yaml")
    assert spec.sampler.startup_trials == 4
    assert make_sampler(spec, 0)._n_startup_trials == 4
