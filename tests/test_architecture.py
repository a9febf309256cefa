"""The shape of the code base (docs/architecture.md): imports point down, functions stay short, local imports say why."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = sorted(p for d in ("rewards", "r1", "eval", "recipes") for p in (REPO / d).glob("*.py"))
MAX_FUNCTION_LINES = 80
# what each layer may import of ours
ALLOWED = {"rewards": {"rewards"}, "r1": {"rewards", "r1"}, "eval": {"rewards", "r1", "eval"},
           "recipes": {"rewards", "r1", "recipes"}}
OURS = {"rewards", "r1", "eval", "recipes"}


def _imports(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """(line, top-level package, inside a function) of every import."""
    out = []
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(m) for f in functions for m in ast.walk(f) if isinstance(m, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0], id(node) in inside) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0], id(node) in inside))
    return out


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path: Path) -> None:
    layer = path.parent.name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for line, package, _ in _imports(tree):
        if package in OURS:
            assert package in ALLOWED[layer], f"{path.name}:{line} imports {package} ({layer} may import {ALLOWED[layer]})"
        if layer == "rewards":
            assert package not in ("torch", "transformers", "trl", "datasets"), f"{path.name}:{line} imports {package}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_functions_are_short(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: split {', '.join(long)}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_local_imports_say_why(path: Path) -> None:
    """An import inside a function is allowed where it keeps a heavy or optional import off a path that does not need
    it (or must run in a child process); the import line, or the one above it, says so in a comment."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    for line, package, local in _imports(tree):
        if local:
            here, above = lines[line - 1], lines[line - 2] if line > 1 else ""
            assert "#" in here or above.strip().startswith("#"), f"{path.name}:{line} local import of {package} without a reason"


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The checks above can fail: an r1 module importing eval, and a local import without a comment."""
    tree = ast.parse("import os\n\ndef f():\n    from eval import cli\n    return cli\n")
    assert (4, "eval", True) in _imports(tree) and "eval" not in ALLOWED["r1"]


def test_entry_script_is_thin() -> None:
    lines = (REPO / "recipes" / "r1_zero.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 80, f"recipes/r1_zero.py has {len(lines)} lines; move logic into r1/"
