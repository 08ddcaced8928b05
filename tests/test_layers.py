"""The layer rule of docs/architecture.md, read from every module's imports (function-level ones included):
commands -> application (synth.*, synth.options) -> synth.models -> synth.data -> synth.core, pointing down only."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: repository folder -> the package it installs as (setup.cfg's package_dir)
ROOTS = {"synth": "synth", "models": "synth.models", "data": "synth.data", "options": "synth.options",
         "configs": "synth.configs"}
LAYERS = ("core", "data", "models", "application", "commands")


def layer_of(module: str) -> str:
    """The layer of one of synth's modules, by its dotted name."""
    for prefix, layer in (("synth.core", "core"), ("synth.data", "data"), ("synth.models", "models"),
                          ("synth.commands", "commands")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "application"


def installed_name(path: Path) -> str:
    """``models/networks/vgg.py`` -> ``synth.models.networks.vgg``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([ROOTS[parts[0]], *parts[1:]])


def our_modules() -> dict[str, Path]:
    return {installed_name(p): p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))}


def imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The modules (and module.name candidates) one import statement names, relative imports resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def imports_of(path: Path, name: str, module_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for the file's import statements (all of them, or the module-level ones)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    return [(node.lineno, target) for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
            for target in imported_names(node, package)]


def test_every_import_points_down_the_layers():
    modules = our_modules()
    offences = []
    for name, path in modules.items():
        own = LAYERS.index(layer_of(name))
        for line, target in imports_of(path, name):
            top = target.split(".")[0]
            if top in ("data", "models", "options", "configs", "tests", "bench"):
                offences.append(f"{path.relative_to(REPO)}:{line} imports '{target}' (not under synth.)")
            elif top == "synth" and target in modules and LAYERS.index(layer_of(target)) > own:
                offences.append(f"{path.relative_to(REPO)}:{line} ({layer_of(name)}) imports {target} "
                                f"({layer_of(target)})")
    assert not offences, "\n".join(offences)


def test_the_rule_catches_a_back_arrow(tmp_path):
    """The checker itself: a models module importing the trainer is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from synth.trainer import Trainer\n")
    assert (2, "synth.trainer") in imports_of(bad, "synth.models.bad")
    assert LAYERS.index(layer_of("synth.trainer")) > LAYERS.index(layer_of("synth.models.bad"))


def test_no_import_cycle_between_modules():
    """Module-level imports form no cycle (function-level ones may only point down, checked above)."""
    modules = our_modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for _, target in imports_of(path, name, module_level_only=True):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_setup_cfg_lists_every_package_folder():
    """An explicit package list (needed for the package_dir mapping) must not forget a folder."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    folders = {installed_name(p) for root in ROOTS for p in (REPO / root).rglob("__init__.py")}
    assert folders == listed
