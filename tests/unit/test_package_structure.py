"""The package's shape, checked: no import cycles, no imports hidden in functions
(except optional heavy dependencies, each with its reason), modules of a readable size."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "sandbox"
ENGINE_MAX_LINES = 300
MODULE_MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_pkg = MODULES.get(module, Path()).name == "__init__.py"
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.AST) -> list[str]:
    """The sandbox modules an import statement loads (a package's __init__ included)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _resolve(module, node)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    # Python imports a module's own packages before the module itself, so passing
    # through them on the way to a sibling loads nothing new; naming one as the target
    # (`from sandbox.audit import x` inside sandbox.audit.log) does depend on it.
    ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    out = []
    for name in names:
        parts = name.split(".")
        # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate not in MODULES or candidate == module:
                continue
            if candidate in ancestors and i < len(parts):
                continue
            out.append(candidate)
    return out


def _top_level_imports(tree: ast.Module) -> list[ast.AST]:
    """Imports that run when the module is imported (not under `if TYPE_CHECKING:`)."""
    found: list[ast.AST] = []

    def walk(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                found.append(stmt)
            elif isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                continue
            elif isinstance(stmt, (ast.If, ast.Try)):
                for part in (stmt.body, getattr(stmt, "orelse", []), getattr(stmt, "finalbody", [])):
                    walk(part)
                for handler in getattr(stmt, "handlers", []):
                    walk(handler.body)

    walk(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        graph[module] = {t for node in _top_level_imports(tree) for t in _targets(module, node)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    assert _cycles(_graph()) == []


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # The reason sits on the import line or the comment line just above it.
                here = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if "# optional" in here or above.startswith("# optional"):
                    continue
                out.append((node.lineno, ast.unparse(node)))
    return out


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_hidden_inside_a_function(module):
    assert _function_imports(MODULES[module]) == [], (
        "import at module level, or mark an optional heavy dependency with a '# optional: why' comment")


def test_module_sizes():
    too_big = []
    for module, path in MODULES.items():
        n = len(path.read_text().splitlines())
        limit = ENGINE_MAX_LINES if module.startswith("sandbox.engine") else MODULE_MAX_LINES
        if n > limit:
            too_big.append((module, n, limit))
    assert too_big == []


def _engine_parts() -> tuple[list[str], list[str]]:
    """The engine's own modules and its subpackages, as the README's layout should name them."""
    engine = PKG / "engine"
    modules = [p.name for p in sorted(engine.glob("*.py")) if p.name != "__init__.py"]
    packages = [p.name for p in sorted(engine.iterdir()) if (p / "__init__.py").is_file()]
    return modules, packages


def test_the_readme_layout_names_every_engine_module_and_subpackage():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Benchmarks")]
    modules, packages = _engine_parts()
    assert packages, "the engine has subpackages by concern"
    missing = [m for m in modules if m not in layout] + [
        p for p in packages if f"sandbox/engine/{p}/" not in layout]
    assert missing == []


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_every_package_says_what_it_holds(package):
    tree = ast.parse(MODULES[package].read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc.split()) >= 5, f"{package}: its __init__.py needs a docstring saying what it holds"


def test_every_file_of_a_package_is_a_module_or_declared_data():
    # A folder of .py files without an __init__.py would be a namespace package that the
    # structure checks above and the wheel's package list both miss.
    stray = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
             if not (p.parent / "__init__.py").is_file()]
    assert stray == []


def test_test_files_have_unique_basenames():
    # `make test` collects unit, integration and security in one run, without packages:
    # two files of one name collide there, though each folder alone passes.
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_the_engine_type_checks_strictly(tmp_path):
    # `make lint` runs the same check ([tool.mypy] in pyproject.toml: strict on sandbox/engine).
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sandbox/engine" in _mypy_files()


def _mypy_files() -> str:
    return " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"])
