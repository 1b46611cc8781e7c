"""The shape of the code: packages depend on each other in one direction, the `csp` command
is imported by nothing, and the README's layout and method tables match the tree."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.registry import ordered

LAYERS = ("lightning_modules", "experiments", "sweeps", "analysis", "cli")
"""Each package may import the ones before it, never one after it."""


def python_files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function, absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    modules = {module_name(path): path for package in LAYERS for path in python_files(package)}
    return {
        name: {target for target in imported_modules(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def test_packages_import_only_the_layers_below_them() -> None:
    upward = [
        f"{source} imports {target}"
        for source, targets in project_graph().items()
        for target in targets
        if LAYERS.index(target.split(".")[0]) > LAYERS.index(source.split(".")[0])
    ]
    assert not upward, upward


def test_no_import_cycle_between_modules() -> None:
    graph = project_graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_packages_never_load_the_command() -> None:
    """Importing every module of the packages below the command leaves `cli` unloaded."""
    modules = [
        module_name(path)
        for package in LAYERS[:-1]
        for path in python_files(package)
        if path.name != "__main__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'cli' or m.startswith('cli.'))\n"
        "assert not loaded, loaded\n"
        "print(len(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table after `heading` in a Markdown text, cells stripped."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return [row for row in rows[1:] if not set("".join(row)) <= set("-: ")]


def test_the_readme_layout_names_every_folder_of_the_tree() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = {row[0].strip("`").rstrip("/") for row in markdown_table(readme, "## Layout")}
    tracked = subprocess.run(
        ["git", "ls-files"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.split()
    folders = {Path(name).parts[0] for name in tracked if len(Path(name).parts) > 1}
    top = {folder for folder in folders if not folder.startswith(".")}
    packages = {"lightning_modules"}  # listed by its sub-packages
    nested = {entry.split("/")[0] for entry in listed}
    assert top == nested, (sorted(top - nested), sorted(nested - top))
    for entry in listed:
        assert (REPO / entry).is_dir(), f"README layout names {entry}/, which does not exist"
    subpackages = {
        f"{package}/{path.parent.name}"
        for package in packages
        for path in (REPO / package).glob("*/__init__.py")
    }
    assert subpackages <= listed, sorted(subpackages - listed)


def test_the_readme_method_table_is_the_registry() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = markdown_table(readme, "## Pruning methods")
    expected = [
        [f"`{cls.name}`", f"`{cls.__name__}`", cls.title, str(cls.role)]
        for cls in ordered()
        if cls.name in METHODS  # the controls are not pruning methods
    ]
    assert [row[:4] for row in rows] == expected
    assert {re.sub(r"`", "", row[0]) for row in rows} == set(METHODS)


NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
        + ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen")
        + ("eighteen", "nineteen", "twenty")
    )
}
STATED_COUNT = re.compile(
    rf"\b(\d+|{'|'.join(NUMBER_WORDS)})\s+(?:(?:registered|pruning)\s+)*(methods|sweep\s+specs)\b",
    re.IGNORECASE,
)


def test_the_readme_is_short_and_its_counts_are_the_registrys() -> None:
    """The README is a front door (at most 200 lines), and every count of methods or sweep specs
    it states ("ten pruning methods", "9 sweep specs") is the registry's and the folder's."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200, f"README.md has {len(readme.splitlines())} lines"
    prose = re.sub(r"<!-- main-result -->.*?<!-- /main-result -->", "", readme, flags=re.DOTALL)
    actual = {
        "methods": len(METHODS),
        "sweep specs": len(list((REPO / "sweeps" / "specs").glob("*.yaml"))),
    }
    stated = [
        (found.group(0), found.group(1).lower(), " ".join(found.group(2).lower().split()))
        for found in STATED_COUNT.finditer(prose)
    ]
    assert {kind for _, _, kind in stated} == set(actual), stated  # it states both counts
    for phrase, number, kind in stated:
        count = int(number) if number.isdigit() else NUMBER_WORDS[number]
        assert count == actual[kind], f"README.md says {phrase!r}; there are {actual[kind]}"
