"""Prompts live as files under include/prompts/<method>/<name>.txt (package data of synth_tasks)
and are loaded by name.

Placeholders are written {name} and replaced literally (no str.format), because source texts are
full of braces and dollar signs (LaTeX, code)."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def include_dir() -> Path:
    """The shipped data: prompts, schemas, sample inputs, benchmark test sets, configs. Package data
    of synth_tasks (``include/`` at the project root links to it), so a wheel install has it too."""
    return Path(os.environ.get("SYNTH_INCLUDE_DIR") or str(files("synth_tasks") / "include"))


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    path = include_dir() / "prompts" / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no prompt {name!r} at {path}")
    return path.read_text(encoding="utf-8").strip()


def render(template: str, **values: str) -> str:
    """Fill every {placeholder}; all must be given, and every value must be used."""
    wanted = set(_PLACEHOLDER.findall(template))
    if wanted != set(values):
        raise KeyError(f"prompt placeholders {sorted(wanted)} but values for {sorted(values)}")
    # One pass, so a value that itself contains "{name}" is not substituted again.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
