"""`csp report`: tables, figures and report.html from a real tiny `csp reproduce` run.

Numbers are checked against the run records (result.json, the saved checkpoints), missing
and failed cells against records made so, a diverging cell against a real one, and the page
in a real headless Chromium.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import CSP_COMMAND, chromium, offline_env
from PIL import Image

from analysis.breakdown import wer_by
from analysis.experiment import load_experiment
from analysis.figures import speedup_lines
from analysis.significance import paired_bootstrap, pooled_system
from analysis.tables import main_table, variant_names
from analysis.verdicts import bootstrap_text
from experiments.records import read_utterance_records
from lightning_modules.pruning.saved import read_saved

FIGURES = (
    "wer_vs_sparsity",
    "speedup_vs_sparsity",
    "sparsity_trajectories",
    "dev_wer_trajectories",
)
FIGURES += ("csp_compression_error", "per_tensor_sparsity", "wer_by_voice", "mask_overlap")
FIGURES += ("overlap_per_tensor",)
CELL = re.compile(r"(?P<label>.+)-s(?P<sparsity>[0-9.]+)-seed(?P<seed>\d+)")


def table_rows(report: Path, kind: str = "main") -> dict[tuple[str, float], dict[str, str]]:
    with (report / "table.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["table"] == kind]
    return {(row["label"], float(row["target_sparsity"])): row for row in rows}


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def md_line(report: Path, name: str) -> str:
    lines = (report / "table.md").read_text(encoding="utf-8").splitlines()
    return next(line for line in lines if line.startswith(f"| {name} |"))


def copy_records(grid: Path, to: Path) -> Path:
    """A copy of a grid's records without checkpoints, W&B files and report: what crafted
    records start from."""
    shutil.copytree(grid, to, ignore=shutil.ignore_patterns("*.ckpt", "wandb", "report"))
    return to


def test_reproduce_writes_tables_figures_and_page(reproduced: Path) -> None:
    report = reproduced / "report"
    for name in ("table.md", "table.tex", "table.csv", "report.html"):
        assert (report / name).stat().st_size > 200, name
    for stem in FIGURES:
        png = report / "figures" / f"tiny-{stem}.png"
        assert Image.open(png).size[0] > 300
        svg = (report / "figures" / f"tiny-{stem}.svg").read_text(encoding="utf-8")
        assert svg.rstrip().endswith("</svg>")
    tex = (report / "table.tex").read_text(encoding="utf-8")
    assert r"\begin{tabular}" in tex and r"\textbf{" in tex and "2102.04932" in tex


def test_table_numbers_come_from_the_run_records(reproduced: Path) -> None:
    rows = table_rows(reproduced / "report")
    dense = read(reproduced / "dense" / "result.json")
    assert float(rows[("dense", 0.0)]["test_wer_mean"]) == pytest.approx(dense["test_wer"])
    cells = sorted(p for p in reproduced.iterdir() if CELL.fullmatch(p.name))
    assert len(cells) == 2
    means = {}
    for cell in cells:
        label, sparsity = CELL.fullmatch(cell.name)["label"], float(CELL.fullmatch(cell.name)[2])
        result = read(cell / "result.json")
        row = rows[(label, sparsity)]
        means[label] = result["test_wer"]
        assert float(row["test_wer_mean"]) == pytest.approx(result["test_wer"], abs=1e-12)
        relative = (result["test_wer"] - dense["test_wer"]) / dense["test_wer"]
        assert float(row["relative_wer_change"]) == pytest.approx(relative, abs=1e-12)
        # the realized sparsity is the saved weights', recounted here from the checkpoint
        saved = torch.load(result["checkpoint"], map_location="cpu", weights_only=False)
        weights = [saved["state_dict"][name] for name in result["sparsity_per_tensor"]]
        zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        assert float(row["realized_sparsity"]) == pytest.approx(zeros, abs=1e-12)
        assert float(row["packed_bytes"]) == (cell / "model.packed").stat().st_size
        # the decoding speed-up was measured on the saved model (csp bench at batch 1)
        assert result["decode_speedup"] > 0
        assert float(row["decode_speedup"]) == pytest.approx(result["decode_speedup"])
        assert f"decoding {result['decode_speedup']:.2f}× dense" in md_line(
            reproduced / "report", {"csp": "CSP", "gmp": "GMP"}[label]
        )
        assert (row["seeds_complete"], row["seeds"], row["missing"]) == ("1", "1", "")
        name = {"csp": "CSP", "gmp": "GMP"}[label]
        assert f"{result['test_wer']:.3f} ({relative:+.1%})" in md_line(reproduced / "report", name)
    best = min(means, key=means.__getitem__)
    for label, name in (("csp", "CSP"), ("gmp", "GMP")):
        marked = "| **" in md_line(reproduced / "report", name)
        assert marked == (means[label] == means[best])
        assert rows[(label, 0.5)]["best"] == str(means[label] == means[best])


def test_speedup_figure_draws_each_cells_measured_speedup_in_its_pattern(
    reproduced: Path, tmp_path: Path
) -> None:
    lines = {line.label: line for line in speedup_lines(main_table(load_experiment(reproduced)))}
    assert set(lines) == {"csp", "gmp"}
    for label, line in lines.items():
        result = read(reproduced / f"{label}-s0.5-seed0" / "result.json")
        assert (line.pattern, line.style) == ("unstructured", "-")
        assert line.points == [(result["realized_sparsity"], result["decode_speedup"])]
    # a cell pruned in another pattern is its own line, drawn in that pattern's style
    grid = copy_records(reproduced, tmp_path / "tiny")
    config = yaml.safe_load((grid / "gmp-s0.5-seed0" / "config.yaml").read_text())
    config["pruning"]["pattern"] = "2:4"
    (grid / "gmp-s0.5-seed0" / "config.yaml").write_text(yaml.safe_dump(config))
    lines = {line.label: line for line in speedup_lines(main_table(load_experiment(grid)))}
    gmp = lines["gmp"]
    assert (gmp.pattern, gmp.style, gmp.name) == ("2:4", "-.", "GMP (2:4)")
    assert lines["csp"].pattern == "unstructured"


def test_paired_comparison_says_plainly_who_wins(reproduced: Path) -> None:
    csp = read(reproduced / "csp-s0.5-seed0" / "result.json")["test_wer"]
    gmp = read(reproduced / "gmp-s0.5-seed0" / "result.json")["test_wer"]
    text = (reproduced / "report" / "table.md").read_text(encoding="utf-8")
    assert f"| 0.5 | CSP | GMP | 1 | {csp - gmp:+.3f} |" in text
    if csp > gmp:
        verdict = f"CSP does not win: its test WER is {csp - gmp:.3f} higher than GMP's"
    elif csp == gmp:
        verdict = "CSP does not win: it ties with GMP"
    else:
        verdict = f"CSP wins: its test WER is {gmp - csp:.3f} lower than GMP's"
    assert f"At target sparsity 0.5, {verdict}" in text
    assert "one seed, so no spread: not conclusive" in text
    # the paired bootstrap, recomputed here from the two runs' per-utterance test records
    systems = [
        pooled_system(name, [reproduced / f"{label}-s0.5-seed0" / "test_utterances.jsonl"])
        for name, label in (("CSP", "csp"), ("GMP", "gmp"))
    ]
    assert systems[0].wer == pytest.approx(csp) and systems[1].wer == pytest.approx(gmp)
    result = paired_bootstrap(*systems)
    sentence = f"Paired bootstrap over {result.utterances} utterances × 1 seed(s): {result.verdict}"
    assert f"{sentence} ({bootstrap_text(result)})." in text
    assert f"| {bootstrap_text(result)} |" in text


def test_csp_is_paired_with_each_baseline_in_every_table_format(
    reproduced: Path, tmp_path: Path, csp: Callable
) -> None:
    """A second baseline, crafted from GMP's run with one more word error on every test
    utterance: CSP is paired with both, and table.csv holds each pairing's bootstrap."""
    grid = copy_records(reproduced, tmp_path / "tiny")
    spec = yaml.safe_load((grid / "grid.yaml").read_text())
    (grid / "grid.yaml").write_text(
        yaml.safe_dump({**spec, "methods": {**spec["methods"], "random": {}}})
    )
    worse = grid / "random-s0.5-seed0"
    shutil.copytree(grid / "gmp-s0.5-seed0", worse)
    records = [json.loads(line) for line in (worse / "test_utterances.jsonl").open()]
    records = [{**record, "errors": record["errors"] + 1} for record in records]
    (worse / "test_utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    wer = sum(r["errors"] for r in records) / sum(r["words"] for r in records)
    (worse / "result.json").write_text(json.dumps({**read(worse / "result.json"), "test_wer": wer}))

    done = csp("report", grid, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = table_rows(tmp_path / "out")
    utterances = {
        label: pooled_system(name, [grid / f"{label}-s0.5-seed0" / "test_utterances.jsonl"])
        for label, name in (("csp", "CSP"), ("gmp", "GMP"), ("random", "Random"))
    }
    for label, name in (("gmp", "GMP"), ("random", "Random")):
        row = rows[(label, 0.5)]
        result = paired_bootstrap(utterances["csp"], utterances[label])
        assert (row["paired_system"], row["paired_with"]) == ("CSP", name)
        assert float(row["bootstrap_difference"]) == pytest.approx(result.difference)
        assert float(row["bootstrap_p"]) == pytest.approx(result.p)
        assert row["bootstrap_verdict"] == result.verdict
    assert rows[("random", 0.5)]["bootstrap_verdict"] == "CSP wins"  # fewer errors everywhere
    assert rows[("csp", 0.5)]["paired_with"] == ""  # CSP is not paired with itself
    text = (tmp_path / "out" / "table.md").read_text()
    assert "| 0.5 | CSP | GMP |" in text and "| 0.5 | CSP | Random |" in text
    summary = next(line for line in text.splitlines() if "against each of 2 baselines" in line)
    assert "CSP wins against Random" in summary
    assert "against each of 2 baselines" in (tmp_path / "out" / "table.tex").read_text()


def test_report_page_renders_in_headless_chromium(reproduced: Path, tmp_path: Path) -> None:
    page = (reproduced / "report" / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", page)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 2400)
    colours = image.getcolors(maxcolors=1 << 20) or []
    background = max(colours)[0] / (image.size[0] * image.size[1])
    assert len(colours) > 50 and background < 0.97, "the screenshot is (nearly) blank"

    dom = chromium("--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    csp = read(reproduced / "csp-s0.5-seed0" / "result.json")
    assert "tiny: test WER by method and target sparsity" in dom.stdout
    assert re.search(r"<th>CSP</th>.*?" + re.escape(f"{csp['test_wer']:.3f}"), dom.stdout)
    assert "CSP against each baseline" in dom.stdout and "arXiv 2102.04932" in dom.stdout
    assert "tiny: test WER by condition" in dom.stdout and "overlap of the kept" in dom.stdout
    assert dom.stdout.count('src="data:image/png;base64,') == len(FIGURES)
    assert 'src="http' not in dom.stdout and "<script" not in dom.stdout  # self-contained


def test_missing_unfinished_and_diverged_cells_are_shown_with_reasons(
    reproduced: Path, tmp_path: Path, csp: Callable
) -> None:
    grid = copy_records(reproduced, tmp_path / "tiny")
    spec = yaml.safe_load((grid / "grid.yaml").read_text())
    (grid / "grid.yaml").write_text(yaml.safe_dump({**spec, "seeds": [0, 1]}))
    # seed 1 of CSP: the same run, but its loss became NaN at the end
    shutil.copytree(grid / "csp-s0.5-seed0", grid / "csp-s0.5-seed1")
    with (grid / "csp-s0.5-seed1" / "metrics.jsonl").open("a") as metrics:
        metrics.write(json.dumps({"step": 23, "train_loss": float("nan")}) + "\n")
    # seed 0 of GMP: stopped at step 12 (no result yet); seed 1 of GMP: never started
    gmp = grid / "gmp-s0.5-seed0"
    (gmp / "result.json").unlink()
    lines = (gmp / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["step"] <= 12]
    (gmp / "metrics.jsonl").write_text("\n".join(kept) + "\n")

    done = csp("report", grid, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = table_rows(tmp_path / "out")
    first = read(grid / "csp-s0.5-seed0" / "result.json")
    assert (rows[("csp", 0.5)]["seeds_complete"], rows[("csp", 0.5)]["seeds"]) == ("1", "2")
    assert float(rows[("csp", 0.5)]["test_wer_mean"]) == pytest.approx(first["test_wer"])
    diverged = "diverged: train_loss nan at step 23; last sparsity 0.500 (seed 1)"
    assert rows[("csp", 0.5)]["missing"] == diverged
    assert rows[("gmp", 0.5)]["test_wer_mean"] == ""
    assert rows[("gmp", 0.5)]["missing"] == (
        "missing: unfinished: step 12/24 (seed 0); missing: not run (seed 1)"
    )
    text = (tmp_path / "out" / "table.md").read_text()
    assert f"1/2 seeds; {diverged}" in md_line(tmp_path / "out", "CSP")
    assert "missing: unfinished: step 12/24 (seed 0)" in md_line(tmp_path / "out", "GMP")
    assert "no comparison: every baseline has no result" in text
    page = (tmp_path / "out" / "report.html").read_text()
    assert "csp-s0.5-seed1: diverged: train_loss nan" in page and "gmp-s0.5-seed1: not run" in page


def test_real_speech_wer_stands_next_to_the_synthetic_test(
    reproduced: Path, tmp_path: Path, csp: Callable
) -> None:
    """Runs that scored a `real_test` set show its WER in every table format."""
    grid = copy_records(reproduced, tmp_path / "tiny")
    for cell, real in (("dense", 0.912), ("csp-s0.5-seed0", 0.938)):
        path = grid / cell / "result.json"
        path.write_text(json.dumps({**read(path), "real_wer": real, "real_cer": 0.5}))
    done = csp("report", grid, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = table_rows(tmp_path / "out")
    assert float(rows[("csp", 0.5)]["real_wer_mean"]) == 0.938
    assert rows[("gmp", 0.5)]["real_wer_mean"] == ""
    assert "real speech 0.938" in md_line(tmp_path / "out", "CSP")
    assert "real speech 0.912" in md_line(tmp_path / "out", "Dense")
    assert "real speech" not in md_line(tmp_path / "out", "GMP")
    assert "real speech 0.938" in (tmp_path / "out" / "table.tex").read_text()


def csv_records(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_wer_by_condition_and_voice_adds_up_the_runs_utterance_records(
    reproduced: Path,
) -> None:
    rows = csv_records(reproduced / "report" / "breakdown.csv")
    for folder, system, sparsity in (("dense", "Dense", 0.0), ("csp-s0.5-seed0", "CSP", 0.5)):
        records = [
            json.loads(line)
            for line in (reproduced / folder / "test_utterances.jsonl").read_text().splitlines()
        ]
        for grouping, key in (("condition", "augmentation"), ("voice", "voice")):
            mine = [
                r for r in rows
                if (r["grouping"], r["system"], float(r["target_sparsity"]))
                == (grouping, system, sparsity)
            ]  # fmt: skip
            assert mine, (grouping, system)
            assert sum(int(r["utterances"]) for r in mine) == len(records)
            for row in mine:
                wanted = row["group"].split("/")[-1].replace("clean", "none")
                chosen = [r for r in records if r[key] == wanted]
                if grouping == "voice":
                    chosen = [r for r in chosen if r["engine"] == row["group"].split("/")[0]]
                assert int(row["errors"]) == sum(r["errors"] for r in chosen), row
                assert int(row["words"]) == sum(r["words"] for r in chosen), row
            # the groups' word-weighted WER adds back up to the test WER the run recorded
            errors = sum(int(r["errors"]) for r in mine) / sum(int(r["words"]) for r in mine)
            result = read(reproduced / folder / "result.json")
            assert errors == pytest.approx(result["test_wer"], abs=1e-9)
            # the one-system helper the dense benchmark uses agrees with the report's table
            by_group = {r["group"]: int(r["errors"]) / int(r["words"]) for r in mine}
            path = reproduced / folder / "test_utterances.jsonl"
            assert wer_by(read_utterance_records(path), grouping) == pytest.approx(by_group)
    text = (reproduced / "report" / "table.md").read_text(encoding="utf-8")
    assert "## tiny: test WER by condition" in text and "## tiny: test WER by voice" in text
    assert "| CSP @ 0.5 |" in text
    assert Image.open(reproduced / "report" / "figures" / "tiny-wer_by_voice.png").size[0] > 200


def test_mask_overlap_is_the_jaccard_of_the_saved_weights_kept(reproduced: Path) -> None:
    kept = {}
    for label in ("csp", "gmp"):
        saved = read_saved(reproduced / f"{label}-s0.5-seed0" / "model.packed")
        kept[label] = {name: saved.state_dict[name] != 0 for name in saved.prunable}
    rows = csv_records(reproduced / "report" / "mask_overlap.csv")
    assert {frozenset((r["a"], r["b"])) for r in rows} == {frozenset(("CSP", "GMP"))}
    per_tensor = {r["tensor"]: r for r in rows}
    assert set(per_tensor) == {"all", *kept["csp"]}
    inter = union = 0
    for name, mask in kept["csp"].items():
        both, either = int((mask & kept["gmp"][name]).sum()), int((mask | kept["gmp"][name]).sum())
        inter, union = inter + both, union + either
        assert float(per_tensor[name]["jaccard"]) == pytest.approx(both / either)
    pooled = per_tensor["all"]
    assert float(pooled["jaccard"]) == pytest.approx(inter / union)
    # at sparsity 0.5 two independent random masks overlap by 1/3; the column says so
    assert float(pooled["chance_jaccard"]) == pytest.approx(1 / 3, abs=0.02)
    text = (reproduced / "report" / "table.md").read_text(encoding="utf-8")
    cell = f"{inter / union:.3f} ({float(pooled['chance_jaccard']):.3f})"
    assert f"| GMP | 1 | {cell} |" in text and f"| CSP | {cell} | 1 |" in text
    assert Image.open(reproduced / "report" / "figures" / "tiny-mask_overlap.png").size[0] > 200


def run_small_grid(
    reproduced: Path,
    runs: Path,
    name: str,
    methods: dict,
    learning_rate: float,
    dense_changes: dict | None = None,
) -> subprocess.CompletedProcess:
    """`csp reproduce` of a 12-step grid sharing the tiny run's dense model (copied next to
    it, not retrained)."""
    shutil.copytree(reproduced / "dense", runs / "tiny" / "dense")
    dense = yaml.safe_load((reproduced / "grid.yaml").read_text())["dense"]
    dense.pop("name")
    dense.update(dense_changes or {})
    grid = {
        "name": name,
        "dense_from": "tiny",
        "dense": dense,
        "prune": {
            "optim": {"learning_rate": learning_rate},
            "trainer": {"max_steps": 12, "val_every_n_steps": 12, "checkpoint_every_n_steps": 4},
        },
        "schedule": {"kind": "cubic", "start": 0, "end": 8, "every": 4},
        "methods": methods,
        "sparsities": [0.5],
    }
    (runs / f"{name}.yaml").write_text(yaml.safe_dump(grid))
    return subprocess.run(
        [*CSP_COMMAND, "reproduce", "--grid", str(runs / f"{name}.yaml"), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=600,
        env=offline_env(),
    )


def test_a_cell_whose_loss_becomes_nan_is_failed_with_its_last_sparsity(
    reproduced: Path, tmp_path: Path
) -> None:
    done = run_small_grid(reproduced, tmp_path, "nan", {"gmp": {}}, learning_rate=1.0e30)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "error: 1 cell(s) did not complete: gmp-s0.5-seed0 (diverged)" in done.stderr
    (cell,) = read(tmp_path / "nan" / "results.json")["cells"]
    assert cell["status"] == "diverged"
    assert re.fullmatch(r"train_loss nan at step \d+", cell["reason"])
    logged = [
        row["pruning/sparsity"]
        for row in map(json.loads, (tmp_path / "nan" / "gmp-s0.5-seed0" / "metrics.jsonl").open())
        if "pruning/sparsity" in row
    ]
    last = cell.get("realized_sparsity", logged[-1])
    expected = f"diverged: {cell['reason']}; last sparsity {last:.3f}"
    assert table_rows(tmp_path / "nan" / "report")[("gmp", 0.5)]["missing"] == expected
    assert expected in md_line(tmp_path / "nan" / "report", "GMP")


def test_a_failing_cell_fails_alone_and_the_ablation_table_shows_the_rest(
    reproduced: Path, tmp_path: Path
) -> None:
    """Full CSP and two variants: ε = ∞ finishes; an overflowing sparsity weight raises during
    training. The grid still completes, reports both, and pairs the finished variant against
    full CSP."""
    runs = tmp_path / "runs"
    methods = {
        "csp": {},
        "csp-no-when": {"method": "csp", "error_threshold": float("inf")},
        "csp-overflow": {"method": "csp", "sparsity_weight": 1.0e300},
    }
    done = run_small_grid(reproduced, runs, "variants", methods, learning_rate=0.003)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "error: 1 cell(s) did not complete: csp-overflow-s0.5-seed0 (failed)" in done.stderr
    cells = {c["label"]: c for c in read(runs / "variants" / "results.json")["cells"]}
    assert cells["csp-no-when"]["status"] == "complete"
    assert cells["csp-no-when"]["method"] == cells["csp-overflow"]["method"] == "csp"
    assert cells["csp-overflow"]["status"] == "failed"
    config = yaml.safe_load(
        (runs / "variants" / "csp-no-when-s0.5-seed0" / "config.yaml").read_text()
    )
    assert config["pruning"]["options"] == {"error_threshold": float("inf")}

    report = runs / "variants" / "report"
    rows = table_rows(report, "ablation")
    finished = read(runs / "variants" / "csp-no-when-s0.5-seed0" / "result.json")
    no_when = rows[("csp-no-when", 0.5)]
    assert float(no_when["test_wer_mean"]) == pytest.approx(finished["test_wer"])
    assert no_when["row"] == "CSP: no “when” rule (ε = ∞)"
    failure = rows[("csp-overflow", 0.5)]["missing"]
    assert failure.startswith("failed: ") and cells["csp-overflow"]["reason"] in failure
    assert re.search(r"last sparsity \d\.\d{3}$", failure), failure
    text = (report / "table.md").read_text()
    assert "ablation of CSP's parts" in text and "### Each variant against full CSP" in text
    full = read(runs / "variants" / "csp-s0.5-seed0" / "result.json")
    difference = finished["test_wer"] - full["test_wer"]
    records = {
        label: [runs / "variants" / f"{label}-s0.5-seed0" / "test_utterances.jsonl"]
        for label in ("csp", "csp-no-when")
    }
    result = paired_bootstrap(
        pooled_system("CSP: no “when” rule (ε = ∞)", records["csp-no-when"]),
        pooled_system("CSP", records["csp"]),
    )
    assert (
        f"| 0.5 | CSP: no “when” rule (ε = ∞) | CSP | 1 | {difference:+.3f} | "
        f"{int(difference < 0)}/1 | {bootstrap_text(result)} |"
    ) in text
    assert "against CSP: no comparison, no complete seed in both." in text  # the failed one
    # the dense model is the shared one, not trained again, and the table reads it
    assert f"dense model: complete, reused from {runs / 'tiny' / 'dense'}" in done.stdout
    assert not (runs / "variants" / "dense").exists()
    dense = read(reproduced / "dense" / "result.json")
    assert float(rows[("dense", 0.0)]["test_wer_mean"]) == pytest.approx(dense["test_wer"])


def test_a_shared_dense_model_trained_with_another_config_is_refused(
    reproduced: Path, tmp_path: Path
) -> None:
    changed = {"optim": {"learning_rate": 0.5}}
    done = run_small_grid(reproduced, tmp_path, "g", {"gmp": {}}, 0.003, dense_changes=changed)
    assert done.returncode == 2, done.stderr[-3000:]
    saved = tmp_path / "tiny" / "dense" / "config.yaml"
    assert f"{saved}: the run was started with a different config" in done.stderr
    assert "sections differ: optim" in done.stderr
    assert not (tmp_path / "g").exists()  # refused before any work


def test_trajectories_fall_back_to_the_offline_wandb_run(reproduced: Path, tmp_path: Path) -> None:
    grid = tmp_path / "tiny"
    shutil.copytree(reproduced, grid, ignore=shutil.ignore_patterns("*.ckpt", "report"))
    (grid / "csp-s0.5-seed0" / "metrics.jsonl").unlink()
    original = {run.label: run for run in load_experiment(reproduced).cells}["csp"]
    fallback = {run.label: run for run in load_experiment(grid).cells}["csp"]
    assert (original.metrics_source, fallback.metrics_source) == ("metrics", "wandb")
    assert fallback.status == "complete"
    for key in ("pruning/sparsity", "csp/error_mean"):
        steps, values = original.series(key)
        assert len(steps) >= 4
        assert fallback.series(key) == (steps, pytest.approx(values, rel=1e-6))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("none", "{root}: no such experiment folder (for a study, give --storage)"),
        ("empty", "{root}: not an experiment folder (no grid.yaml or results.json"),
        ("grid", "{root}/grid.yaml: invalid config"),
        (
            "result",
            "{root}/csp-s0.5-seed0/result.json: not a run result (test_wer: Field required)",
        ),
        ("metrics", "{root}/gmp-s0.5-seed0/metrics.jsonl:2: not a JSON record"),
    ],
)
def test_bad_records_are_named_before_any_work(
    change: str, message: str, reproduced: Path, tmp_path: Path, csp: Callable
) -> None:
    root = tmp_path / "grid"
    if change == "empty":
        root.mkdir()
    elif change != "none":
        copy_records(reproduced, root)
    if change == "grid":
        (root / "grid.yaml").write_text("name: g\nmethods: {}\n")
    if change == "result":
        result = read(root / "csp-s0.5-seed0" / "result.json")
        del result["test_wer"]
        (root / "csp-s0.5-seed0" / "result.json").write_text(json.dumps(result))
    if change == "metrics":
        metrics = root / "gmp-s0.5-seed0" / "metrics.jsonl"
        lines = metrics.read_text().splitlines()
        metrics.write_text("\n".join([lines[0], "{broken", *lines[2:]]) + "\n")
    done = csp("report", root, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert message.format(root=root) in done.stderr
    assert not (tmp_path / "out").exists()


def objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0, 1)
    y = trial.suggest_float("y", 0, 1)
    return x + 0.5 * y, (1 - x) ** 2 + 0.5 * y  # x trades one for the other, y costs both


@pytest.mark.slow  # over 5 s
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_study_report_draws_the_pareto_front_and_importance(
    kind: str, tmp_path: Path, csp: Callable
) -> None:
    if kind == "journal":
        url = str(tmp_path / "studies.journal")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(url))
    else:
        url = storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(
        study_name="toy",
        storage=storage,
        directions=["minimize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(objective, n_trials=16)
    front = sorted(trial.number for trial in study.best_trials)
    assert 1 < len(front) < 16

    done = csp("report", "toy", "--storage", url, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    for stem in ("pareto", "importance"):
        assert Image.open(tmp_path / "out" / "figures" / f"study-toy-{stem}.png").size[0] > 300
    page = (tmp_path / "out" / "report.html").read_text()
    shown = re.findall(r"<tr><td>(\d+)</td><td>[0-9., e+-]+</td>", page)
    assert sorted(map(int, shown)) == front
    for index in (0, 1):
        found = optuna.importance.get_param_importances(
            study, target=lambda trial, i=index: trial.values[i]
        )
        values = ", ".join(f"{name} {value:.3f}" for name, value in found.items())
        assert f"importance for objective {index} (minimize): {values}</p>" in page

    missing = csp("report", "nope", "--storage", url, "--out", tmp_path / "out2")
    assert missing.returncode == 2
    assert f"--storage {url}: no study named nope; it holds toy" in missing.stderr
    unstored = csp("report", "toy", "--out", tmp_path / "out3")
    assert unstored.returncode == 2 and "for a study, give --storage" in unstored.stderr


def test_a_variant_is_named_by_what_it_changes_against_its_methods_entry() -> None:
    """An ablation of a tuned CSP repeats the tuned values in every variant: its row names
    only what the variant changes (and `tuned_by` never)."""
    tuned = {"sparsity_weight": 0.3, "schedule": {"end": 60}, "tuned_by": "study csp, trial 7"}
    names = variant_names(
        [
            ("csp", "csp", tuned),
            ("csp-identity", "csp", {**tuned, "sensing": "identity"}),
            ("csp-no-sparsity", "csp", {**tuned, "sparsity_weight": 0}),
            ("gmp-linear", "gmp", {"schedule": {"kind": "linear"}}),
        ]
    )
    assert names == {
        "csp": "CSP",
        "csp-identity": "CSP: identity sensing (no compressed sensing)",
        "csp-no-sparsity": "CSP: no sparsity-inducing term (λs = 0)",
        "gmp-linear": "GMP: schedule = {'kind': 'linear'}",
    }
