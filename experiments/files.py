"""Reading the project's YAML files (experiment configs, grids, sweep specs), with one error
type for every file a run cannot start from; writing a benchmark's record into the README."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

README = Path(__file__).resolve().parent.parent / "README.md"


class ConfigError(ValueError):
    """A config, grid or spec that cannot run; the message names the file and the field."""


def read_yaml(path: str | Path, what: str = "file") -> dict[str, Any]:
    """The mapping at the top of a YAML file; a missing file, a syntax error (with its line
    and column) or another top-level value is a `ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def replace_marked_block(path: Path, name: str, block: str) -> None:
    """Write `block` between the lines `<!-- NAME -->` and `<!-- /NAME -->` of a Markdown file
    (a benchmark's record in the README); a file without both markers is an error naming it."""
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
    if start not in text or end not in text:
        raise ConfigError(f"{path}: no <!-- {name} --> ... <!-- /{name} --> block to write into")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(head + start + block + end + tail, encoding="utf-8")


def parse_or_write_readme(
    parser: argparse.ArgumentParser,
    record: Path,
    block_name: str,
    block: Callable[[dict[str, Any]], str],
) -> argparse.Namespace | None:
    """A benchmark's arguments, with its `--readme` option: given, the committed `record` is
    written into the README's `block_name` block (`replace_marked_block`) and None returned,
    nothing to run; else the parsed arguments."""
    parser.add_argument(
        "--readme", action="store_true", help="only write the committed record into README.md"
    )
    args = parser.parse_args()
    if not args.readme:
        return args
    written = json.loads(record.read_text(encoding="utf-8"))
    replace_marked_block(README, block_name, block(written))
    return None
