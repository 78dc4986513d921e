"""The docs name only what exists. README.md and every docs/**/*.md are read as text; every repository
path they name (in a code span, a code block or a link), every ``synth_tasks.…`` module, every
``make <target>`` and every relative link must resolve in this tree and this Makefile, so a file
moved, a target renamed or a ``SYNTH_*`` setting dropped fails here instead of leaving the docs
wrong.

Paths with a placeholder (``<name>``, ``{partition}``, ``*.md``, ``include/...``) are skipped; so are
paths inside a run's output (``final/README.md``) and outside the repository (``../shared/...``)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").rglob("*.md"))]

# A path starting with one of these names a file or folder of the repository.
REPO_PREFIXES = ("synth_tasks/", "dags/", "bench/", "tests/", "include/", "scripts/", "docs/", "plugins/", ".ci/")
# Other names ending like a repository file are checked too: a partial Python path must end a real one
# (`methods/papers/extract.py`); a bare file name must be the name of a file of the tree, unless listed here.
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml")
NOT_REPO_FILES = {
    # the "Data V5" scripts the data_selection method replaces (docs/methods/data_selection.md)
    "select_data.py", "few_shot_sample.py", "fewshot_to_prompt.py", "prepare_chat.py", "chat_2_seq2seq.py",
    "prepare_synthetic.py",
    # files a run writes: the papers method's rendering of a paper, the dataset card
    "paper.md",
    # corpus files the benchmarks read in place from ../shared/corpora (docs/quality.md)
    "ch08-02-strings.md",
}
PLACEHOLDER = re.compile(r"[<{*\[]|\.\.\.|…|://|^\.\.|^/|^~|^\$")
MODULE = re.compile(r"\b(?:synth_tasks|tests)(?:\.[A-Za-z_]\w*)+")
MAKE = re.compile(r"(?:^|[\s;&|(`])make\s+((?:(?:[A-Z_][A-Z0-9_]*=\S*|-\S+)\s+)*)([a-z][\w.-]*)")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)((?:(?!\1)[^\n]|\n(?!\s*\n))+?)\1")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@cache
def parsed(doc: Path) -> tuple[list[str], list[str], str]:
    """(code spans, code blocks, prose with both taken out) of one markdown file."""
    blocks: list[str] = []
    prose_lines: list[str] = []
    fence: str | None = None
    for line in doc.read_text(encoding="utf-8").splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            blocks.append("")
            prose_lines.append("")
        elif fence is not None:
            if m and m.group(1).startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            else:
                blocks[-1] += line + "\n"
        else:
            prose_lines.append(line)
    prose = "\n".join(prose_lines)
    spans = [" ".join(m.group(2).split()) for m in CODE_SPAN.finditer(prose)]
    return spans, blocks, CODE_SPAN.sub(" ", prose)


def tokens(code: str) -> list[str]:
    return [t.strip("'\",;:()[]") for t in re.split(r"[\s=]+", code) if t]


@cache
def repo_basenames() -> frozenset[str]:
    names = {p.name for p in ROOT.iterdir() if p.is_file()}
    for top in REPO_PREFIXES:
        names |= {p.name for p in (ROOT / top).rglob("*") if p.is_file()}
    return frozenset(names)


def repo_path(token: str) -> str | None:
    """The repository path a token names, or None when it names none (prose, an output, a placeholder)."""
    token = token.rstrip(".,").split("#")[0]
    if not token or PLACEHOLDER.search(token):
        return None
    if token.startswith(REPO_PREFIXES):
        return token
    if not token.endswith(FILE_SUFFIXES):
        return None
    if re.fullmatch(r"\.\w+", token):  # an extension: `.md`
        return None
    if "/" in token:
        # Python files are the repository's: a partial path must end a real one. Other files with a
        # folder are a run's or a build's outputs (`final/README.md`, `build/cluster-check/report.md`).
        return token if token.endswith(".py") else None
    return token


def named_paths() -> dict[str, set[str]]:
    """Every repository path the docs name -> the docs naming it."""
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        spans, blocks, _ = parsed(doc)
        candidates = [t for span in spans for t in tokens(span)]
        # In code blocks (trees, commands, Python) only names with a repository prefix count.
        candidates += [t for block in blocks for t in tokens(block) if t.startswith(REPO_PREFIXES)]
        for token in candidates:
            path = repo_path(token)
            if path:
                found.setdefault(path, set()).add(rel(doc))
    return found


def path_exists(path: str) -> bool:
    if path.startswith(REPO_PREFIXES):
        return (ROOT / path).exists()
    if "/" in path:
        return any(str(p).endswith("/" + path) for top in REPO_PREFIXES for p in (ROOT / top).rglob(Path(path).name))
    return path in repo_basenames() or path in NOT_REPO_FILES


def named_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        spans, blocks, _ = parsed(doc)
        for code in [*spans, *blocks]:
            for m in MODULE.finditer(code):
                found.setdefault(m.group(0), set()).add(rel(doc))
    return found


def module_error(dotted: str) -> str | None:
    """Why ``a.b.c`` names no module (or no name defined in its module), or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if base.with_suffix(".py").is_file() or base.is_dir():
            rest = parts[i:]
            if not rest:
                return None
            if not source.is_file():
                return f"{'.'.join(parts[:i])} has no {rest[0]!r}"
            name = re.escape(rest[0])
            defined = re.compile(rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^{name}\s*[:=]|^\s*(?:from\s+\S+\s+)?import\s.*\b{name}\b", re.M)
            if defined.search(source.read_text(encoding="utf-8")):
                return None
            return f"{rel(source)} defines no {rest[0]!r}"
    return f"no module {parts[0]}"


@cache
def makefile_targets() -> tuple[frozenset[str], frozenset[str]]:
    """(targets of the Makefile's rules, names listed in .PHONY)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    rules: set[str] = set()
    phony: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z.][\w.-]*(?:[ \t]+[A-Za-z.][\w.-]*)*)[ \t]*::?(?!=)(.*)$", line)
        if not m:
            continue
        names = m.group(1).split()
        if names == [".PHONY"]:
            phony |= set(m.group(2).split())
        elif names[0] not in ("export", "override", "define") and not m.group(2).lstrip().startswith("="):
            rules |= set(names)
    return frozenset(rules), frozenset(phony)


def named_make_targets() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        spans, blocks, _ = parsed(doc)
        for code in [*spans, *blocks]:
            for line in code.splitlines():
                for m in MAKE.finditer(line):
                    found.setdefault(m.group(2), set()).add(rel(doc))
    return found


def links(doc: Path) -> list[str]:
    _, _, prose = parsed(doc)
    return LINK.findall(prose) + REF_LINK.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


@cache
def anchors(doc: Path) -> frozenset[str]:
    _, _, prose = parsed(doc)
    return frozenset(slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.M))


def link_error(doc: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, file:
        return None
    path_part, _, fragment = target.partition("#")
    dest = (doc.parent / path_part).resolve() if path_part else doc
    if ROOT not in dest.parents and dest != ROOT:
        return f"{target} leaves the repository"
    if not dest.exists():
        return f"{target}: no {dest.relative_to(ROOT)}"
    if fragment and dest.suffix == ".md" and fragment not in anchors(dest):
        return f"{target}: {dest.relative_to(ROOT)} has no heading #{fragment}"
    return None


ENV_VAR = re.compile(r"\bSYNTH_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_]*\*)")
ENV_SOURCES = ("synth_tasks", "scripts", "bench", "tests", "dags", "Makefile", "Dockerfile", "docker-compose.yaml")


def named_env_vars() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        spans, blocks, _ = parsed(doc)
        for code in [*spans, *blocks]:
            for m in ENV_VAR.finditer(code):
                found.setdefault(m.group(0), set()).add(rel(doc))
    return found


@cache
def code_text() -> str:
    """Everything the code, the build and the deployment files say (where a setting is read)."""
    parts = []
    for name in ENV_SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if p.resolve() != Path(__file__).resolve()]
        parts += [f.read_text(encoding="utf-8") for f in files]
    return "\n".join(parts)


PATHS = named_paths()
MODULES = named_modules()
TARGETS = named_make_targets()
ENV_VARS = named_env_vars()


def test_the_docs_name_paths_modules_and_targets():
    """The extraction itself: a change to the docs' style must not silently check nothing."""
    assert len(DOCS) > 5 and len(PATHS) > 50 and len(MODULES) > 3 and len(ENV_VARS) > 5
    assert {"run", "test"} <= set(TARGETS)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_named_path_exists(path):
    assert path_exists(path), f"{path}, named in {sorted(PATHS[path])}, is not in the repository"


@pytest.mark.parametrize("dotted", sorted(MODULES))
def test_named_module_exists(dotted):
    error = module_error(dotted)
    assert error is None, f"`{dotted}`, named in {sorted(MODULES[dotted])}: {error}"


@pytest.mark.parametrize("name", sorted(ENV_VARS))
def test_named_setting_is_read_somewhere(name):
    assert re.search(rf"\b{name}\b", code_text()), \
        f"${name}, named in {sorted(ENV_VARS[name])}: no code, Makefile or deployment file mentions it"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_make_target_exists(target):
    rules, phony = makefile_targets()
    assert target in rules | phony, f"`make {target}`, named in {sorted(TARGETS[target])}: not a Makefile target"


def test_phony_targets_have_rules():
    rules, phony = makefile_targets()
    assert {"run", "test"} <= rules
    assert phony <= rules, f".PHONY lists targets without a rule: {sorted(phony - rules)}"


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_resolve(doc):
    errors = [e for target in links(doc) if (e := link_error(doc, target))]
    assert not errors, f"{rel(doc)}: " + "; ".join(errors)


def test_readme_stays_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n < 400, f"README.md has {n} lines: move reference material into docs/"


def linked_from_readme() -> set[Path]:
    return {(README.parent / t.partition("#")[0]).resolve() for t in links(README) if not re.match(r"^\w[\w+.-]*:", t)}


def test_readme_links_every_method_doc():
    dags = sorted(p.stem for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    assert dags, "no DAG files found"
    missing = [d for d in dags if (ROOT / "docs" / "methods" / f"{d}.md").resolve() not in linked_from_readme()]
    assert not missing, f"README.md links no docs/methods/<dag_id>.md for {missing}"


def test_readme_links_every_doc():
    orphans = [rel(d) for d in DOCS[1:] if d.resolve() not in linked_from_readme()]
    assert not orphans, f"README.md links no {orphans}: a doc nobody reaches drifts unread"
