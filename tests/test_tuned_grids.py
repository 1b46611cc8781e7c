"""The shipped grids run what the committed tuning studies chose (issue 30): each tuned entry
of the default grid is its study's best trial, named by `tuned_by`; the studies had equal
budgets; the ablation's full CSP is the tuned CSP; the records agree with the study storage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import yaml
from conftest import REPO
from optuna.storages.journal import JournalFileBackend, JournalStorage

from experiments.reproduce import grid_path

STUDIES = REPO / "benchmarks" / "results" / "studies"
RECORDS = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(STUDIES.glob("*.json"))]


def methods(grid: str) -> dict:
    return yaml.safe_load(grid_path(grid).read_text(encoding="utf-8"))["methods"]


def test_each_tuned_entry_is_its_studys_best_trial() -> None:
    default = methods("default")
    tuned = {label for label, entry in default.items() if "tuned_by" in entry}
    assert tuned == {record["method"] for record in RECORDS}
    for record in RECORDS:
        entry = dict(default[record["method"]])
        named = entry.pop("tuned_by")
        assert entry == record["best"]["grid_entry"], record["study"]
        assert f"study {record['study']}, trial {record['best']['trial']} " in named
        complete = [t["dev_wer"] for t in record["trials"] if t["state"] == "COMPLETE"]
        assert record["best"]["dev_wer"] == min(complete)


def test_the_studies_had_equal_budgets_and_never_saw_test() -> None:
    if not RECORDS:
        return
    budgets = {
        (r["budget"]["trials"], r["budget"]["steps_per_trial"], r["sparsity"]) for r in RECORDS
    }
    assert len(budgets) == 1, budgets
    for record in RECORDS:
        finished = [t for t in record["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
        assert len(finished) >= record["budget"]["trials"], record["study"]
        assert record["objective"].startswith("dev_wer")


def test_the_ablations_full_csp_is_the_tuned_csp() -> None:
    default, ablation = methods("default"), methods("ablation")
    assert ablation["csp"] == default["csp"]
    for label, entry in ablation.items():  # every variant changes one part of it
        changed = {key for key, value in entry.items() if default["csp"].get(key) != value}
        assert len(changed - {"method"}) <= 1, (label, changed)


def test_the_records_are_the_study_storages(tmp_path: Path) -> None:
    for record in RECORDS:
        copy = tmp_path / Path(record["storage"]).name  # reading never touches the committed file
        shutil.copyfile(REPO / record["storage"], copy)
        storage = JournalStorage(JournalFileBackend(str(copy)))
        study = optuna.load_study(study_name=record["study"], storage=storage)
        assert study.best_trial.number == record["best"]["trial"]
        assert study.best_trial.value == record["best"]["dev_wer"]
        assert study.best_trial.params == record["best"]["params"]
        assert len(study.trials) == len(record["trials"])
