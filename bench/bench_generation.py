"""Generation-stage benchmark (results in bench/results/generation.json).

1. Throughput: generated tokens/s of the MIND generate stage against a bare AsyncOpenAI client
   sending the same prompts (same messages, sampling and seeds) at the same concurrency to the same
   endpoint, in one run. Goal: ratio >= 0.97.
2. Overhead: requests per CPU-second of the pipeline process against an endpoint that answers
   instantly (bench/instant_server.py, in its own process). Goal: >= 500 requests/s per core.

The endpoint is the embedded server unless SYNTH_LLM_BASE_URL is set. Input: the shipped MIND sample
(include/), or ../shared/corpora/math_text/prob140.jsonl with --corpus.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from synth_tasks.config import EndpointConfig
from synth_tasks.llm.endpoint import resolve_endpoint
from synth_tasks.methods import mind
from synth_tasks.storage import RunLayout, Store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _jobs(layout: RunLayout, cfg: mind.MindConfig, input_path: str) -> tuple[str, list[dict]]:
    prepared = mind.prepare(layout, cfg, input_path)
    assert len(prepared["shards"]) == 1, "benchmark wants one shard"
    url = prepared["shards"][0]
    return url, layout.store.read_parquet(url)


async def _bare(endpoint: EndpointConfig, cfg: mind.MindConfig, jobs: list[dict]) -> tuple[int, float]:
    client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key.get_secret_value(),
                                max_retries=0, timeout=cfg.request_timeout_s)
    sem = asyncio.Semaphore(cfg.concurrency)
    tokens = 0

    async def one(job):
        nonlocal tokens
        params = cfg.sampling(job["id"]).model_dump(exclude_none=True)
        async with sem:
            r = await client.chat.completions.create(
                model=endpoint.model, messages=mind.build_messages(job["style"], job["context"]), **params)
        tokens += r.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one(j) for j in jobs))
    elapsed = time.perf_counter() - start
    await client.close()
    return tokens, elapsed


def _pipeline(layout, cfg, url, endpoint) -> tuple[int, float, dict]:
    start = time.perf_counter()
    result = mind.generate(layout, cfg, 0, url, endpoint, 1)
    elapsed = time.perf_counter() - start
    usage = result["stats"]["usage"]
    assert usage["cache_hits"] == 0 and result["stats"]["failed"] == 0, result["stats"]
    return usage["completion_tokens"], elapsed, usage


def throughput(args, tmp: Path) -> dict:
    endpoint = resolve_endpoint()
    cfg = mind.MindConfig(max_chunks=args.chunks, styles=args.styles, max_tokens=args.max_tokens,
                          concurrency=args.concurrency, shard_size=10_000)
    input_path = args.input
    rounds = []
    for i in range(args.rounds):
        # A fresh staging root each round: the pipeline pays its cache writes and never hits.
        layout = RunLayout(Store(f"file://{tmp}/tp{i}"), "bench", "p")
        url, jobs = _jobs(layout, cfg, input_path)
        # Alternate which side goes first: this machine's speed drifts within a run.
        if i % 2 == 0:
            bare_tokens, bare_s = asyncio.run(_bare(endpoint, cfg, jobs))
            pipe_tokens, pipe_s, _ = _pipeline(layout, cfg, url, endpoint)
        else:
            pipe_tokens, pipe_s, _ = _pipeline(layout, cfg, url, endpoint)
            bare_tokens, bare_s = asyncio.run(_bare(endpoint, cfg, jobs))
        rounds.append({"requests": len(jobs), "bare_tokens": bare_tokens, "bare_s": round(bare_s, 2),
                       "bare_tok_s": round(bare_tokens / bare_s, 2), "pipeline_tokens": pipe_tokens,
                       "pipeline_s": round(pipe_s, 2), "pipeline_tok_s": round(pipe_tokens / pipe_s, 2)})
        print(rounds[-1], flush=True)
    bare = sum(r["bare_tokens"] for r in rounds) / sum(r["bare_s"] for r in rounds)
    pipe = sum(r["pipeline_tokens"] for r in rounds) / sum(r["pipeline_s"] for r in rounds)
    return {"endpoint_model": endpoint.model, "concurrency": args.concurrency, "max_tokens": args.max_tokens,
            "rounds": rounds, "bare_tok_s": round(bare, 2), "pipeline_tok_s": round(pipe, 2),
            "ratio": round(pipe / bare, 4),
            "median_round_ratio": round(statistics.median(r["pipeline_tok_s"] / r["bare_tok_s"] for r in rounds), 4),
            "goal": 0.97}


def overhead(args, tmp: Path, concurrency: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "instant_server.py"), str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        endpoint = EndpointConfig(base_url=f"http://127.0.0.1:{port}/v1", model="instant")
        cfg = mind.MindConfig(styles=list(mind.Style), concurrency=concurrency, shard_size=100_000,
                              chunk_tokens=50)
        layout = RunLayout(Store(f"file://{tmp}/oh{concurrency}"), "bench", "p")
        # Many small jobs from the sample: 50-token contexts x 7 styles.
        url, jobs = _jobs(layout, cfg, args.input)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = mind.generate(layout, cfg, 0, url, endpoint, 1)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        assert result["stats"]["kept"] == len(jobs), result["stats"]
        cpu_b0, wall_b0 = time.process_time(), time.perf_counter()
        asyncio.run(_bare(endpoint, cfg, jobs))
        cpu_b, wall_b = time.process_time() - cpu_b0, time.perf_counter() - wall_b0
    finally:
        server.terminate()
    return {"requests": len(jobs), "concurrency": concurrency,
            "pipeline_wall_s": round(wall, 3), "pipeline_cpu_s": round(cpu, 3),
            "pipeline_requests_per_s": round(len(jobs) / wall, 1),
            "pipeline_requests_per_cpu_s": round(len(jobs) / cpu, 1),
            "bare_requests_per_cpu_s": round(len(jobs) / cpu_b, 1),
            "bare_requests_per_s": round(len(jobs) / wall_b, 1),
            "goal_requests_per_cpu_s": 500}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--styles", nargs="+", default=["teacher_student", "two_students"])
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--overhead-concurrency", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--corpus", action="store_true", help="read ../shared/corpora/math_text/prob140.jsonl")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    args.input = f"file://{ROOT / 'include/sample_data/mind/prob140_sample.jsonl'}"
    if args.corpus:
        corpus = ROOT.parent / "shared" / "corpora" / "math_text" / "prob140.jsonl"
        if not corpus.exists():
            print(f"{corpus} is missing; run without --corpus to use the shipped sample", file=sys.stderr)
            return 2
        args.input = f"file://{corpus}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "platform": platform.platform()},
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        report["overhead"] = [overhead(args, Path(tmp), c) for c in args.overhead_concurrency]
        print(report["overhead"], flush=True)
        if not args.skip_throughput:
            report["throughput"] = throughput(args, Path(tmp))
    out = RESULTS / "generation.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
