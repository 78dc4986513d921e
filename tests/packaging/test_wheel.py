"""The project installs off its source tree: a wheel carries include/ (prompts, schemas, samples,
benchmark test sets, configs) as package data, and every method renders its prompts from it."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile

from tests.conftest import ROOT

CHECK = """
import pathlib, sys
import synth_tasks
from synth_tasks.method import load_method, method_names
from synth_tasks.prompts import include_dir, load_prompt, render
from synth_tasks.quality.decontamination import Decontaminator
assert pathlib.Path(synth_tasks.__file__).is_relative_to(sys.prefix), synth_tasks.__file__
assert include_dir().is_relative_to(sys.prefix), include_dir()
for dag_id in method_names():
    load_method(dag_id)
prompts = sorted((include_dir() / "prompts").rglob("*.txt"))
methods = {p.parent.name for p in prompts}
assert {"mind", "markdown_qa", "instruct"} <= methods, methods
for method in sorted(methods):
    path = next(p for p in prompts if p.parent.name == method)
    name = f"{method}/{path.stem}"
    text = load_prompt(name)
    import re
    values = {k: "x" for k in set(re.findall(r"\\{([a-z_]+)\\}", text))}
    assert render(text, **values)
    print("rendered", name)
assert (include_dir() / "sample_data" / "mind" / "prob140_sample.jsonl").is_file()
assert not Decontaminator(("gsm8k_test",))("Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four.").keep
print("OK")
"""


def test_a_wheel_installed_without_the_source_tree_has_its_data(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(ROOT)], check=True, cwd=tmp_path)
    [wheel] = dist.glob("synth_tasks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "synth_tasks/include/prompts/mind/teacher_student.txt" in names
    assert "synth_tasks/include/benchmarks/gsm8k_test.jsonl" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    # the dependencies (pydantic, pyarrow, ...) from the project's environment, not synth_tasks itself:
    # a path listed in a .pth file is added without running that folder's own .pth files
    (venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "deps.pth"
     ).write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([python, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK") and "rendered instruct/" in out.stdout
