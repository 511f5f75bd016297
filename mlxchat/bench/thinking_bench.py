"""Provides the thinking benchmark: follow-up TTFT over the turns of a reasoning model's conversation.

A reasoning model's later turns send the history without the earlier thinking (as its template expects), so the
prompt cache, which holds the thinking it generated, matches only up to the start of the previous answer. The
engine must then trim the cache and prefill the previous answer and the new question, never the whole
conversation: TTFT stays flat (target: turn 10 ÷ turn 1 ≤ 1.5, as for plain chats).

The model is a random llama with a Qwen3-style tokenizer and template (`random_thinking`), answering an exact
script through `Engine(script=...)`: real compute, and every turn thinks ~`thinking_words` words before answering.
Run it with `python -m mlxchat.bench.thinking_bench`.
"""

from __future__ import annotations

import json
import queue
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlxchat.engine import ChatRequest, Engine, Finished, LoadModel, Message, SamplingParams
from mlxchat.models.random_thinking import build_thinking_model
from mlxchat.models.random_weights import RandomLlamaSpec

from .engine_bench import TURN_QUESTIONS
from .stats import median

SYSTEM_PROMPT = "You are a helpful travel assistant. Think step by step, then answer briefly and accurately."
THOUGHT = "The user wants facts about cities in Europe; I should recall what I know, check it, and be brief. "
ANSWER = "Here is a short answer about {topic}: the capital is lovely in spring."
SPEC = RandomLlamaSpec(
    hidden_size=576, num_hidden_layers=8, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3
)
"""The demo model's layer shape (SmolLM2-135M) with fewer layers: per-token work, not attention over a tiny
model's context, dominates prefill, as in the models people run."""


@dataclass
class ThinkingBenchConfig:
    turns: int = 10
    thinking_words: int = 40
    rounds: int = 3
    """Conversations per side; each turn's TTFT is the median over them (a shared CPU swings from run to run)."""


def scripted_turn(question: str, thinking_words: int) -> str:
    words = (THOUGHT * (thinking_words // len(THOUGHT.split()) + 1)).split()[:thinking_words]
    return f"<think>\n{' '.join(words)}\n</think>\n\n" + ANSWER.format(topic=question.rstrip('?.').lower())


def ttft_by_turn(
    engine: Engine, events: queue.SimpleQueue, turns: int, use_cache: bool, name: str
) -> list[Finished]:
    """One conversation of `turns` turns; each later turn sends earlier answers without their thinking."""
    messages: tuple[Message, ...] = (Message("system", SYSTEM_PROMPT),)
    results = []
    for turn in range(turns):
        messages += (Message("user", TURN_QUESTIONS[turn % len(TURN_QUESTIONS)]),)
        conversation = f"{name}-thinking" if use_cache else f"{name}-fresh-{turn}"
        request = ChatRequest(messages, conversation, SamplingParams(temperature=0.0, max_tokens=400))
        assert engine.submit(request) is None
        finished = _wait(events, request.request_id)
        results.append(finished)
        messages += (Message("assistant", finished.text),)
    return results


def _wait(events: queue.SimpleQueue, request_id: str, timeout_s: float = 600) -> Finished:
    deadline = time.monotonic() + timeout_s
    while True:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(event, Finished) and event.request_id == request_id:
            if event.reason not in ("stop", "length"):
                raise RuntimeError(f"turn failed: {event.reason} {event.error}")
            return event


def run(config: ThinkingBenchConfig = ThinkingBenchConfig()) -> dict:
    events: queue.SimpleQueue = queue.SimpleQueue()
    with tempfile.TemporaryDirectory() as folder:
        model = build_thinking_model(Path(folder) / "qwen3-style", "qwen3", SPEC)
        script = lambda request: scripted_turn(request.messages[-1].content, config.thinking_words)  # noqa: E731
        engine = Engine(events.put, script=script).start()
        try:
            load = LoadModel(str(model))
            engine.submit(load)
            _wait(events, load.request_id)
            ttft_by_turn(engine, events, 2, use_cache=False, name="warm-up")  # first-call costs out of the numbers
            cached_rounds, uncached_rounds = [], []
            for round_number in range(config.rounds):  # the two sides alternate, so drift hits both alike
                cached_rounds.append(ttft_by_turn(engine, events, config.turns, True, f"round-{round_number}"))
                uncached_rounds.append(ttft_by_turn(engine, events, config.turns, False, f"round-{round_number}"))
        finally:
            engine.close(timeout_s=30)
    cached = [median([r[turn].stats.ttft_s for r in cached_rounds]) for turn in range(config.turns)]
    uncached = [median([r[turn].stats.ttft_s for r in uncached_rounds]) for turn in range(config.turns)]
    first, last = cached_rounds[0][0], cached_rounds[0][-1]
    return {
        "turns": config.turns,
        "rounds": config.rounds,
        "reasoning_tokens_per_turn": [f.usage.reasoning_tokens for f in cached_rounds[0]],
        "prompt_tokens": {"turn_1": first.usage.prompt_tokens, f"turn_{config.turns}": last.usage.prompt_tokens},
        "cached_tokens": {"turn_1": first.usage.cached_tokens, f"turn_{config.turns}": last.usage.cached_tokens},
        "ttft_cached_s": cached,
        "ttft_uncached_s": uncached,
        "ttft_turn10_over_turn1_cached": cached[-1] / cached[0],
        "ttft_turn10_over_turn1_uncached": uncached[-1] / uncached[0],
        "thinking_kept_out_of_answers": all("<think>" not in f.text and f.reasoning for f in cached_rounds[0]),
    }


def main() -> None:
    result = run()
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
