"""The sweep specs shipped in sweeps/specs/ are valid: every range end builds a trial config,
and GMP and Narang get the same trial budget as CSP (a fair comparison)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from experiments.reproduce import load_grid
from sweeps.spec import load_spec
from sweeps.study import check_trial_configs, trial_config

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
