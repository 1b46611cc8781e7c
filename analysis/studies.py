"""Optuna studies in the report: the Pareto front and which parameters matter.

Takes any `optuna.Study` (the sweeps build them; this module only reads). A multi-objective
study shows its completed trials in the plane of its first two objectives with the Pareto
front (`study.best_trials`) marked; a single-objective one shows its values over trials with
the running best. Parameter importance is Optuna's own (`get_param_importances`, PED-ANOVA),
once per objective.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.experiment import ReportError  # noqa: E402
from sweeps.storage import is_database, open_storage  # noqa: E402


def load_studies(url: str, names: list[str]) -> list[optuna.Study]:
    """The named studies of one storage; an unknown name lists the ones that exist."""
    if not is_database(url) and not Path(url).is_file():  # reading must not create a journal
        raise ReportError(f"--storage {url}: neither a database URL nor a journal file")
    try:
        storage = open_storage(url)
        known = optuna.study.get_all_study_names(storage)
    except Exception as error:  # any storage failure, said with its URL
        raise ReportError(f"--storage {url}: cannot be read ({error})") from None
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ReportError(
            f"--storage {url}: no study named {', '.join(unknown)}; "
            f"it holds {', '.join(known) or 'no studies'}"
        )
    return [optuna.load_study(study_name=name, storage=storage) for name in names]


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def objective_names(study: optuna.Study) -> list[str]:
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return [f"{name} ({d.name.lower()})" for name, d in zip(names, study.directions, strict=True)]


def pareto_front(study: optuna.Study) -> Figure | None:
    """Completed trials, Pareto front marked (multi-objective), or values over trials."""
    trials = _complete(study)
    if not trials:
        return None
    figure, axes = plt.subplots(figsize=(6.0, 4.4))
    names = objective_names(study)
    if len(study.directions) >= 2:
        front = {trial.number for trial in study.best_trials}
        for on_front, style in ((False, {"color": "#999999"}), (True, {"color": "#d62728"})):
            chosen = [t for t in trials if (t.number in front) == on_front]
            axes.scatter(
                [t.values[0] for t in chosen],
                [t.values[1] for t in chosen],
                label="Pareto front" if on_front else "other trials",
                **style,
            )
        axes.set(xlabel=names[0], ylabel=names[1])
        axes.set_title(f"study {study.study_name}: Pareto front ({len(front)} of {len(trials)})")
    else:
        values = [t.value for t in trials]
        best = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
        running = [best(values[: i + 1]) for i in range(len(values))]
        axes.plot([t.number for t in trials], values, "o", color="#999999", label="trial")
        axes.plot([t.number for t in trials], running, color="#d62728", label="best so far")
        axes.set(xlabel="trial", ylabel=names[0], title=f"study {study.study_name}: values")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Objective name → parameter → importance; empty when too few trials to tell."""
    if len(_complete(study)) < 2:
        return {}
    result = {}
    for index, name in enumerate(objective_names(study)):
        # PED-ANOVA rates what makes the target low: a maximized objective is negated
        sign = -1.0 if study.directions[index] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        with warnings.catch_warnings():  # the evaluator warns about exactly that, every time
            warnings.simplefilter("ignore", UserWarning)
            result[name] = optuna.importance.get_param_importances(
                study, target=lambda trial, i=index, sign=sign: sign * trial.values[i]
            )
    return result


def param_importance(found: dict[str, dict[str, float]], study: optuna.Study) -> Figure | None:
    """One horizontal bar chart per objective, from `importances(study)`."""
    found = {name: values for name, values in found.items() if values}
    if not found:
        return None
    figure, axes = plt.subplots(1, len(found), figsize=(5.0 * len(found), 3.6), squeeze=False)
    for panel, (name, values) in zip(axes[0], found.items(), strict=True):
        params = list(values)[::-1]
        panel.barh(params, [values[p] for p in params], color="#1f77b4")
        panel.set(xlabel="importance (PED-ANOVA)", title=name)
    figure.suptitle(f"study {study.study_name}: parameter importance")
    return figure
