"""The layers of DESIGN.md hold: only the glue imports Airflow, the core never imports a method, a
method never imports another, and what one method alone uses lives in that method."""

from __future__ import annotations

import re
from pathlib import Path

from synth_tasks.method import REGISTRY

ROOT = Path(__file__).resolve().parents[2] / "synth_tasks"
METHODS = ROOT / "methods"

# Core capabilities DESIGN.md places in the shared core (quality layer, text tools) that one method
# uses today, with the issue whose method is next to use them.
SHARED_BY_DESIGN = {
    "quality.judge": "#13 personas, #14 curriculum (LLM judge)",
    "quality.safety": "#13 personas (safety screen)",
    "quality.decontamination": "#14 curriculum, #15 data selection (benchmark decontamination)",
    "quality.diversity": "#15 data selection (embeddings, clusters, balanced sampling)",
    "quality.grounding": "#11 research papers, #12 knowledge graph (grounded QA)",
    "text.markdown": "#11 research papers (sections of extracted text)",
}


def _imports(path: Path) -> set[str]:
    text = path.read_text()
    found = set(re.findall(r"(?:from|import) synth_tasks\.([\w.]+)", text))
    for package, names in re.findall(r"from synth_tasks\.([\w.]+) import ([\w, ]+)", text):
        found |= {f"{package}.{n.strip()}" for n in names.split(",")}
    return found


def _method_of(path: Path) -> str | None:
    if METHODS not in path.parents:
        return None
    return path.relative_to(METHODS).parts[0].removesuffix(".py")


def test_only_the_glue_imports_airflow():
    importers = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                       if re.search(r"^\s*(from|import) airflow\b", p.read_text(), re.MULTILINE))
    assert importers == ["airflow_glue.py"]


def test_imports_point_down_only():
    for path in ROOT.rglob("*.py"):
        owner = _method_of(path)
        for module in _imports(path):
            if not module.startswith("methods."):
                continue
            target = module.split(".")[1]
            if owner is None:
                assert path.name == "method.py", f"core module {path.relative_to(ROOT)} imports {module}"
            else:
                assert target == owner, f"method {owner} imports another method: {module}"


def test_what_one_method_alone_uses_lives_in_that_method():
    core = {str(p.relative_to(ROOT).with_suffix("")).replace("/", "."): p for p in ROOT.rglob("*.py")
            if _method_of(p) is None and p.name != "__init__.py"}
    users: dict[str, set[str]] = {name: set() for name in core}
    for path in ROOT.rglob("*.py"):
        for module in _imports(path):
            if module in users:
                users[module].add(_method_of(path) or "core")
    for name, who in sorted(users.items()):
        if name.startswith(("quality.", "text.")) and who - {"core"} and len(who) == 1:
            assert name in SHARED_BY_DESIGN, f"{name} is used by {who} alone: move it into that method"
    assert set(REGISTRY) == {p.name.removesuffix(".py") for p in METHODS.iterdir()
                             if p.name != "__init__.py" and p.name != "__pycache__"}
