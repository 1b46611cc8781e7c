"""Every Python block of the README and the docs runs as written: the blocks of one page in
order, in one fresh interpreter, in an empty folder (a page reads like a session)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
TRAINS = {"your-model.md"}
"""Pages whose blocks train (a few seconds each): the slow tier."""


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


WITH_CODE = [page for page in PAGES if blocks(page)]


def test_the_pages_with_code_are_found() -> None:
    names = {page.name for page in WITH_CODE}
    assert {"your-model.md", "pruning.md", "runtime.md", "corpora.md"} <= names


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(page, id=page.name, marks=[pytest.mark.slow] if page.name in TRAINS else [])
        for page in WITH_CODE
    ],
)
def test_every_python_block_runs(page: Path, tmp_path: Path) -> None:
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n\n".join(blocks(page)), encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=environment, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{page.name}: its code fails\n{done.stderr[-3000:]}"
