"""The layout is the architecture: a layer imports only layers below it, a task never imports another task,
and no function is longer than one screen. Read from the source (AST), so it holds for code never run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "bertkit"
LAYERS = {
    "bertkit.core": 0,  # shared vocabulary: batch keys, task facts, seeding, schema helpers, errors
    "bertkit.settings": 1,  # schemas of the model, tokenizer and trainer groups
    "bertkit.readers": 1,  # file formats
    "bertkit.fingerprints": 1,  # what an input file, folder or checkpoint is
    "bertkit.tasks": 2,  # one module or package per task family, and the registry
    "bertkit.config": 3,  # the run's config: every group's schema together
    "bertkit.packing": 3,  # the encoder's forward pass on packed rows, which the model recipe turns on
    "bertkit.tokenizer": 4,
    "bertkit.model": 4,
    "bertkit.training": 5,  # the task-agnostic Trainer and its parts
    "bertkit.artifacts": 6,
    "bertkit.preprocess": 6,  # the checked task, its tokenizer and data: what train.py and prepare build
    "bertkit.run_dir": 6,  # which run a folder holds, claiming it, its record
    "bertkit.metrics": 6,  # evaluate adapters over the tasks' score functions
    "bertkit.train": 7,
    "bertkit.launch": 7,
    "bertkit.prepare": 7,
    "bertkit.summarize": 7,
    "bertkit.export": 7,
    "bertkit.predict": 7,
    "bertkit.cli": 8,
    "bertkit.glue_suite": 8,  # runs train.py per task, then summarizes them
}
SHARED_BY_TASKS = {"bertkit.tasks.base", "bertkit.tasks.fine_tuning"}
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bertkit_imports(path: Path, package: str = "") -> list[tuple[int, str]]:
    """(line, module or name) of every import of bertkit; relative imports resolved against `package`."""
    imports = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            imports += [(node.lineno, name) for name in names if name.startswith("bertkit")]
        elif isinstance(node, ast.Import):
            imports += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("bertkit")]
    return imports


def unit(name: str) -> str:
    """The layer entry a module belongs to (its longest matching prefix)."""
    return max((key for key in LAYERS if name == key or name.startswith(key + ".")), key=len)


def task_of(name: str) -> str | None:
    """`bertkit.tasks.<family>` for a module of a task family; None for the tasks layer's shared modules."""
    parts = name.split(".")
    if len(parts) < 3 or parts[1] != "tasks" or name in SHARED_BY_TASKS or name == "bertkit.tasks.registry":
        return None
    return ".".join(parts[:3])


def resolvable(name: str) -> bool:
    """Whether `name` is a module or package of bertkit (an imported symbol's name is not)."""
    relative = Path(*name.split("."))
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


SOURCES = sorted(PACKAGE.rglob("*.py"))


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_layers_below_them(path):
    importer = module_name(path)
    for line, imported in bertkit_imports(path, package_of(path)):
        if not resolvable(imported) or imported == "bertkit":
            continue
        own, other = unit(importer), unit(imported)
        where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
        assert own == other or LAYERS[other] < LAYERS[own], f"{where}: a layer may only import layers below it"


@pytest.mark.parametrize("path", sorted((PACKAGE / "tasks").rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_task_never_imports_another_task(path):
    importer = task_of(module_name(path))
    for line, imported in bertkit_imports(path, package_of(path)):
        other = task_of(imported) if resolvable(imported) else None
        if importer is not None and other is not None:
            assert other == importer, f"{path.relative_to(ROOT)}:{line}: {importer} imports {imported}"
        if imported == "bertkit.tasks.registry":
            pytest.fail(f"{path.relative_to(ROOT)}:{line}: only layers above the tasks may use the registry")


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "functions longer than 60 lines: " + "; ".join(long)


def test_every_module_has_a_layer():
    for path in SOURCES:
        name = module_name(path)
        assert any(name == key or name.startswith(key + ".") for key in LAYERS) or name == "bertkit", name


def test_the_checker_sees_a_violation(tmp_path):
    """The import reader finds what a layer violation looks like (guards against a test that cannot fail)."""
    source = tmp_path / "bad.py"
    source.write_text(
        "from bertkit.training.trainer import Trainer\nimport bertkit.tasks.registry\nfrom ..sop import x\n"
    )
    assert [name for _, name in bertkit_imports(source, "bertkit.tasks.pretraining")] == [
        "bertkit.training.trainer", "bertkit.training.trainer.Trainer", "bertkit.tasks.registry",
        "bertkit.tasks.sop", "bertkit.tasks.sop.x",
    ]  # fmt: skip
    assert LAYERS[unit("bertkit.training.trainer")] > LAYERS[unit("bertkit.tasks.pretraining.task")]
    assert task_of("bertkit.tasks.pretraining.sop") != task_of("bertkit.tasks.multiple_choice")


def test_the_registry_lists_every_data_schema_once():
    """`DataConfig` (what `data` may be) and the registry's table name the same schemas."""
    from typing import get_args

    from bertkit.tasks.registry import TASKS, DataConfig

    schemas = [schema for schema, _ in TASKS.values()]
    assert len(set(schemas)) == len(schemas) and set(get_args(DataConfig)) == set(schemas)
