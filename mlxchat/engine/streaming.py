"""Provides the MLX-free half of a chat turn: timing (`TurnClock`) and the decode loop (`decode`).

Every route ends here — local text, local vision and the remote HTTP backend — so batching, stats, cancel
between steps and stop/length behave the same whichever produced the text. Nothing here imports MLX: the
local routes hand in their peak-memory reader, and the remote backend (which must never import MLX) uses it
as it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple

from .batching import BATCH_INTERVAL_S, TextBatcher
from .control import RequestControl
from .events import Event, FinishReason, Silence, Stats, TextDelta, ThinkingDelta, ThinkingDone
from .requests import ChatRequest
from .thinking import ThinkingSplitter

Emit = Callable[[Event], None]

STATS_INTERVAL_S = 0.25

THOUGHT = -1
"""The token id of a step whose text is thinking the producer already told apart (a server's `reasoning` field)."""

QUIET = -2
"""The token id of a step that carries nothing: the producer has had nothing new for a batch interval (a server
gone silent), or only something that is not text (a keep-alive), so text waiting in the batch goes out now. Not a
token: counted nowhere."""

SILENCE_NOTICE_S = 1.0
"""After this long without text mid-answer, and then at most this often, `decode` says so with a `Silence`."""


class Decoded(NamedTuple):
    """What `decode` read: why it stopped, the answer, every token generated, and the thinking apart."""

    reason: FinishReason
    text: str
    tokens: list[int]
    reasoning: str = ""


def no_memory_reading() -> int:
    """Peak memory where this process holds no model (the remote backend): nothing to report."""
    return 0


@dataclass
class TurnClock:
    """Times one turn; all numbers come from `time.perf_counter` on the owner thread.

    `peak_memory` reads the process's peak model memory in bytes (the local routes pass MLX's reading).
    """

    start: float
    prompt_tokens: int
    cached_tokens: int
    context_size: int
    first_token_at: float | None = None
    generated: int = 0
    reasoning_tokens: int = 0
    peak_memory: Callable[[], int] = no_memory_reading

    def stats(self, request_id: str, now: float | None = None) -> Stats:
        now = now or time.perf_counter()
        prefilled = self.prompt_tokens - self.cached_tokens
        ttft = None if self.first_token_at is None else self.first_token_at - self.start
        prompt_tps = prefilled / ttft if ttft else 0.0
        decode_s = now - self.first_token_at if self.first_token_at else 0.0
        decode_tps = (self.generated - 1) / decode_s if decode_s > 0 and self.generated > 1 else 0.0
        return Stats(
            request_id=request_id,
            ttft_s=ttft,
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            prompt_tps=prompt_tps,
            generation_tokens=self.generated,
            decode_tps=decode_tps,
            peak_memory_bytes=int(self.peak_memory()),
            context_used=self.prompt_tokens + self.generated,
            context_size=self.context_size,
            reasoning_tokens=self.reasoning_tokens,
        )


def decode(
    steps: Iterable[tuple[str, int]],
    *,
    request: ChatRequest,
    control: RequestControl,
    clock: TurnClock,
    emit: Emit,
    eos_token_ids: Iterable[int],
    on_first_token: Callable[[], None] = lambda: None,
    batch_interval_s: float = BATCH_INTERVAL_S,
    stop_at_max_tokens: bool = True,
    thinking: ThinkingSplitter | None = None,
    thought_before: int = 0,
) -> Decoded:
    """Consume (text segment, token) pairs until stop, length or cancel.

    Thinking goes out as `ThinkingDelta` and the answer as `TextDelta`, each batched by time, never mixed: a
    step whose token is `THOUGHT` is thinking as it is; other text passes through `thinking` (the model's
    `ThinkingSplitter`) when the model has a thinking format. When thinking ends, `ThinkingDone` says how long it
    took. A cancel while thinking keeps what was thought in `Decoded.reasoning`. `thought_before` is the thinking
    tokens of a resumed answer from before it was stopped: `ThinkingDone` counts all of the answer's thinking.

    A producer that can go silent for long (a server) yields `("", QUIET)` while it waits, at least once per
    batch interval: text read just before a silence then reaches the consumer within the interval, not when the
    next piece comes. Once the answer has begun, a silence of `SILENCE_NOTICE_S` is told with a `Silence`, and
    again at most once per `SILENCE_NOTICE_S` while it lasts.

    The cancel flag is read after every step, so a cancel lands within one decode step. When `steps` simply
    runs out the reason is "length"; a caller whose steps end for other reasons (a server's finish reason)
    decides for itself. `stop_at_max_tokens=False` leaves counting to the producer (a server enforces
    `max_tokens` itself and must be read to the end of its stream).
    """
    request_id = request.request_id
    eos = set(eos_token_ids)
    parts: list[str] = []
    thought: list[str] = []
    tokens: list[int] = []
    batcher = TextBatcher(lambda text, n: emit(TextDelta(request_id, text, n)), batch_interval_s)
    thinking_batcher = TextBatcher(lambda text, n: emit(ThinkingDelta(request_id, text, n)), batch_interval_s)
    thinking_since: float | None = None  # when the first thinking token came
    thinking_done = False
    undecided = 0  # steps whose text the splitter holds: they belong to the thinking if it opens a marker

    def route(pieces: list[tuple[bool, str]], counted_as_thinking: bool, now: float) -> None:
        """Hand each piece to its batcher, in order, and announce the end of thinking once it happens."""
        nonlocal thinking_since
        if counted_as_thinking and thinking_since is None:
            thinking_since = now
        for is_thinking, piece in pieces:
            if is_thinking:
                thinking_since = now if thinking_since is None else thinking_since
                thought.append(piece)
                thinking_batcher.add(piece, 0)
            else:
                end_thinking(now)
                parts.append(piece)
                batcher.add(piece, 0)

    def end_thinking(now: float) -> None:
        nonlocal thinking_done
        if thinking_since is None or thinking_done:
            return
        thinking_done = True
        thinking_batcher.flush()
        cut = thinking is not None and thinking.cut_by_budget
        emit(ThinkingDone(request_id, thought_before + clock.reasoning_tokens, now - thinking_since, cut))

    last_stats = time.perf_counter()
    last_step_at: float | None = None  # when the last text (or thinking) step came
    silence_told_at: float | None = None  # when the current silence was last told, None while text flows
    reason: FinishReason = "length"
    iterator: Iterator[tuple[str, int]] = iter(steps)
    try:
        for text, token in iterator:
            if token == QUIET:
                thinking_batcher.flush_if_due()
                batcher.flush_if_due()
                if control.cancelled:
                    reason = "cancelled"
                    break
                now = time.perf_counter()
                if last_step_at is not None and now - last_step_at >= SILENCE_NOTICE_S:
                    if silence_told_at is None or now - silence_told_at >= SILENCE_NOTICE_S:
                        silence_told_at = now
                        emit(Silence(request_id, now - last_step_at))
                continue
            now = time.perf_counter()
            last_step_at, silence_told_at = now, None
            if clock.first_token_at is None:
                clock.first_token_at = now
                on_first_token()
            if token in eos:
                reason = "stop"
                break
            tokens.append(token)
            clock.generated += 1
            if token == THOUGHT:
                clock.reasoning_tokens += 1
                thinking_batcher.add("", 1)
                route([(True, text)] if text else [], True, now)
            elif thinking is not None:
                was_thinking = thinking.thinking
                pieces = thinking.feed(text)
                if not was_thinking and not thinking.thinking and not pieces and thinking.holding:
                    undecided += 1  # the start of what may be an opening marker: counted once it is decided
                else:
                    counted = was_thinking or thinking.thinking
                    steps_now, undecided = 1 + undecided, 0
                    if counted:
                        clock.reasoning_tokens += steps_now
                    # The text first: an answer's first step ends the thinking before its count can go out. A step
                    # counted as thinking that closes it ("…</think>\n\nHi") is counted first: ThinkingDone flushes
                    # the count with the thinking, none of it comes after (it turned the status back to thinking).
                    closes = counted and not thinking.thinking
                    if closes:
                        thinking_batcher.add("", steps_now)
                    route(pieces, counted, now)
                    if not closes:
                        (thinking_batcher if counted else batcher).add("", steps_now)
                    if not thinking.thinking and was_thinking:
                        end_thinking(now)
            else:
                if text:
                    parts.append(text)
                    end_thinking(now)
                batcher.add(text)
            if control.cancelled:
                reason = "cancelled"
                break
            if stop_at_max_tokens and clock.generated >= request.sampling.max_tokens:
                reason = "length"
                break
            if now - last_stats >= STATS_INTERVAL_S:
                last_stats = now
                emit(clock.stats(request_id, now))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        if thinking is not None:
            # Held text that never became a marker is answer text: routed before its tokens are counted, so an
            # empty TextDelta (the count) cannot go out ahead of held thinking and its ThinkingDone.
            route(thinking.finish(), False, time.perf_counter())
            batcher.add("", undecided)
        thinking_batcher.flush()
        batcher.flush()
    return Decoded(reason, "".join(parts), tokens, "".join(thought))
