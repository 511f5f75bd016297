"""Provides the remote benchmark: what `RemoteEngine` adds on top of calling the same server directly with httpx.

Both sides send the same body (same prompt, greedy, same `max_tokens`, usage requested) to the same server, in
alternating runs after one warm-up run of each, so both see the server's prompt cache in the same state and any
drift in the server's speed falls on both alike. Measured each way:

- TTFT: request sent → first answer text. Direct: when httpx yields the first content chunk. Engine: its own
  `Stats.ttft_s` (taken on the owner thread), and as a consumer of its events sees it (submit → first
  `TextDelta` arriving in the sink, which adds the thread hand-off and the text batcher).
- decode tok/s: (completion tokens − 1) / (finish chunk − first text), with the server's token count; the same
  definition the engine uses.
- total: request sent → the end of the stream (direct), submit → `Finished` (engine).
- client CPU: this process's CPU time per request (`time.process_time`, all threads). On a machine the client
  shares with the server, CPU the client burns is taken from the server, and unlike wall times it does not
  swing with the machine's load, so it is the steadiest measure of the overhead.

`python -m mlxchat.bench.remote_bench --endpoint URL [--model M] [--runs N] [--json PATH]` prints a table.
Nothing here imports MLX.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

from mlxchat.engine import ChatRequest, Finished, LoadModel, Message, SamplingParams, TextDelta
from mlxchat.engine.remote import RemoteEngine

from .stats import median

BENCH_PROMPT = "Write a long story about a lighthouse keeper and a storm."


def direct_run(client: httpx.Client, url: str, body: dict, headers: dict[str, str]) -> dict:
    """One streamed request with plain httpx and the simplest SSE reading; the baseline."""
    first_text = finish_at = None
    completion_tokens = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                completion_tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") and first_text is None:
                    first_text = time.perf_counter()
                if choice.get("finish_reason"):
                    finish_at = time.perf_counter()
    ended = time.perf_counter()
    decode_s = (finish_at or ended) - first_text
    return {
        "ttft_s": first_text - started,
        "decode_tps": (completion_tokens - 1) / decode_s if decode_s > 0 else 0.0,
        "total_s": ended - started,
        "cpu_s": time.process_time() - cpu_started,
        "tokens": completion_tokens,
    }


def engine_run(engine: RemoteEngine, events: queue.SimpleQueue, request: ChatRequest, timeout_s: float) -> dict:
    """One request through the remote engine, timed by the engine and by its consumer."""
    first_seen = None
    cpu_started = time.process_time()
    started = time.perf_counter()
    if engine.submit(request) is not None:
        raise RuntimeError("the engine refused the request (busy)")
    while True:
        event = events.get(timeout=timeout_s)
        if event.request_id != request.request_id:
            continue
        if isinstance(event, TextDelta) and event.text and first_seen is None:
            first_seen = time.perf_counter()
        if isinstance(event, Finished):
            ended = time.perf_counter()
            break
    if event.reason not in ("stop", "length"):
        raise RuntimeError(f"the engine's request ended with {event.reason}: {event.error}")
    stats = event.stats
    return {
        "ttft_s": stats.ttft_s,
        "ttft_seen_s": first_seen - started,
        "decode_tps": stats.decode_tps,
        "total_s": ended - started,
        "cpu_s": time.process_time() - cpu_started,
        "tokens": stats.generation_tokens,
    }


def run_remote_bench(
    endpoint: str,
    model: str | None = None,
    *,
    runs: int = 5,
    max_tokens: int = 48,
    prompt: str = BENCH_PROMPT,
    api_key_env: str | None = None,
    timeout_s: float = 300.0,
    progress: Callable[[str], None] = lambda line: None,
) -> dict:
    """Benchmark `RemoteEngine` against direct httpx calls on `endpoint`; returns every run and the medians."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    engine = RemoteEngine(events.put, endpoint, api_key_env, name="mlxchat-remote-bench").start()
    try:
        load = LoadModel(model)
        engine.submit(load)
        finished = events.get(timeout=timeout_s)
        while not (isinstance(finished, Finished) and finished.request_id == load.request_id):
            finished = events.get(timeout=timeout_s)
        if finished.reason != "stop":
            raise RuntimeError(finished.error)
        model_id = engine.model.path
        sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)  # the same body as `direct`

        def request() -> ChatRequest:
            return ChatRequest((Message("user", prompt),), sampling=sampling)

        body = {
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": max_tokens,
            **({"model": model_id} if model_id else {}),
        }
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = engine.endpoint.url("/chat/completions")
        timeout = httpx.Timeout(connect=10.0, read=timeout_s, write=30.0, pool=10.0)
        direct, through_engine = [], []
        with httpx.Client(timeout=timeout) as client:
            progress("warm-up (fills the server's prompt cache) …")
            direct_run(client, url, body, headers)
            engine_run(engine, events, request(), timeout_s)
            for index in range(runs):  # alternate which goes first, so neither always follows the other
                progress(f"run {index + 1}/{runs} …")
                if index % 2:
                    through_engine.append(engine_run(engine, events, request(), timeout_s))
                direct.append(direct_run(client, url, body, headers))
                if not index % 2:
                    through_engine.append(engine_run(engine, events, request(), timeout_s))
    finally:
        engine.close(timeout_s=30)

    def middle(rows: list[dict], key: str) -> float:
        return median([row[key] for row in rows])

    numbers = {
        "direct_ttft_s": middle(direct, "ttft_s"),
        "engine_ttft_s": middle(through_engine, "ttft_s"),
        "engine_ttft_seen_s": middle(through_engine, "ttft_seen_s"),
        "direct_decode_tps": middle(direct, "decode_tps"),
        "engine_decode_tps": middle(through_engine, "decode_tps"),
        "direct_total_s": middle(direct, "total_s"),
        "engine_total_s": middle(through_engine, "total_s"),
        "direct_cpu_s": middle(direct, "cpu_s"),
        "engine_cpu_s": middle(through_engine, "cpu_s"),
    }
    numbers["ttft_overhead_s"] = numbers["engine_ttft_seen_s"] - numbers["direct_ttft_s"]
    numbers["total_overhead_s"] = numbers["engine_total_s"] - numbers["direct_total_s"]
    numbers["decode_engine_over_direct"] = numbers["engine_decode_tps"] / numbers["direct_decode_tps"]
    numbers["cpu_overhead_per_token_s"] = (numbers["engine_cpu_s"] - numbers["direct_cpu_s"]) / max_tokens
    return {
        "endpoint": engine.endpoint.display,
        "model": model_id or "server default",
        "runs": runs,
        "max_tokens": max_tokens,
        "tokens": [row["tokens"] for row in direct + through_engine],
        "direct": direct,
        "engine": through_engine,
        "numbers": numbers,
    }


def format_remote_table(result: dict) -> str:
    n = result["numbers"]
    tokens = sorted(set(result["tokens"]))
    lines = [
        f"remote benchmark · {result['endpoint']} · model {result['model']}",
        f"{result['runs']} runs each way (medians), greedy, {'/'.join(map(str, tokens))} tokens per answer",
        "",
        f"{'measure':<34} {'direct httpx':>14} {'RemoteEngine':>14} {'overhead':>12}",
        "-" * 78,
    ]

    def row(name: str, direct: str, engine: str, overhead: str) -> None:
        lines.append(f"{name:<34} {direct:>14} {engine:>14} {overhead:>12}")

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    own_ttft_overhead = n["engine_ttft_s"] - n["direct_ttft_s"]
    row("TTFT (engine's own clock)", ms(n["direct_ttft_s"]), ms(n["engine_ttft_s"]), ms(own_ttft_overhead))
    row("TTFT (as the consumer sees it)", ms(n["direct_ttft_s"]), ms(n["engine_ttft_seen_s"]), ms(n["ttft_overhead_s"]))
    ratio = f"×{n['decode_engine_over_direct']:.3f}"
    row("decode", f"{n['direct_decode_tps']:.1f} tok/s", f"{n['engine_decode_tps']:.1f} tok/s", ratio)
    row("request → end of stream", ms(n["direct_total_s"]), ms(n["engine_total_s"]), ms(n["total_overhead_s"]))
    cpu_overhead = n["engine_cpu_s"] - n["direct_cpu_s"]
    row("client CPU per request", ms(n["direct_cpu_s"]), ms(n["engine_cpu_s"]), ms(cpu_overhead))
    per_token_us = n["cpu_overhead_per_token_s"] * 1e6
    lines.append(f"{'client CPU overhead per token':<34} {'':>14} {'':>14} {per_token_us:>9.0f} µs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlxchat.bench.remote_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True, help="the server, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--model", default=None, help="a model the server lists (default: its first)")
    parser.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--json", type=Path, default=None, help="also write every run to this JSON file")
    args = parser.parse_args(argv)
    try:
        result = run_remote_bench(
            args.endpoint,
            args.model,
            runs=args.runs,
            max_tokens=args.max_tokens,
            api_key_env=args.api_key_env,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except Exception as exc:  # noqa: BLE001 (one readable line, not a traceback)
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(format_remote_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
