"""The report's figures (matplotlib, saved as PNG and SVG): WER against sparsity and against
the cell budget, measured
decoding speed-up against sparsity, sparsity over training steps, CSP's per-tensor
compression error, the final sparsity per tensor, test WER by voice, and the overlap of the
methods' masks.

Every function draws from the run records only and returns None when there is nothing to
draw (no CSP run, no complete cell), so the report can say so instead of showing an empty
frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from analysis.breakdown import Breakdown, hurt_most  # noqa: E402
from analysis.budget import BudgetCurve  # noqa: E402
from analysis.experiment import Experiment  # noqa: E402
from analysis.mask_overlap import Overlap  # noqa: E402
from analysis.tables import Entry, Table, role  # noqa: E402
from experiments.records import GridCell  # noqa: E402
from lightning_modules.pruning.registry import Role, registered  # noqa: E402


def save(figure: Figure, out: Path, stem: str) -> Path:
    """Write `stem.png` and `stem.svg` in `out`; returns the PNG."""
    out.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out / f"{stem}.png", dpi=110, bbox_inches="tight")
    figure.savefig(out / f"{stem}.svg", bbox_inches="tight")
    plt.close(figure)
    return out / f"{stem}.png"


OTHER_COLORS = ("#1f77b4", "#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939")


def colors(labels: list[str]) -> dict[str, str]:
    """Label → colour: a plain method's own (its class's `color`), a palette for variants."""
    others = iter(OTHER_COLORS * (1 + len(labels) // len(OTHER_COLORS)))
    return {
        label: cls.color if (cls := registered(label)) is not None else next(others)
        for label in labels
    }


def wer_vs_sparsity(table: Table) -> Figure | None:
    """Mean test WER (error bars: std over seeds) against realized sparsity, per method."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    palette = colors([row.label for row in table.rows])
    for row in table.rows:
        points = [
            (entry.mean_of("realized_sparsity"), entry.wer_mean, entry.wer_std or 0.0)
            for entry in row.entries.values()
            if entry.wer_mean is not None
        ]
        if not points:
            continue
        xs, ys, errors = zip(*sorted(points), strict=True)
        axes.errorbar(
            xs, ys, yerr=errors, marker="o", capsize=3, color=palette[row.label], label=row.name
        )
        drawn = True
    if table.dense.wer_mean is not None:
        axes.axhline(table.dense.wer_mean, color="black", linestyle="--", label="Dense")
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axes.set(xlabel="realized sparsity (saved weights)", ylabel="test WER", title=table.title)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def pattern_of(entry: Entry) -> str:
    """The sparsity pattern its runs were pruned in (their saved config's pruning section)."""
    for run in entry.runs:
        pruning = (run.config or {}).get("pruning") or {}
        if "pattern" in pruning:
            return str(pruning["pattern"])
    return "unstructured"


@dataclass
class SpeedupLine:
    """One method in one pattern: (mean realized sparsity, mean measured batch-1 decoding
    speed-up over the best dense runtime) of each entry whose runs measured one."""

    name: str
    label: str
    pattern: str
    points: list[tuple[float, float]] = field(default_factory=list)

    @property
    def style(self) -> str:
        """Solid for unstructured, dashed for blocks, dash-dotted for N:M."""
        return "-." if ":" in self.pattern else "--" if "x" in self.pattern else "-"


def speedup_lines(table: Table) -> list[SpeedupLine]:
    lines: dict[tuple[str, str], SpeedupLine] = {}
    for row in table.rows:
        for entry in row.entries.values():
            sparsity, speedup = entry.mean_of("realized_sparsity"), entry.mean_of("decode_speedup")
            if sparsity is None or speedup is None:
                continue
            pattern = pattern_of(entry)
            line = lines.setdefault(
                (row.label, pattern), SpeedupLine(f"{row.name} ({pattern})", row.label, pattern)
            )
            line.points.append((sparsity, speedup))
    for line in lines.values():
        line.points.sort()
    return list(lines.values())


def speedup_vs_sparsity(table: Table) -> Figure | None:
    """Measured decoding speed-up against realized sparsity, per method and pattern, with the
    ideal 1/(1 − s) of a runtime that skips every zero at no cost."""
    lines = speedup_lines(table)
    if not lines:
        return None
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    palette = colors([row.label for row in table.rows])
    top = max(sparsity for line in lines for sparsity, _ in line.points)
    grid = [top * i / 50 for i in range(51)]
    axes.plot(grid, [1 / (1 - s) for s in grid], "k:", label="ideal 1/(1 − s)")
    axes.axhline(1.0, color="grey", linewidth=0.8)
    for line in lines:
        xs, ys = zip(*line.points, strict=True)
        axes.plot(xs, ys, line.style, marker="o", color=palette[line.label], label=line.name)
    axes.set_yscale("log")
    axes.set(
        xlabel="realized sparsity (saved weights)",
        ylabel="dense time / sparse time",
        title=f"{table.experiment}: batch-1 decoding speed-up over dense",
    )
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def proposed(run: GridCell) -> bool:
    """Whether the run is of the proposed method itself (drawn on top, thicker)."""
    return run.label == run.method and role(run.method) == Role.PROPOSED


def _by_sparsity(
    experiment: Experiment, runs: list[GridCell]
) -> list[tuple[float, list[GridCell]]]:
    return [
        (sparsity, [run for run in runs if run.target_sparsity == sparsity])
        for sparsity in experiment.sparsities
    ]


def _panels(count: int, height: float = 3.6) -> tuple[Figure, list]:
    figure, axes = plt.subplots(1, count, figsize=(5.2 * count, height), squeeze=False)
    return figure, list(axes[0])


def _trajectories(
    experiment: Experiment, names: dict[str, str], key: str, ylabel: str, target: bool
) -> Figure | None:
    """`key` of the metrics stream over optimizer steps: one line per run, one colour per
    method, one panel per target sparsity (with its target drawn when `target`)."""
    runs = [run for run in experiment.cells if run.series(key)[0]]
    if not runs:
        return None
    palette = colors(list(names))
    runs.sort(key=proposed)  # the proposed method on top where lines coincide
    figure, panels = _panels(len(experiment.sparsities))
    for axes, (sparsity, chosen) in zip(panels, _by_sparsity(experiment, runs), strict=True):
        shown: set[str] = set()
        for run in chosen:
            name = names[run.label]
            steps, values = run.series(key)
            style = "-" if run.status == "complete" else ":"
            width = 2.4 if proposed(run) else 1.4
            label = None if name in shown else name
            axes.plot(steps, values, style, color=palette[run.label], lw=width, label=label)
            shown.add(name)
        if target:
            axes.axhline(sparsity, color="grey", linewidth=0.8, linestyle="--")
        axes.set(title=f"target sparsity {sparsity:g}", xlabel="optimizer step", ylabel=ylabel)
        axes.grid(alpha=0.3)
        if shown:
            axes.legend(fontsize=8)
    return figure


def sparsity_trajectories(experiment: Experiment, names: dict[str, str]) -> Figure | None:
    """Overall sparsity of the prunable tensors over optimizer steps, per run."""
    figure = _trajectories(experiment, names, "pruning/sparsity", "sparsity", target=True)
    if figure is not None:
        figure.suptitle(f"{experiment.name}: sparsity over training (dotted: not complete)")
    return figure


def dev_wer_trajectories(experiment: Experiment, names: dict[str, str]) -> Figure | None:
    """Dev WER (greedy) at every validation through the schedule and fine-tuning, per run:
    where a method loses accuracy while it prunes and how much fine-tuning wins back."""
    figure = _trajectories(experiment, names, "dev_wer", "dev WER (greedy)", target=False)
    if figure is not None:
        figure.suptitle(f"{experiment.name}: dev WER over pruning and fine-tuning")
    return figure


def compression_error(experiment: Experiment, label: str = "csp") -> Figure | None:
    """CSP's compression error ‖W − Ŵ‖/‖W‖ per tensor over steps, first seed per sparsity."""
    runs = [run for run in experiment.cells if run.label == label]
    firsts = [(s, chosen[0]) for s, chosen in _by_sparsity(experiment, runs) if chosen]
    firsts = [(s, run) for s, run in firsts if any(k.startswith("csp/error/") for k in _keys(run))]
    if not firsts:
        return None
    figure, panels = _panels(len(firsts), height=4.0)
    for axes, (sparsity, run) in zip(panels, firsts, strict=True):
        axes.set_prop_cycle(color=plt.get_cmap("tab20").colors)  # LSTMs have many tensors
        for key in sorted(k for k in _keys(run) if k.startswith("csp/error/")):
            steps, values = run.series(key)
            axes.plot(steps, values, marker=".", label=key.removeprefix("csp/error/"))
        axes.set(
            title=f"target sparsity {sparsity:g}, seed {run.seed}",
            xlabel="optimizer step",
            ylabel="compression error",
        )
        axes.grid(alpha=0.3)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(f"{experiment.name}: CSP's compression error per tensor")
    return figure


def _keys(run: GridCell) -> set[str]:
    return {key for row in run.metrics for key in row}


def per_tensor_sparsity(experiment: Experiment, names: dict[str, str]) -> Figure | None:
    """Final sparsity of each prunable tensor (saved weights), per method, first seed."""
    complete = [run for run in experiment.cells if run.status == "complete"]
    groups = [(s, chosen) for s, chosen in _by_sparsity(experiment, complete) if chosen]
    if not groups:
        return None
    palette = colors(list(names))
    figure, panels = _panels(len(groups), height=5.2)
    for axes, (sparsity, chosen) in zip(panels, groups, strict=True):
        firsts = {run.label: run for run in sorted(chosen, key=lambda r: -r.seed)}
        tensors = sorted({t for run in firsts.values() for t in run.result.sparsity_per_tensor})
        width = 0.8 / len(firsts)
        for index, (label, run) in enumerate(firsts.items()):
            values = [run.result.sparsity_per_tensor.get(t, float("nan")) for t in tensors]
            positions = [i + index * width for i in range(len(tensors))]
            axes.bar(positions, values, width, color=palette[label], label=names[label])
        axes.set_xticks([i + 0.4 - width / 2 for i in range(len(tensors))])
        axes.set_xticklabels([t.removeprefix("model.") for t in tensors], rotation=75, fontsize=6)
        axes.axhline(sparsity, color="grey", linewidth=0.8, linestyle="--")
        axes.set(title=f"target sparsity {sparsity:g}", ylabel="final sparsity", ylim=(0, 1))
        axes.legend(fontsize=7)
    figure.suptitle(f"{experiment.name}: final sparsity per tensor (saved weights)")
    return figure


def voice_heatmap(breakdown: Breakdown) -> Figure | None:
    """Test WER of every system (columns) on every test voice (rows, worst hurt first)."""
    sparsities = sorted({s.sparsity for s in breakdown.systems if s.sparsity > 0})
    if not sparsities:
        return None
    voices = hurt_most(breakdown, sparsities[-1])
    values = [[breakdown.wer(system, voice) for system in breakdown.systems] for voice in voices]
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    height = 1.8 + 0.22 * len(voices)
    figure, axes = plt.subplots(figsize=(2.0 + 0.45 * len(breakdown.systems), height))
    image = axes.imshow(grid, aspect="auto", cmap="magma_r", vmin=0, vmax=1)
    axes.set_xticks(range(len(breakdown.systems)))
    axes.set_xticklabels([s.title for s in breakdown.systems], rotation=75, fontsize=7)
    axes.set_yticks(range(len(voices)))
    axes.set_yticklabels(voices, fontsize=6)
    figure.colorbar(image, ax=axes, label="test WER")
    axes.set_title("test WER by voice (rows: the voices pruning hurts most first)", fontsize=9)
    return figure


def overlap_heatmaps(overlaps: list[Overlap]) -> Figure | None:
    """Pooled Jaccard overlap of the kept weights, one matrix per target sparsity."""
    sparsities = sorted({o.sparsity for o in overlaps})
    if not sparsities:
        return None
    most = max(
        len({n for o in overlaps if o.sparsity == s for n in (o.a, o.b)}) for s in sparsities
    )
    side = 3.0 + 0.55 * most
    figure, grid = plt.subplots(
        1, len(sparsities), figsize=(side * len(sparsities), side), squeeze=False
    )
    panels = list(grid[0])
    for axes, sparsity in zip(panels, sparsities, strict=True):
        here = [o for o in overlaps if o.sparsity == sparsity]
        names = list(dict.fromkeys([n for o in here for n in (o.a, o.b)]))
        value = {(o.a, o.b): o.jaccard() for o in here} | {(o.b, o.a): o.jaccard() for o in here}
        grid = [[1.0 if a == b else value.get((a, b), float("nan")) for b in names] for a in names]
        image = axes.imshow(grid, cmap="viridis", vmin=0, vmax=1)
        for i, row in enumerate(grid):
            for j, cell in enumerate(row):
                if cell == cell:  # not NaN
                    axes.text(j, i, f"{cell:.2f}", ha="center", va="center", fontsize=6, color="w")
        axes.set_xticks(range(len(names)))
        axes.set_xticklabels(names, rotation=60, fontsize=7, ha="right", rotation_mode="anchor")
        axes.set_yticks(range(len(names)))
        axes.set_yticklabels(names, fontsize=7)
        chance = sum(o.chance() for o in here) / len(here)
        axes.set_title(f"target sparsity {sparsity:g} (random masks: {chance:.2f})", fontsize=9)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="Jaccard overlap")
    figure.suptitle("Overlap of the weights the methods kept (saved weights)")
    return figure


def overlap_per_tensor(overlaps: list[Overlap], system: str) -> Figure | None:
    """Jaccard overlap of `system`'s kept weights with each other method's, per prunable
    tensor (bars) against the overlap random masks of the same kept fractions would have
    (black ticks), one panel per target sparsity: which tensors a method keeps differently."""
    mine = [o for o in overlaps if system in (o.a, o.b)]
    sparsities = sorted({o.sparsity for o in mine})
    if not sparsities:
        return None
    tensors = sorted({t for o in mine for t in o.tensors})
    figure, panels = _panels(len(sparsities), height=5.2)
    for axes, sparsity in zip(panels, sparsities, strict=True):
        here = [o for o in mine if o.sparsity == sparsity]
        width = 0.8 / len(here)
        for index, overlap in enumerate(here):
            other = overlap.b if overlap.a == system else overlap.a
            positions = [i + index * width for i in range(len(tensors))]
            values = [overlap.jaccard(t) if t in overlap.union else float("nan") for t in tensors]
            axes.bar(positions, values, width, label=other)
            chance = [overlap.chance(t) if t in overlap.union else float("nan") for t in tensors]
            axes.scatter(positions, chance, marker="_", color="black", s=30, zorder=3)
        axes.set_xticks([i + 0.4 - width / 2 for i in range(len(tensors))])
        axes.set_xticklabels([t.removeprefix("model.") for t in tensors], rotation=75, fontsize=6)
        axes.set(title=f"target sparsity {sparsity:g}", ylabel="Jaccard overlap", ylim=(0, 1))
        axes.legend(fontsize=7, title=f"{system} against", title_fontsize=7)
    figure.suptitle(f"Overlap of {system}'s kept weights with each method's, per tensor")
    return figure


def wer_vs_budget(curves: list[BudgetCurve]) -> Figure | None:
    """Test WER against cell budget (log steps, left) and against the cells' training wall
    time (log seconds, right), one row per target sparsity: per method the mean with the
    seeds' range, the dense control of each budget in black, the dense model they start from
    as a dotted line (its 0-step point)."""
    curves = [curve for curve in curves if any(line.points for line in curve.lines)]
    if not curves:
        return None
    figure, grid = plt.subplots(
        len(curves), 2, figsize=(11, 4.0 * len(curves)), squeeze=False, sharey="row"
    )
    for (by_steps, by_time), curve in zip(grid, curves, strict=True):
        palette = colors([line.label for line in curve.lines])
        palette[curve.control.label] = "black"
        for line in [curve.control, *curve.lines]:
            points = [(b, entry) for b, entry in line.points.items() if entry.wer_mean is not None]
            if not points:
                continue
            style = {"color": palette[line.label], "marker": "o", "label": line.name}
            if line is curve.control:
                style.update(linestyle="--", marker="s")
            wers = [entry.values("test_wer") for _, entry in points]
            means = [entry.wer_mean for _, entry in points]
            low = [mean - min(values) for mean, values in zip(means, wers, strict=True)]
            high = [max(values) - mean for mean, values in zip(means, wers, strict=True)]
            steps = [budget for budget, _ in points]
            by_steps.errorbar(steps, means, yerr=[low, high], capsize=3, **style)
            seconds = [entry.mean_of("train_wall_s") for _, entry in points]
            timed = [(s, m) for s, m in zip(seconds, means, strict=True) if s is not None]
            if timed:
                by_time.plot(*zip(*timed, strict=True), **style)
        if curve.dense.wer_mean is not None:
            for axes in (by_steps, by_time):
                axes.axhline(
                    curve.dense.wer_mean, color="grey", linestyle=":", label="Dense (0 steps)"
                )
        by_steps.set(
            xscale="log",
            xlabel="steps per cell (log)",
            ylabel="test WER",
            title=f"{curve.experiment}: s = {curve.sparsity:g}, test WER against budget",
        )
        by_steps.set_xticks(curve.budgets, [f"{budget:,}" for budget in curve.budgets])
        by_time.set(
            xscale="log",
            xlabel="training wall time per cell, s (log)",
            title="the same cells against their training time",
        )
        by_time.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 200, 500, 1,000
        by_time.xaxis.set_major_formatter(FuncFormatter(lambda seconds, _: f"{seconds:,.0f}"))
        by_time.xaxis.set_minor_formatter(NullFormatter())  # else 3×10², 4×10²... overlap
        for axes in (by_steps, by_time):
            axes.grid(alpha=0.3, which="both")
        by_steps.legend(fontsize=8)
    return figure
