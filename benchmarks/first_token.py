"""Time to a follow-up's first token over a cached history: the engine's first token from the forward pass over
the new tokens (`generation.text_steps` with the tail) against the way before, which mlx-lm's `generate_step` does
on its own: the new tokens but the last prefilled, then the last one alone (issue 15, the resumed follow-up). The
engine shares the pass on CUDA only (`generation.first_token_rows`); this runs both ways on any device.

    python benchmarks/first_token.py --model PATH [--history 2000] [--new 55] [--rounds 15] [--json OUT]

One process, one model, one cache of `--history` tokens; each round times both ways on it (their order alternates)
and trims the cache back to the history after each. Both are synchronized to the first token (`.item()`). Prints
the medians and their ratio, and checks that both chose the same first token.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--new", type=int, default=55)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step, generation_stream
    from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache

    from mlxchat.engine.control import RequestControl
    from mlxchat.engine.local.generation import FIRST_TOKEN_ROWS, PrefillChunker, first_token_tail, prefill, text_steps
    from mlxchat.engine.requests import ChatRequest, Message, SamplingParams

    model, tokenizer = load(args.model)
    chunk = 512 if mx.default_device().type == mx.gpu else 64
    control = RequestControl("bench", "chat", "prefill")
    history = [(13 * index + 5) % 1000 + 10 for index in range(args.history)]
    new = [(17 * index + 3) % 1000 + 10 for index in range(args.new)]
    cache = make_prompt_cache(model)
    prefill(model, cache, history, chunker=PrefillChunker(size=chunk), control=control, emit=lambda _e: None,
            done_before=0, total=len(history))
    request = ChatRequest((Message("user", "x"),), sampling=SamplingParams(temperature=0.0, max_tokens=4))

    def run_prefill(tokens: list[int]) -> None:
        prefill(model, cache, tokens, chunker=PrefillChunker(size=chunk), control=control, emit=lambda _e: None,
                done_before=0, total=0)

    def before() -> int:
        """The new tokens but the last prefilled, then `generate_step` from the last (two forward passes)."""
        run_prefill(new[:-1])
        steps = generate_step(mx.array(new[-1:]), model, max_tokens=4, prompt_cache=cache)
        token, _ = next(steps)
        steps.close()
        return int(token)

    def after() -> int:
        """The engine on CUDA: the tail's forward pass gives the first token (on any device here, to measure it)."""
        tail = first_token_tail(new, chunk, FIRST_TOKEN_ROWS)
        run_prefill(new[:-tail])
        steps = text_steps(model, tokenizer, new[-tail:], cache, request)
        _, token = next(steps)
        steps.close()
        return int(token)

    def timed(way) -> tuple[float, int]:
        mx.synchronize(generation_stream)
        started = time.perf_counter()
        token = way()
        seconds = time.perf_counter() - started
        mx.synchronize(generation_stream)
        trim_prompt_cache(cache, cache[0].offset - len(history))
        return seconds, token

    for way in (before, after):  # untimed: the shapes' first use (kernels, graphs) is not what is compared
        timed(way)
    times: dict[str, list[float]] = {"before": [], "after": []}
    tokens: dict[str, set[int]] = {"before": set(), "after": set()}
    for index in range(args.rounds):
        order = (before, after) if index % 2 == 0 else (after, before)
        for way in order:
            seconds, token = timed(way)
            times[way.__name__].append(seconds)
            tokens[way.__name__].add(token)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "device": str(mx.default_device()),
        "machine": platform.node(),
        "load": os.getloadavg()[0],
        "history": args.history,
        "new": args.new,
        "rounds": args.rounds,
        "before_s": medians["before"],
        "after_s": medians["after"],
        "after_over_before": medians["after"] / medians["before"],
        "same_first_token": tokens["before"] == tokens["after"],
        "times": times,
    }
    print(
        f"{args.model}: {args.history} cached, {args.new} new, {args.rounds} rounds, {result['device']}, "
        f"load {result['load']:.2f}\n"
        f"  before (prefill n-1, then generate_step's step): {medians['before'] * 1000:.1f} ms\n"
        f"  after  (the tail's forward gives the token):     {medians['after'] * 1000:.1f} ms\n"
        f"  after ÷ before {result['after_over_before']:.3f}; same first token: {result['same_first_token']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
