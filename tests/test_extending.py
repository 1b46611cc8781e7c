"""Extending the framework takes one edit: a pruning method registered with `@register` (in a
module of its own) joins every grid that names no methods and shows up in the table, its
legend, the CSV, the figures and the pairing; a number added to `CELL_COLUMNS` shows up in
every table format, the legend and the CSV; a corpus kind registered with `@register_corpus`
trains like the built-in ones."""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from analysis import cell_columns, figures
from analysis.cell_columns import mean_column
from analysis.experiment import load_experiment
from analysis.html_report import table_html
from analysis.pairings import paired_comparison
from analysis.table_formats import to_csv, to_latex, to_markdown
from analysis.tables import main_table
from cli import cli
from experiments.config import ConfigError, ExperimentConfig
from experiments.reproduce import load_grid, run_grid
from experiments.train import train
from lightning_modules.data.corpora import CORPUS_KINDS, corpus_from_path
from lightning_modules.pruning.registry import METHODS, ordered

TOY_METHOD = '''
from lightning_modules.pruning.methods.magnitude import GradualMagnitudePruning
from lightning_modules.pruning.registry import Role, register


@register
class ToyPruning(GradualMagnitudePruning):
    """Magnitude pruning under another name, with an option of its own."""

    name = "toy"
    title = "Toy magnitude"
    role = Role.BASELINE
    citation = "a test of the registry"
    color = "#123456"

    def __init__(self, schedule, *, strength: float = 1.0, **shared):
        super().__init__(schedule, **shared)
        self.strength = strength
'''

TOY_CORPUS = '''
from pathlib import Path
from typing import Literal

from lightning_modules.data.corpora import CorpusSection, register_corpus
from lightning_modules.data.manifest import Utterance


@register_corpus
class TsvCorpus(CorpusSection):
    """A .tsv file of id, audio, split and text per line."""

    kind: Literal["tsv"] = "tsv"
    path: Path

    def read(self) -> list[Utterance]:
        rows = [line.split("\\t") for line in self.path.read_text().splitlines() if line]
        return [Utterance(i, Path(audio), text, split) for i, audio, split, text in rows]

    @classmethod
    def from_path(cls, path: Path) -> dict | None:
        return {"kind": "tsv", "path": str(path)} if path.suffix == ".tsv" else None
'''


def import_module_file(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def toy_method(tmp_path: Path) -> Iterator[None]:
    import_module_file(tmp_path, "toy_pruning_method", TOY_METHOD)
    yield
    METHODS.pop("toy", None)
    sys.modules.pop("toy_pruning_method", None)


@pytest.fixture
def toy_corpus_kind(tmp_path: Path) -> Iterator[None]:
    import_module_file(tmp_path, "toy_corpus_kind", TOY_CORPUS)
    yield
    CORPUS_KINDS.pop("tsv", None)
    sys.modules.pop("toy_corpus_kind", None)


def test_a_registered_method_is_in_the_table_the_figures_and_the_pairing(
    toy_method: None, reproduced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    runs = tmp_path / "runs"
    shutil.copytree(reproduced, runs / "tiny", ignore=shutil.ignore_patterns("report", "gmp-*"))
    spec = yaml.safe_load((reproduced / "grid.yaml").read_text())
    dense = {key: value for key, value in spec["dense"].items() if key != "name"}
    grid_file = tmp_path / "tiny.yaml"
    grid = {**spec, "dense": dense, "methods": {"csp": {}, "toy": {"strength": 2.0}}}
    grid_file.write_text(yaml.safe_dump(grid))

    bad = {**grid, "methods": {"toy": {"strength": "strong"}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="toy options: strength: Input should be a valid"):
        load_grid(tmp_path / "bad.yaml", runs)  # its options are checked by its signature

    every = {key: value for key, value in grid.items() if key != "methods"}
    (tmp_path / "every.yaml").write_text(yaml.safe_dump(every))
    labels = [label for label, _, _ in load_grid(tmp_path / "every.yaml", runs).spec.variants()]
    assert "toy" in labels  # a grid that names no methods runs every registered one
    assert labels == [cls.name for cls in ordered() if cls.name in METHODS]

    summary = run_grid(load_grid(grid_file, runs), log=lambda line: None)
    states = {cell.label: cell.status for cell in summary.cells}
    assert states == {"csp": "complete", "toy": "complete"}
    toy_config = yaml.safe_load((runs / "tiny" / "toy-s0.5-seed0" / "config.yaml").read_text())
    assert toy_config["pruning"]["method"] == "toy"
    assert toy_config["pruning"]["options"] == {"strength": 2.0}

    table = main_table(load_experiment(runs / "tiny"))
    assert [row.name for row in table.rows] == ["Toy magnitude", "CSP"]
    (pairing,) = paired_comparison(table)
    assert pairing.baseline == "Toy magnitude" and pairing.seeds == [0]
    toy_wer = json.loads((runs / "tiny" / "toy-s0.5-seed0" / "result.json").read_text())
    row = rf"\| Toy magnitude \| — \| (\*\*)?{toy_wer['test_wer']:.3f}"
    assert re.search(row, to_markdown(table, [pairing]))
    assert "Toy magnitude: a test of the registry" in to_markdown(table, [pairing])  # legend
    toy_rows = [r for r in csv.DictReader(io.StringIO(to_csv([(table, [pairing])])))]
    (toy_row,) = [r for r in toy_rows if r["label"] == "toy"]
    assert float(toy_row["test_wer_mean"]) == pytest.approx(toy_wer["test_wer"])
    assert (toy_row["paired_system"], toy_row["paired_with"]) == ("CSP", "Toy magnitude")

    figure = figures.wer_vs_sparsity(table)
    legend = figure.axes[0].get_legend()
    assert "Toy magnitude" in [text.get_text() for text in legend.get_texts()]
    handles, labels = figure.axes[0].get_legend_handles_labels()
    toy = handles[labels.index("Toy magnitude")]
    assert toy.lines[0].get_color().lower() == "#123456"  # the colour its class gives


def test_a_declared_cell_column_is_in_every_table_format_the_legend_and_the_csv(
    reproduced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One entry in `CELL_COLUMNS` (here the training wall time every result records)."""
    toy = mean_column("train_wall_s", "train_wall_s_mean", "trained {:.1f} s", "toy: wall time")
    monkeypatch.setattr(cell_columns, "CELL_COLUMNS", [*cell_columns.CELL_COLUMNS, toy])
    experiment = load_experiment(reproduced)
    table = main_table(experiment)
    pairings = paired_comparison(table)
    csp = next(row for row in table.rows if row.label == "csp").entries[0.5]
    seconds = [run.result.train_wall_s for run in csp.complete]
    shown = f"trained {sum(seconds) / len(seconds):.1f} s"

    markdown = to_markdown(table, pairings)
    assert re.search(rf"\| CSP \| — \| [^|]*; {re.escape(shown)}", markdown)
    assert "toy: wall time. Bold:" in markdown  # the legend says what it is
    latex = to_latex(table, pairings)
    assert rf"\scriptsize {shown}" in latex and "toy: wall time" in latex
    html = table_html(table)
    assert shown in html and "toy: wall time" in html
    rows = list(csv.DictReader(io.StringIO(to_csv([(table, pairings)]))))
    (cell,) = [row for row in rows if row["label"] == "csp"]
    assert float(cell["train_wall_s_mean"]) == pytest.approx(sum(seconds) / len(seconds))


def test_a_registered_corpus_kind_trains_and_is_found_by_path(
    toy_corpus_kind: None, tiny_corpus: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in tiny_corpus.read_text().splitlines()]
    tsv = tmp_path / "corpus.tsv"
    tsv.write_text(
        "".join(
            f"{r['id']}\t{tiny_corpus.parent / r['audio']}\t{r['split']}\t{r['text']}\n"
            for r in rows
        )
    )
    assert corpus_from_path(tsv) == {"kind": "tsv", "path": str(tsv)}
    config = ExperimentConfig.model_validate(
        {
            "name": "tsv",
            "corpus": corpus_from_path(tsv),
            "model": {"preset": "tiny"},
            "data": {"max_batch_seconds": 20},
            "trainer": {"max_steps": 1, "val_every_n_steps": 1, "checkpoint_every_n_steps": 1},
            "tracking": {"mode": "disabled"},
        }
    )
    result = train(config, tmp_path / "run")
    assert result.steps == 1
    splits = {split: sum(r["split"] == split for r in rows) for split in ("train", "dev", "test")}
    assert result.utterances == splits
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["corpus"] == {"kind": "tsv", "path": str(tsv)}
    for command in ("reproduce", "evaluate", "bench"):  # `--corpus` help lists it
        shown = CliRunner().invoke(cli, [command, "--help"])
        assert shown.exit_code == 0, shown.output
        assert "tsv: A .tsv file of id, audio, split and text per line" in " ".join(
            shown.output.split()
        )
