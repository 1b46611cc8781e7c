"""The README leads with the main job's committed result: its table is the benchmark's table,
its provenance line names the benchmark's commit and date, and the signal checks it states
are the benchmark's."""

from __future__ import annotations

import json
import re

from conftest import REPO

RECORD = REPO / "benchmarks" / "results" / "reproduce_default.json"


def readme_block(name: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", readme, re.DOTALL)
    assert found, f"README.md has no <!-- {name} --> block"
    return found.group(1)


def test_the_readme_table_is_the_committed_benchmarks() -> None:
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    block = readme_block("main-result")
    assert record["table_markdown"].strip() in block
    assert f"commit {record['commit']}" in block and record["date"] in block
    for check, holds in record["signal"].items():
        assert f"{check}: {'yes' if holds else 'no'}" in block
    assert (
        "reproduce_default.png" in block
        and (REPO / "benchmarks/results/reproduce_default.png").is_file()
    )


def test_the_readme_sentence_on_csp_counts_the_benchmarks_verdicts() -> None:
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    block = readme_block("main-result")
    for verdict in ("wins", "loses", "ties"):
        count = sum(v["verdict"] == verdict for v in record["csp_verdicts"])
        assert f"{verdict} {count}" in block


BUDGET_RECORD = REPO / "benchmarks" / "results" / "budget_curve.json"


def test_the_readme_budget_result_is_the_committed_benchmarks() -> None:
    """The budget block: the benchmark's commit, date, figure and tables, and per budget the
    proposed method's verdicts as the record counts them."""
    record = json.loads(BUDGET_RECORD.read_text(encoding="utf-8"))
    block = readme_block("budget-result")
    assert f"commit {record['commit']}" in block and record["date"] in block
    assert "budget_curve.png" in block and (REPO / record["figure"]).is_file()
    assert f"({record['tables_markdown']})" in block
    tables = (REPO / record["tables_markdown"]).read_text(encoding="utf-8")
    for curve in record["curves"]:  # the linked tables are the record's
        for verdict in curve["verdicts"]:
            assert verdict["text"] in tables
    for curve in record["curves"]:
        for budget in curve["budgets"]:
            here = [v for v in curve["verdicts"] if v["budget"] == budget]
            line = next(
                (line for line in block.splitlines() if f"**{budget:,} steps per cell**" in line),
                None,
            )
            assert (line is not None) == bool(here), budget
            for verdict in here:
                named = re.search(rf"{verdict['verdict']} against ([^;.]*)", line)
                assert named and verdict["compared_with"] in named.group(1).split(", ")
