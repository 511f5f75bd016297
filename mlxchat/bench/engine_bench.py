"""Provides the engine benchmark: the engine against raw `mlx_lm.stream_generate`, in one process, one model.

Measured side by side:
- decode tok/s through the engine ÷ raw mlx-lm (same prompt, greedy, same token count; runs alternate and the
  median of per-round ratios is reported);
- TTFT of turns 1, 5 and 10 of one conversation, with the prompt cache and without it;
- cancel → Finished latency (p50, p99) during decode and during a long prefill, against one decode step and
  one prefill chunk.

Both sides use the same definition of decode speed: (tokens − 1) / (time of last token − time of first token).
Raw mlx-lm runs on this (main) thread while the engine is idle, never beside it.
"""

from __future__ import annotations

import queue
from pathlib import Path
import random
import time
from dataclasses import dataclass, field
from typing import Any

from mlxchat.engine import (
    ChatRequest,
    Engine,
    Finished,
    LoadModel,
    Message,
    PrefillProgress,
    SamplingParams,
    TextDelta,
)

from .stats import median, percentile

DECODE_PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
TURN_QUESTIONS = [
    "What is the capital of France?",
    "And of Italy?",
    "Which of the two is larger?",
    "Name a famous museum in each.",
    "What river runs through each city?",
    "Suggest a three-day itinerary for the first.",
    "What food should I try there?",
    "How do I travel between the two cities?",
    "What is the best season to visit?",
    "Summarise our conversation in one line.",
]


@dataclass
class EngineBenchConfig:
    model: str | None = None
    decode_tokens: int = 128
    decode_runs: int = 5
    turns: int = 10
    turn_tokens: int = 24
    cancel_trials: int = 10
    prefill_tokens: int = 6000


@dataclass
class EngineBenchResult:
    model: str
    device: str
    numbers: dict[str, Any] = field(default_factory=dict)


class EngineDriver:
    """Runs requests on an engine and waits for their events, timing what the consumer sees."""

    def __init__(self) -> None:
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.engine = Engine(self._sink).start()
        self.arrivals: list[tuple[float, Any]] = []

    def _sink(self, event) -> None:
        self.events.put((time.perf_counter(), event))

    def run(self, request, until=Finished, timeout_s: float = 600) -> tuple[float, Any, list]:
        busy = self.engine.submit(request)
        if busy is not None:
            raise RuntimeError(busy.message)
        return self.wait(request.request_id, until, timeout_s)

    def wait(self, request_id: str, until=Finished, timeout_s: float = 600, where=lambda e: True):
        seen = []
        deadline = time.monotonic() + timeout_s
        while True:
            at, event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.request_id != request_id:
                continue
            seen.append((at, event))
            if isinstance(event, until) and where(event):
                return at, event, seen
            if isinstance(event, Finished):
                raise RuntimeError(f"{request_id} finished ({event.reason}) before the awaited {until.__name__}")


class RawMlxLm:
    """Plain mlx-lm on this (main) thread, with its own copy of the model. It only runs while the engine is idle,
    never beside it."""

    def __init__(self, model_path: str, prompt_tokens: list[int]) -> None:
        from mlx_lm import load

        from mlxchat.engine.local.loader import fit_to_device

        self.model, self.tokenizer = load(model_path)
        fit_to_device(self.model)
        self.prompt_tokens = prompt_tokens

    def decode_tps(self, max_tokens: int) -> float:
        from mlx_lm import stream_generate

        times = []
        for _ in stream_generate(self.model, self.tokenizer, self.prompt_tokens, max_tokens=max_tokens):
            times.append(time.perf_counter())
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def release(self) -> None:
        import gc

        import mlx.core as mx

        del self.model, self.tokenizer
        gc.collect()
        mx.clear_cache()


@dataclass
class DecodeComparison:
    raw_tps: list[float] = field(default_factory=list)
    engine_tps: list[float] = field(default_factory=list)
    consumer_tps: list[float] = field(default_factory=list)
    tokens: int = 0
    peak_memory: int = 0

    def ratio(self, side: list[float]) -> float:
        """Median of per-round ratios: each round runs raw and engine back to back, so a machine that speeds up
        or slows down between rounds (shared GPUs do) affects both sides of a ratio alike."""
        return median([s / r for s, r in zip(side, self.raw_tps) if r])


def compare_decode(driver: EngineDriver, raw: RawMlxLm, max_tokens: int, rounds: int) -> DecodeComparison:
    """Alternate raw mlx-lm and engine runs of the same greedy prompt; one untimed round first."""
    result = DecodeComparison()
    for round_index in range(rounds + 1):
        raw_tps = raw.decode_tps(max_tokens)
        request = ChatRequest(
            (Message("user", DECODE_PROMPT),), sampling=greedy(max_tokens), conversation_id=f"decode-{round_index}"
        )
        _, finished, seen = driver.run(request)
        stats = finished.stats
        deltas = [(at, e) for at, e in seen if isinstance(e, TextDelta)]
        consumer = 0.0
        if len(deltas) > 1 and deltas[-1][0] > deltas[0][0]:
            consumer = (stats.generation_tokens - deltas[0][1].tokens) / (deltas[-1][0] - deltas[0][0])
        if round_index == 0:
            continue  # warm-up
        result.raw_tps.append(raw_tps)
        result.engine_tps.append(stats.decode_tps)
        result.consumer_tps.append(consumer)
        result.tokens = stats.generation_tokens
        result.peak_memory = max(result.peak_memory, stats.peak_memory_bytes)
    return result


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens)


def ttft_by_turn(driver: EngineDriver, turns: int, turn_tokens: int, use_cache: bool) -> list[float]:
    messages: tuple[Message, ...] = ()
    ttfts = []
    for turn in range(turns):
        messages += (Message("user", TURN_QUESTIONS[turn % len(TURN_QUESTIONS)]),)
        conversation = "turns" if use_cache else f"fresh-{turn}-{random.random()}"
        request = ChatRequest(messages, sampling=greedy(turn_tokens), conversation_id=conversation)
        _, finished, _ = driver.run(request)
        ttfts.append(finished.stats.ttft_s)
        messages += (Message("assistant", finished.text),)
    return ttfts


def cancel_during_decode(driver: EngineDriver, trials: int) -> list[float]:
    latencies = []
    for trial in range(trials):
        request = ChatRequest((Message("user", DECODE_PROMPT),), sampling=greedy(100_000), conversation_id=f"c{trial}")
        driver.run(request, until=TextDelta)
        time.sleep(random.uniform(0.0, 0.2))
        asked = time.perf_counter()
        driver.engine.cancel(request.request_id)
        finished_at, finished, _ = driver.wait(request.request_id)
        latencies.append(finished_at - asked)
    return latencies


def long_text(model_path: str, tokens: int) -> str:
    """A prompt of about `tokens` tokens for this model's tokenizer."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    tokenizer = load_tokenizer(Path(model_path))
    sentence = "The quick brown fox jumps over the lazy dog. "
    per_sentence = max(1, len(tokenizer.encode(sentence * 10, add_special_tokens=False)) / 10)
    return sentence * int(tokens / per_sentence)


def cancel_during_prefill(driver: EngineDriver, trials: int, text: str) -> tuple[list[float], list[float]]:
    """Cancel latencies, each beside the duration of the prefill chunk that was running when cancel was asked
    (from the PrefillProgress timestamps around it): the target is to stop within that one chunk."""
    latencies, chunks = [], []
    for trial in range(trials):
        request = ChatRequest((Message("user", f"Trial {trial}. {text}"),), sampling=greedy(8), conversation_id=f"p{trial}")
        driver.run(request, until=PrefillProgress, timeout_s=600)
        first_at, first, _ = driver.wait(request.request_id, PrefillProgress, where=lambda e: e.done > 0)
        second_at, _, _ = driver.wait(request.request_id, PrefillProgress, where=lambda e: e.done > first.done)
        time.sleep(random.uniform(0.0, second_at - first_at))
        asked = time.perf_counter()
        driver.engine.cancel(request.request_id)
        finished_at, finished, seen = driver.wait(request.request_id)
        progress_at = [second_at] + [at for at, e in seen if isinstance(e, PrefillProgress)]
        before = max(at for at in progress_at if at <= asked)
        after = min([at for at in progress_at if at > asked] + [finished_at])
        latencies.append(finished_at - asked)
        chunks.append(after - before)
    return latencies, chunks


def run(config: EngineBenchConfig, progress=print) -> EngineBenchResult:
    driver = EngineDriver()
    load = LoadModel(config.model)
    progress(f"loading {config.model or 'demo model'} …")
    _, loaded, _ = driver.run(load)
    if loaded.reason != "stop":
        raise RuntimeError(loaded.error)
    info = driver.engine.model
    result = EngineBenchResult(model=info.name, device="")

    # Raw mlx-lm must not run beside the owner thread: measure it while the engine is idle, on this thread.
    from mlx_lm import load as _  # noqa: F401  (import cost outside the timed region)

    progress("raw mlx-lm and engine decode, alternating …")
    raw = RawMlxLm(info.path, prompt_tokens_for(info.path))
    decode = compare_decode(driver, raw, config.decode_tokens, config.decode_runs)
    raw.release()
    engine_tps = median(decode.engine_tps)
    progress("warm-up …")
    # Compile and allocate for prompt shapes once (MLX's CUDA build compiles kernels on first use), untimed.
    ttft_by_turn(driver, 2, 4, use_cache=False)
    progress("TTFT by turn …")
    cached = ttft_by_turn(driver, config.turns, config.turn_tokens, use_cache=True)
    uncached = ttft_by_turn(driver, config.turns, config.turn_tokens, use_cache=False)
    progress("cancel during decode …")
    decode_cancel = cancel_during_decode(driver, config.cancel_trials)
    progress("cancel during prefill …")
    prefill_cancel, chunk_s = cancel_during_prefill(
        driver, max(3, config.cancel_trials // 2), long_text(info.path, min(config.prefill_tokens, info.context_size * 3 // 4))
    )
    import mlx.core as mx

    result.device = str(mx.default_device())
    step_s = 1 / engine_tps if engine_tps else float("nan")
    pick = [0, min(4, config.turns - 1), config.turns - 1]
    result.numbers = {
        "decode_tokens": decode.tokens,
        "decode_rounds": len(decode.raw_tps),
        "raw_decode_tps": median(decode.raw_tps),
        "engine_decode_tps": engine_tps,
        "consumer_decode_tps": median(decode.consumer_tps),
        "engine_over_raw": decode.ratio(decode.engine_tps),
        "consumer_over_raw": decode.ratio(decode.consumer_tps),
        "raw_decode_tps_runs": decode.raw_tps,
        "engine_decode_tps_runs": decode.engine_tps,
        "ttft_cached_s": {f"turn_{i + 1}": cached[i] for i in pick},
        "ttft_uncached_s": {f"turn_{i + 1}": uncached[i] for i in pick},
        "ttft_turn10_over_turn1_cached": cached[-1] / cached[0],
        "ttft_turn10_over_turn1_uncached": uncached[-1] / uncached[0],
        "decode_step_s": step_s,
        "cancel_decode_p50_s": percentile(decode_cancel, 50),
        "cancel_decode_p99_s": percentile(decode_cancel, 99),
        "cancel_decode_target_s": step_s + 0.010,
        "prefill_chunk_s": median(chunk_s),
        "cancel_prefill_within_chunk": sum(lat <= c for lat, c in zip(prefill_cancel, chunk_s)) / len(chunk_s),
        "cancel_prefill_p50_s": percentile(prefill_cancel, 50),
        "cancel_prefill_p99_s": percentile(prefill_cancel, 99),
        "peak_memory_bytes": decode.peak_memory,
        "model_size_bytes": info.size_bytes,
    }
    driver.engine.close()
    return result


def prompt_tokens_for(model_path: str) -> list[int]:
    """The same tokens the engine will render for DECODE_PROMPT (its chat template, no extra specials)."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    from mlxchat.engine.local.chat_template import render_prompt

    tokenizer = load_tokenizer(Path(model_path))
    return render_prompt(tokenizer, ChatRequest((Message("user", DECODE_PROMPT),)))
