"""Every command of README.md's recipe blocks is run by a test here: as written, or with the few
substitutions a test needs, each written next to its README command in RUN_HERE.

What differs, in short: the working folder is a temporary one (so `runs/` is there); the grids
are the tiny grid (whose runs the `reproduced` fixture made, with the README's own `csp
reproduce`) or a 2-step copy of it instead of the hour-long default, paper and ablation grids;
the corpora are the tiny TTS corpus in each layout the README names; PostgreSQL is the tests'
own server; and the commands that cannot end in a test (an upload, a terminal UI, a server)
run a bounded form of themselves. The main command is run by the main job and the test command
by `.ci/run`; every other README command without a row here fails
`test_every_readme_command_is_run_here`, which names it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml
from conftest import REPO, free_port, offline_env, serving
from test_evaluate import librispeech_layout, manifest_lines

from cli import cli

README = REPO / "README.md"
RUN_ELSEWHERE = {
    "main-command": "the main job runs it",
    "test-command": ".ci/run runs it",
}
"""The README blocks after these markers are not recipes: who runs them instead."""

PROGRAMS = {".venv/bin/csp": "csp", ".venv/bin/python": "python"}
"""README's programs and what RUN_HERE writes for them: `csp` runs `python -m cli` and
`python` runs the interpreter of this checkout, as every test runs them."""

TINY_GRID = REPO / "experiments" / "grids" / "tiny.yaml"


@dataclass(frozen=True)
class Row:
    readme: str
    """The command as README.md writes it, its comment dropped."""
    group: str
    """The test that runs it (GROUPS), in that test's working folder."""
    run: str
    """The command run there; {name}: the test's values (the tiny corpus, a port, ...)."""
    why: str
    """What differs from the README command, and why."""
    expect: str
    """Printed by the command when it did its work."""
    serve: bool = False
    """A server: started, asked once, stopped."""


AS_WRITTEN = "as written"
MINI = (
    "mini-NAME.yaml: the tiny grid with 2 dense steps and one 2-step GMP cell, one grid per "
    "corpus (each trains its own dense model), instead of the default grid (an hour)"
)

RUN_HERE = [
    # ---- Launch a sweep ----------------------------------------------------------------
    Row(
        ".venv/bin/csp sweep create sweeps/specs/csp.yaml",
        "shipped",
        "csp sweep create {repo}/sweeps/specs/csp.yaml",
        "as written, in an empty folder (the spec's path made absolute): the study is created "
        "and every trial config checked; its trials would train the default grid for hours",
        "study csp created in runs/sweeps/studies.journal",
    ),
    Row(
        ".venv/bin/csp sweep create sweeps/specs/csp.yaml",
        "sweep",
        "csp sweep create csp.yaml --corpus {corpus}",
        "csp.yaml: the shipped spec on the tiny grid (2 trials of 12 steps, the schedule window "
        "fixed); --corpus: the tiny corpus, so the trials start from the dense model of the "
        "`reproduced` grid",
        "study csp created in runs/sweeps/studies.journal",
    ),
    Row(
        ".venv/bin/csp sweep run csp --workers 2",
        "sweep",
        "csp sweep run csp --workers 2",
        AS_WRITTEN,
        "[csp] 2/2 trials done",
    ),
    Row(
        ".venv/bin/csp sweep status csp",
        "sweep",
        "csp sweep status csp",
        AS_WRITTEN,
        "best so far: trial",
    ),
    Row(
        ".venv/bin/csp sweep best csp --out best.yaml",
        "sweep",
        "csp sweep best csp --out best.yaml",
        AS_WRITTEN,
        "wrote best.yaml",
    ),
    # ---- View the dashboards -----------------------------------------------------------
    Row(
        ".venv/bin/python -m wandb sync runs/default/*/wandb/offline-run-*",
        "grid",
        "python -m wandb sync --dry-run runs/tiny/*/wandb/offline-run-*",
        "runs/tiny: the tiny grid's runs (a copy of the `reproduced` grid) for the default "
        "grid's; --dry-run: lists the runs it would upload instead of uploading them",
        "Would sync 3 run(s)",
    ),
    Row(
        ".venv/bin/python -m wandb leet runs/default/dense/wandb",
        "grid",
        "python -m wandb leet inspect --summary runs/tiny/dense/wandb",
        "runs/tiny as above; `leet` opens a terminal UI that waits for keys, `leet inspect "
        "--summary` prints the same run's state, metrics and config",
        "tiny.dense",
    ),
    Row(
        ".venv/bin/csp sweep dashboard csp --port 8080",
        "sweep",
        "csp sweep dashboard csp --port {port}",
        "a free port; the server runs until stopped: started, asked for its studies once, "
        "stopped (test_sweeps.py::test_dashboard_shows_the_study renders it in Chromium)",
        "dashboard of study csp: http://127.0.0.1:{port}/dashboard/studies/",
        serve=True,
    ),
    Row(
        ".venv/bin/csp report runs/default --out runs/default/report",
        "grid",
        "csp report runs/tiny --out runs/tiny/report",
        "runs/tiny as above",
        "report: runs/tiny/report/report.html",
    ),
    Row(
        ".venv/bin/csp report csp --storage runs/sweeps/studies.journal "
        "--out runs/sweeps/csp-report",
        "sweep",
        "csp report csp --storage runs/sweeps/studies.journal --out runs/sweeps/csp-report",
        AS_WRITTEN,
        "report: runs/sweeps/csp-report/report.html",
    ),
    # ---- Reproduce a paper table -------------------------------------------------------
    Row(
        ".venv/bin/csp reproduce",
        "grid",
        "csp reproduce --grid tiny --corpus {corpus}",
        "the tiny grid on the tiny corpus for the default grid: the `reproduced` fixture's own "
        "command, run again here on a copy of its runs, which it finds ended and reuses",
        "reused",
    ),
    Row(
        ".venv/bin/csp reproduce --grid ablation",
        "grid",
        "csp reproduce --grid ablation.yaml",
        "ablation.yaml: the shipped ablation's seven CSP entries (their 100-step schedule "
        "windows dropped), 2 pruning steps, one seed, from the tiny grid's dense model "
        "(dense_from: tiny) instead of the default grid's",
        "report: runs/ablation/report/report.html",
    ),
    Row(
        ".venv/bin/csp reproduce --grid paper --storage postgresql://user@host/db",
        "grid",
        "csp reproduce --grid tiny --corpus {corpus} --storage {postgres}",
        "the tiny grid for paper (sized for a GPU), its cells found done as above; the tests' "
        "own PostgreSQL server (test_grid_workers.py has two workers share cells on it)",
        "[grid-tiny] 2 cells in",
    ),
    # ---- Your own corpus ---------------------------------------------------------------
    Row(
        ".venv/bin/csp reproduce --corpus data/my/manifest.jsonl",
        "corpus",
        "csp reproduce --corpus {corpus} --grid mini-manifest.yaml",
        f"the tiny corpus's manifest; {MINI}",
        "report: runs/mini-manifest/report/report.html",
    ),
    Row(
        ".venv/bin/csp reproduce --corpus /data/LibriSpeech",
        "corpus",
        "csp reproduce --corpus LibriSpeech --grid mini-librispeech.yaml",
        "LibriSpeech: a LibriSpeech root of tiny-corpus audio (train-clean-100, dev-clean, "
        f"test-clean, test-other); {MINI}",
        "report: runs/mini-librispeech/report/report.html",
    ),
    Row(
        ".venv/bin/csp evaluate MODEL --corpus /data/LibriSpeech --split test-other",
        "corpus",
        "csp evaluate runs/mini-librispeech/dense/model.packed --corpus LibriSpeech "
        "--split test-other",
        "MODEL: the dense model the row above trained; LibriSpeech as above",
        "split test-other: WER",
    ),
    Row(
        ".venv/bin/csp reproduce --corpus data/manifests",
        "corpus",
        "csp reproduce --corpus manifests --grid mini-manifests.yaml",
        f"manifests: `lhotse prepare librispeech` of that root (its Python call); {MINI}",
        "report: runs/mini-manifests/report/report.html",
    ),
    Row(
        ".venv/bin/csp reproduce --corpus data/lhotse",
        "corpus",
        "csp reproduce --corpus lhotse --grid mini-lhotse.yaml",
        f"lhotse: a cuts manifest per split of tiny-corpus utterances; {MINI}",
        "report: runs/mini-lhotse/report/report.html",
    ),
    Row(
        ".venv/bin/csp reproduce --corpus data/kaldi",
        "corpus",
        "csp reproduce --corpus kaldi --grid mini-kaldi.yaml",
        "kaldi: train/ dev/ test/ Kaldi data directories of tiny-corpus utterances, train's "
        f"audio read through sox pipes; {MINI}",
        "report: runs/mini-kaldi/report/report.html",
    ),
]

GROUPS = {
    "shipped": "test_the_shipped_sweep_spec_is_created_as_written",
    "sweep": "test_the_sweep_recipe_runs",
    "grid": "test_the_dashboard_and_reproduce_recipes_run",
    "corpus": "test_the_corpus_recipes_run",
}
"""Each group of rows and the test below that runs them, in order, in one working folder."""


def readme_commands() -> list[str]:
    """Every command line of README.md's ```bash blocks but those of RUN_ELSEWHERE, its
    comment dropped and its spaces collapsed."""
    readme = README.read_text(encoding="utf-8")
    for marker in RUN_ELSEWHERE:
        assert readme.count(f"<!-- {marker} -->\n```bash\n") == 1, f"README.md: no {marker}"
    commands = []
    blocks = re.finditer(r"(?:<!-- ([\w-]+) -->\n)?```bash\n(.*?)^```", readme, re.M | re.S)
    for block in blocks:
        if block.group(1) in RUN_ELSEWHERE:
            continue
        for line in block.group(2).splitlines():
            command = " ".join(re.sub(r"(^|\s)#.*", "", line).split())
            if command:
                commands.append(command)
    return commands


def subcommand_and_options(command: str) -> tuple[list[str], set[str]]:
    """The program and subcommand path of a command (`csp sweep run`, `python -m wandb sync`),
    and the names of its options."""
    words = shlex.split(command)
    program = PROGRAMS.get(words[0], words[0])
    if program == "python":
        path = [program, *words[1:4]]
    else:
        path, group = [program], cli
        for word in words[1:]:
            if not isinstance(group, click.Group) or word not in group.commands:
                break
            group = group.commands[word]
            path.append(word)
    return path, {word.split("=")[0] for word in words if word.startswith("--")}


def test_every_readme_command_is_run_here() -> None:
    commands = readme_commands()
    assert len(commands) >= 10, commands  # the recipe blocks were found
    rows = {row.readme for row in RUN_HERE}
    missing = [command for command in commands if command not in rows]
    assert not missing, (
        "README.md commands that no test runs; give each a Row in RUN_HERE "
        f"(tests/test_readme_commands.py): {missing}"
    )
    stale = sorted(rows - set(commands))
    assert not stale, f"RUN_HERE rows for commands README.md no longer has: {stale}"
    for row in RUN_HERE:
        assert row.group in GROUPS and callable(globals().get(GROUPS[row.group])), row
        readme_path, readme_options = subcommand_and_options(row.readme)
        path, options = subcommand_and_options(row.run)
        assert path == readme_path, f"{row.run!r} is not the subcommand of {row.readme!r}"
        assert readme_options <= options, f"{row.run!r} drops options of {row.readme!r}"
        assert row.why, row


def run_group(group: str, cwd: Path, **values: object) -> dict[str, str]:
    """Run the rows of `group` in order in `cwd`; returns each command's output by command."""
    outputs = {}
    for row in RUN_HERE:
        if row.group != group:
            continue
        command = row.run.format(repo=REPO, **values)
        program, rest = command.split(" ", 1)
        line = f"{shlex.quote(sys.executable)} {'-m cli ' if program == 'csp' else ''}{rest}"
        if row.serve:  # started, asked for its studies once, stopped
            with serving(["bash", "-c", f"exec {line}"], cwd, int(values["port"])) as answers:
                output = "".join(answers)
        else:
            done = subprocess.run(
                ["bash", "-c", line],
                cwd=cwd,
                capture_output=True,
                text=True,
                env=offline_env(),
                timeout=900,
            )
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{row.readme}: `{command}` failed:\n{output[-3000:]}"
        expected = row.expect.format(**values)
        failed = f"{row.readme}: `{command}` did not print {expected!r}:\n{output[-3000:]}"
        assert expected in output, failed
        outputs[row.run] = output
    return outputs


@pytest.fixture(scope="module")
def home(reproduced: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working folder of the sweep and grid rows: runs/tiny is a copy of the `reproduced`
    grid (its dense model, cells and W&B runs), csp.yaml and ablation.yaml are written."""
    home = tmp_path_factory.mktemp("readme")
    shutil.copytree(reproduced, home / "runs" / "tiny", symlinks=True)  # W&B's latest-run

    spec = yaml.safe_load((REPO / "sweeps" / "specs" / "csp.yaml").read_text())
    for window in ("pruning.schedule.start", "pruning.schedule.end"):
        del spec["space"][window]  # ranges over the default grid's 100 steps
    spec.update(
        grid=str(TINY_GRID),
        sparsity=0.5,  # the tiny grid's
        trials=2,
        fixed={
            "trainer.max_steps": 12,
            "trainer.val_every_n_steps": 4,
            "trainer.checkpoint_every_n_steps": 4,
            "pruning.schedule.end": 8,
        },
    )
    (home / "csp.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")

    ablation = yaml.safe_load((REPO / "experiments" / "grids" / "ablation.yaml").read_text())
    dense = yaml.safe_load((reproduced / "grid.yaml").read_text())["dense"]
    dense.pop("name")
    for entry in ablation["methods"].values():
        entry.pop("schedule", None)  # windows of the default grid's 100 steps
    ablation.update(
        dense_from="tiny",
        dense=dense,
        prune=two_steps(),
        schedule={"kind": "cubic", "start": 0, "end": 1, "every": 1},
        seeds=[0],
    )
    (home / "ablation.yaml").write_text(yaml.safe_dump(ablation), encoding="utf-8")
    return home


def two_steps() -> dict[str, object]:
    trainer = {"max_steps": 2, "val_every_n_steps": 2, "checkpoint_every_n_steps": 2}
    return {"trainer": {**trainer, "bench_utterances": 0}}


@pytest.mark.slow  # a `csp` process that loads the default grid: about 5 s
def test_the_shipped_sweep_spec_is_created_as_written(tmp_path: Path) -> None:
    run_group("shipped", tmp_path)


def test_the_sweep_recipe_runs(home: Path, tiny_corpus: Path) -> None:
    outputs = run_group("sweep", home, corpus=tiny_corpus, port=free_port())
    studies = outputs["csp sweep dashboard csp --port {port}"].replace(" ", "")
    assert '"study_name":"csp"' in studies
    best = yaml.safe_load((home / "best.yaml").read_text())
    assert best["pruning"]["method"] == "csp"  # ready for `csp train --config best.yaml`


def test_the_dashboard_and_reproduce_recipes_run(
    home: Path, tiny_corpus: Path, postgres: str
) -> None:
    run_group("grid", home, corpus=tiny_corpus, postgres=postgres)
    results = json.loads((home / "runs" / "ablation" / "results.json").read_text())
    ablation = yaml.safe_load((REPO / "experiments" / "grids" / "ablation.yaml").read_text())
    assert len(results["cells"]) == len(ablation["methods"])
    assert {cell["status"] for cell in results["cells"]} == {"complete"}


def test_the_corpus_recipes_run(tiny_corpus: Path, tmp_path: Path) -> None:
    """Each layout of the README's corpus block, made of tiny-corpus utterances."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.recipes import prepare_librispeech

    parts = {
        "train-clean-100": ("train", 16), "dev-clean": ("dev", 4),
        "test-clean": ("test", 4), "test-other": ("test", 3),
    }  # fmt: skip
    librispeech_layout(tiny_corpus, tmp_path / "LibriSpeech", parts)
    prepare_librispeech(tmp_path / "LibriSpeech", output_dir=tmp_path / "manifests", num_jobs=1)
    for split, count in (("train", 16), ("dev", 4), ("test", 4)):
        lines = manifest_lines(tiny_corpus, split)[:count]
        recordings = [Recording.from_file(line["audio"], recording_id=line["id"]) for line in lines]
        supervisions = [
            SupervisionSegment(
                line["id"], line["id"], 0, audio.duration, text=line["text"], speaker=line["voice"]
            )
            for line, audio in zip(lines, recordings, strict=True)
        ]
        (tmp_path / "lhotse").mkdir(exist_ok=True)
        CutSet.from_manifests(
            recordings=RecordingSet.from_recordings(recordings),
            supervisions=SupervisionSet.from_segments(supervisions),
        ).to_file(tmp_path / "lhotse" / f"{split}_cuts.jsonl.gz")
        kaldi = tmp_path / "kaldi" / split
        kaldi.mkdir(parents=True)
        piped = "sox {} -t wav - |" if split == "train" else "{}"
        (kaldi / "wav.scp").write_text(
            "".join(f"{line['id']} {piped.format(line['audio'])}\n" for line in lines)
        )
        (kaldi / "text").write_text("".join(f"{line['id']} {line['text']}\n" for line in lines))
        (kaldi / "utt2spk").write_text("".join(f"{line['id']} {line['voice']}\n" for line in lines))
    for layout in ("manifest", "librispeech", "manifests", "lhotse", "kaldi"):
        grid = yaml.safe_load(TINY_GRID.read_text())
        grid.update(
            name=f"mini-{layout}",
            prune=two_steps(),
            schedule={"kind": "cubic", "start": 0, "end": 1, "every": 1},
            methods={"gmp": {}},
        )
        grid["dense"]["trainer"] = two_steps()["trainer"]
        (tmp_path / f"mini-{layout}.yaml").write_text(yaml.safe_dump(grid), encoding="utf-8")

    outputs = run_group("corpus", tmp_path, corpus=tiny_corpus)
    table = outputs["csp reproduce --corpus LibriSpeech --grid mini-librispeech.yaml"]
    assert "test-clean" in table and "test-other" in table  # scored per test set
