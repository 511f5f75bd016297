"""Provides one chat turn on the owner thread: chunked prefill, decode, batching, stats, cancel.

Text turns are driven by mlx-lm's `generate_step` over a prompt cache this module prefills itself, in chunks,
so a cancel during a long prompt lands within one chunk instead of minutes later. Vision turns hand a token
iterator from `vision.py` to the same decode loop, so both routes batch, measure and stop identically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import mlx.core as mx
from mlx_lm.generate import generate_step, generation_stream, wired_limit
from mlx_lm.sample_utils import make_sampler

from .batching import TextBatcher
from .chat_template import render_prompt
from .control import CancelledByRequest, RequestControl
from .errors import RequestError
from .events import Event, FinishReason, Finished, PrefillProgress, Started, Stats, TextDelta, Usage
from .prompt_cache import ConversationCache
from .requests import ChatRequest

Emit = Callable[[Event], None]

STATS_INTERVAL_S = 0.25


@dataclass
class PrefillChunker:
    """Chooses prefill chunk sizes so one chunk takes about `target_s` on this device.

    Cancel can only land between chunks, so the chunk must stay short where prefill is slow (~9 tok/s on a CPU)
    and may be long where it is fast (a GPU). It learns the device's rate from each chunk and keeps it across
    requests.
    """

    size: int
    minimum: int = 16
    maximum: int = 2048
    target_s: float = 0.15

    @classmethod
    def for_device(cls) -> "PrefillChunker":
        on_gpu = mx.default_device().type == mx.gpu
        return cls(size=512 if on_gpu else 32)

    def learn(self, tokens: int, seconds: float) -> None:
        if seconds <= 0 or tokens <= 0:
            return
        wanted = tokens / seconds * self.target_s
        size = self.minimum
        while size * 2 <= wanted and size * 2 <= self.maximum:
            size *= 2
        self.size = size


@dataclass
class TurnClock:
    """Times one turn; all numbers come from `time.perf_counter` on the owner thread."""

    start: float
    prompt_tokens: int
    cached_tokens: int
    context_size: int
    first_token_at: float | None = None
    generated: int = 0

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
            peak_memory_bytes=int(mx.get_peak_memory()),
            context_used=self.prompt_tokens + self.generated,
            context_size=self.context_size,
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
    batch_interval_s: float = 0.03,
) -> tuple[FinishReason, str, list[int]]:
    """Consume (text segment, token) pairs until stop, length or cancel. Returns reason, text and tokens.

    The cancel flag is read after every token, so a cancel lands within one decode step.
    """
    request_id = request.request_id
    eos = set(eos_token_ids)
    parts: list[str] = []
    tokens: list[int] = []
    batcher = TextBatcher(lambda text, n: emit(TextDelta(request_id, text, n)), batch_interval_s)
    last_stats = time.perf_counter()
    reason: FinishReason = "length"
    iterator: Iterator[tuple[str, int]] = iter(steps)
    try:
        for text, token in iterator:
            now = time.perf_counter()
            if clock.first_token_at is None:
                clock.first_token_at = now
                on_first_token()
            if token in eos:
                reason = "stop"
                break
            tokens.append(token)
            clock.generated += 1
            if text:
                parts.append(text)
            batcher.add(text)
            if control.cancelled:
                reason = "cancelled"
                break
            if clock.generated >= request.sampling.max_tokens:
                reason = "length"
                break
            if now - last_stats >= STATS_INTERVAL_S:
                last_stats = now
                emit(clock.stats(request_id, now))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        batcher.flush()
    return reason, "".join(parts), tokens


def prefill(
    model,
    cache: list,
    tokens: list[int],
    *,
    chunker: PrefillChunker,
    control: RequestControl,
    emit: Emit,
    done_before: int,
    total: int,
) -> None:
    """Run `tokens` through the model into `cache`, one chunk at a time, checking cancel between chunks.

    After every chunk the cache state is evaluated, so a cancel leaves a cache that holds exactly the tokens
    processed so far.
    """
    done = 0
    while done < len(tokens):
        if control.cancelled:
            raise CancelledByRequest
        size = min(chunker.size, len(tokens) - done)
        chunk = mx.array(tokens[done : done + size])[None]
        started = time.perf_counter()
        with mx.stream(generation_stream):
            model(chunk, cache=cache)
            mx.eval([c.state for c in cache])
        chunker.learn(size, time.perf_counter() - started)
        done += size
        emit(PrefillProgress(control.request_id, done_before + done, total))
    mx.clear_cache()


def text_steps(model, tokenizer, last_token: int, cache: list, request: ChatRequest) -> Iterator[tuple[str, int]]:
    """(text segment, token) pairs from mlx-lm's `generate_step`, decoded with the streaming detokenizer."""
    sampling = request.sampling
    sampler = make_sampler(temp=sampling.temperature, top_p=sampling.top_p)
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    generator = generate_step(
        mx.array([last_token]),
        model,
        max_tokens=sampling.max_tokens,
        sampler=sampler,
        prompt_cache=cache,
    )
    try:
        for token, _ in generator:
            detokenizer.add_token(token)
            yield detokenizer.last_segment, token
        detokenizer.finalize()
    finally:
        generator.close()


def run_text_turn(loaded, request: ChatRequest, control: RequestControl, emit: Emit, cache: ConversationCache) -> Finished:
    """One text turn through mlx-lm, reusing the conversation's prompt cache."""
    request_id = request.request_id
    prompt = render_prompt(loaded.tokenizer, request)
    context_size = loaded.info.context_size
    if len(prompt) >= context_size:
        raise RequestError(
            f"The conversation is {len(prompt)} tokens; {loaded.info.name} reads at most {context_size}. "
            "Start a new conversation or shorten it."
        )
    if request.sampling.seed is not None:
        mx.random.seed(request.sampling.seed)
    reuse = cache.prepare(request.conversation_id, prompt)
    clock = TurnClock(time.perf_counter(), len(prompt), reuse.cached_tokens, context_size)
    emit(Started(request_id, len(prompt), reuse.cached_tokens, "text"))
    emit(PrefillProgress(request_id, reuse.cached_tokens, len(prompt)))
    todo = prompt[reuse.cached_tokens :]
    generated: list[int] = []
    try:
        with wired_limit(loaded.text_model, [generation_stream]):
            try:
                prefill(
                    loaded.text_model,
                    reuse.cache,
                    todo[:-1],
                    chunker=loaded.chunker,
                    control=control,
                    emit=emit,
                    done_before=reuse.cached_tokens,
                    total=len(prompt),
                )
            except CancelledByRequest:
                mx.synchronize(generation_stream)
                cache.record(prompt)
                return Finished(request_id, "cancelled", "", _usage(clock), stats=clock.stats(request_id))
            control.enter("generating")
            steps = text_steps(loaded.text_model, loaded.tokenizer, todo[-1], reuse.cache, request)
            reason, text, generated = decode(
                steps,
                request=request,
                control=control,
                clock=clock,
                emit=emit,
                eos_token_ids=loaded.tokenizer.eos_token_ids,
            )
            mx.synchronize(generation_stream)
    except BaseException:
        cache.invalidate()
        raise
    cache.record(prompt + generated)
    stats = clock.stats(request_id)
    emit(stats)
    return Finished(request_id, reason, text, _usage(clock), stats=stats)


def _usage(clock: TurnClock) -> Usage:
    return Usage(clock.prompt_tokens, clock.cached_tokens, clock.generated)
