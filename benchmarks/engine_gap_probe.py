"""Where the engine's own decode falls behind raw mlx-lm, without the UI (issue 11, round 9).

Round 8 found the engine in its own process decoding at ~0.85 of raw mlx-lm on the 8B shape, inside the TUI, while
round 2's engine bench found the engine equal to raw with no UI. The TUI bench starts a fresh app, and so a fresh
engine process, for every round: its first answer is that process's first. This probe takes the gap apart, with no
UI, on the realistic forced answer, each round in this order:

- raw mlx-lm in this process (`ui_probes.RawMlxLm`, the TUI bench's raw side);
- a fresh `ProcessEngine` (as `mlxchat` runs it): load, then two answers, the child's first and its second;
- a fresh in-process `Engine` (owner thread): load, then two answers;
- with `--kinds` naming `process-cold`: a fresh `ProcessEngine` whose load skips the decode warm-up
  (`generation.warm_up_decode`), as before round 9.

Each answer's speed is the consumer's: tokens ÷ the time between the first and the last `TextDelta` as they arrive
here, over the whole answer and over its first and second halves (a cost paid once, such as kernels loaded at
their first use, lands in the first half; a cost per token in both). The raw side is split the same way.

    python benchmarks/engine_gap_probe.py --model /tmp/m/8b --tokens 800 --rounds 3 --kinds process,process-cold,thread
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import time
from pathlib import Path

from mlxchat.bench.engine_bench import DECODE_PROMPT, greedy
from mlxchat.bench.realistic import REALISTIC_ANSWER, ForcedAnswerEngine
from mlxchat.engine import ChatRequest, Finished, LoadModel, Message, TextDelta


def halves(stamps: list[tuple[float, int]]) -> dict[str, float]:
    """tok/s over all of (arrival time, tokens) after the first arrival, and over each half of the tokens."""
    if len(stamps) < 4:
        return {"all": float("nan"), "first_half": float("nan"), "second_half": float("nan")}
    counted, marks = 0, []
    for at, tokens in stamps:
        counted += tokens
        marks.append((at, counted))
    start_at, start_n = marks[0]
    end_at, end_n = marks[-1]
    mid = next(m for m in marks if m[1] >= (start_n + end_n) / 2)

    def rate(a, b):
        return (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else float("nan")

    return {"all": rate(marks[0], marks[-1]), "first_half": rate(marks[0], mid), "second_half": rate(mid, marks[-1])}


def raw_stamps(raw, max_tokens: int) -> list[tuple[float, int]]:
    from mlx_lm import stream_generate

    from mlxchat.engine.local.scripted import ForcedTokens

    return [
        (time.perf_counter(), 1)
        for _ in stream_generate(
            raw.model, raw.tokenizer, raw.prompt, max_tokens=max_tokens, logits_processors=[ForcedTokens(*raw.forced)]
        )
    ]


def make_engine(kind: str):
    """A started engine of `kind` ("process": as `mlxchat` runs it; "thread": in this process) forced to answer the
    realistic text, and the queue its events arrive on."""
    events: queue.SimpleQueue = queue.SimpleQueue()

    def sink(event) -> None:
        events.put((time.perf_counter(), event))

    if kind.startswith("process"):
        from mlxchat.engine.process import ProcessEngine

        factory = ForcedAnswerEngine(REALISTIC_ANSWER, warm_up=kind != "process-cold")
        return ProcessEngine(sink, factory).start(), events
    return ForcedAnswerEngine(REALISTIC_ANSWER)(sink).start(), events


def run(engine, events, request, timeout_s: float = 600) -> tuple[Finished, list[tuple[float, int]]]:
    busy = engine.submit(request)
    if busy is not None:
        raise RuntimeError(busy.message)
    stamps = []
    deadline = time.monotonic() + timeout_s
    while True:
        at, event = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if event.request_id != request.request_id:
            continue
        if isinstance(event, TextDelta):
            stamps.append((at, event.tokens))
        if isinstance(event, Finished):
            if event.reason == "error":
                raise RuntimeError(event.error)
            return event, stamps


def engine_side(kind: str, model: str, max_tokens: int, tag: str) -> dict:
    engine, events = make_engine(kind)
    try:
        started = time.perf_counter()
        finished, _ = run(engine, events, LoadModel(model))
        load_s = time.perf_counter() - started
        answers = []
        for n in (1, 2):
            request = ChatRequest(
                (Message("user", DECODE_PROMPT),), sampling=greedy(max_tokens), conversation_id=f"{tag}-{kind}-{n}"
            )
            finished, stamps = run(engine, events, request)
            answers.append({**halves(stamps), "engine_tps": finished.stats.decode_tps, "tokens": finished.stats.generation_tokens,
                            "ttft_s": finished.stats.ttft_s})
        return {"load_s": load_s, "answers": answers}
    finally:
        engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default="process,thread")
    parser.add_argument("--warm-up-rounds", type=int, default=1,
                        help="untimed rounds first: a fresh machine compiles each kernel once (MLX's disk cache)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import mlx.core as mx

    from mlxchat.bench.ui_probes import RawMlxLm

    kinds = args.kinds.split(",")
    raw = RawMlxLm(args.model, REALISTIC_ANSWER)
    raw_stamps(raw, 50)  # compile the raw side's kernels
    print(f"{mx.default_device()} · {args.model} · {args.tokens} tokens · {args.rounds} rounds", flush=True)
    for w in range(args.warm_up_rounds):
        for kind in kinds:
            engine_side(kind, args.model, 100, f"w{w}")
        print(f"warm-up round {w + 1} done", flush=True)
    rounds = []
    for r in range(args.rounds):
        row = {"raw": halves(raw_stamps(raw, args.tokens))}
        for kind in kinds:
            row[kind] = engine_side(kind, args.model, args.tokens, f"r{r}")
        rounds.append(row)
        if args.json:
            args.json.write_text(json.dumps({"rounds": rounds}, indent=1))
        line = [f"round {r + 1}: raw {row['raw']['all']:.1f} (halves {row['raw']['first_half']:.1f}/{row['raw']['second_half']:.1f})"]
        for kind in kinds:
            for n, answer in enumerate(row[kind]["answers"], 1):
                line.append(
                    f"{kind} #{n} {answer['all']:.1f} ({answer['all'] / row['raw']['all']:.3f} of raw; halves "
                    f"{answer['first_half']:.1f}/{answer['second_half']:.1f}; engine {answer['engine_tps']:.1f})"
                )
            line.append(f"{kind} load {row[kind]['load_s']:.2f}s")
        print("\n  ".join(line), flush=True)
    summary = {}
    for kind in kinds:
        for n in (1, 2):
            ratios = [row[kind]["answers"][n - 1]["all"] / row["raw"]["all"] for row in rounds]
            second = [row[kind]["answers"][n - 1]["second_half"] / row["raw"]["second_half"] for row in rounds]
            summary[f"{kind}_answer{n}_over_raw"] = statistics.median(ratios)
            summary[f"{kind}_answer{n}_second_half_over_raw"] = statistics.median(second)
    print("median ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
