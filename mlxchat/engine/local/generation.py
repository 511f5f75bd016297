"""Provides one chat turn on the owner thread: chunked prefill, decode, batching, stats, cancel.

Text turns are driven by mlx-lm's `generate_step` over a prompt cache this module prefills itself, in chunks,
so a cancel during a long prompt lands within one chunk instead of minutes later. Vision turns hand a token
iterator from `vision.py` to the same decode loop (`streaming.decode`, shared with the remote backend), so every
route batches, measures and stops identically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterator

import mlx.core as mx
from mlx_lm.generate import generate_step, generation_stream, wired_limit
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from .context_fit import fit_prompt
from .cuda_attention import running_on_cuda
from ..control import CancelledByRequest, RequestControl
from ..events import ContextWindow, Finished, PrefillProgress, Started, Usage
from .prompt_cache import ConversationCache, quantize_cache
from ..requests import ChatRequest
from .scripted import Script, forced_processor
from .chat_template import generation_prompt
from .thinking import thinking_setup
from ..streaming import STATS_INTERVAL_S, Emit, TurnClock, decode

__all__ = [
    "STATS_INTERVAL_S",
    "Emit",
    "PrefillChunker",
    "TurnClock",
    "decode",
    "peak_memory",
    "prefill",
    "run_text_turn",
    "text_steps",
]


def peak_memory() -> int:
    """MLX's peak memory reading, in bytes: what `TurnClock` reports for a local turn."""
    return int(mx.get_peak_memory())


@dataclass
class PrefillChunker:
    """Chooses prefill chunk sizes so one chunk takes about `target_s` on this device.

    Cancel can only land between chunks, so the chunk must stay short where prefill is slow (~9 tok/s on a CPU)
    and may be long where it is fast (a GPU). It learns the device's rate from each chunk and keeps it across
    requests, except from the first chunk of each size: MLX's CUDA build compiles kernels for a shape on first
    use, which made a first 512-token chunk look slow, shrank the chunks to 8 tokens, and then compiled every
    size on the way back up (a fresh H200's first 2,400-token prompt took 123 s). So a size is judged on its
    second chunk; where the device really is slow, one extra chunk runs at the old size.
    """

    size: int
    minimum: int = 8
    maximum: int = 2048
    target_s: float = 0.15
    tried: set[int] = field(default_factory=set)
    """Chunk sizes that have run once (their kernels exist)."""

    @classmethod
    def for_device(cls) -> "PrefillChunker":
        on_gpu = mx.default_device().type == mx.gpu
        return cls(size=512 if on_gpu else 32)

    def learn(self, tokens: int, seconds: float) -> None:
        if seconds <= 0 or tokens <= 0:
            return
        if tokens not in self.tried:  # the first chunk of a size may include compiling its kernels
            self.tried.add(tokens)
            return
        wanted = tokens / seconds * self.target_s
        size = self.minimum
        while size * 2 <= wanted and size * 2 <= self.maximum:
            size *= 2
        self.size = size


CLEAR_AFTER_TOKENS = 512
"""A prefill this long gives MLX's buffer cache back to the device when it ends (its temporaries are large). A
follow-up's few new tokens keep it: on the H200 giving it back made the first answer token ~5 ms later (the
turn's buffers were then allocated from the device again), a fifth of a resumed turn (resume_probe)."""


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
    kv_bits: int | None = None,
) -> None:
    """Run `tokens` through the model into `cache`, one chunk at a time, checking cancel between chunks.

    After every chunk the cache state is evaluated, so a cancel leaves a cache that holds exactly the tokens
    processed so far. With `kv_bits`, each chunk's keys and values are quantized as soon as they are written.
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
            quantize_cache(cache, kv_bits)
            mx.eval([c.state for c in cache])
        chunker.learn(size, time.perf_counter() - started)
        done += size
        emit(PrefillProgress(control.request_id, done_before + done, total))
    if done >= CLEAR_AFTER_TOKENS:
        mx.clear_cache()


WARM_UP_TOKENS = 32
"""The throwaway prefill `warm_up` runs (at most: it stays inside the buffer's free room)."""


def warm_up(model, cache: list) -> bool:
    """On CUDA, run a throwaway prefill and one decode step on a cache just read from disk, then trim them off,
    so the follow-up does not pay MLX's first-use work at this cache: the kernels, CUDA graphs and memory a fresh
    process has not used yet. (The per-shape cuDNN graphs are avoided outright: `cuda_attention` for the
    follow-up's prefill, `with_room`'s buffer for its decoding.) Runs during a `PrepareConversation` hint, while
    the person types. The cache holds exactly what it held: the offsets are restored, and what was written past
    them is never read (attention reads up to the offset) and is overwritten by the next write. Skipped on the
    CPU (nothing there is built per shape, and a throwaway prefill would cost seconds) and for caches that cannot
    be trimmed. Skipped on Metal too: what it avoids (first-use kernels, graphs and memory at a read cache) was
    measured on the CUDA build only, and on a Mac every hint that reads a cache would run the throwaway turn while
    a message sent meanwhile waits. Returns whether it ran."""
    from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

    if not running_on_cuda() or not cache or not can_trim_prompt_cache(cache):
        return False
    room = min(_free_room(entry) for entry in cache)
    if room < 2:
        return False
    with mx.stream(generation_stream):
        size = min(WARM_UP_TOKENS, room - 1)
        for tokens in ([0] * size, [0]):  # a prefill-shaped pass, then a decode-shaped one
            logits = model(mx.array(tokens)[None], cache=cache)
            mx.eval(logits, [entry.state for entry in cache])
            trim_prompt_cache(cache, len(tokens))
    mx.synchronize(generation_stream)
    return True


WARM_UP_AT_LOAD = True
"""Whether `warm_up_decode` runs after a load (benchmarks turn it off to measure what it buys)."""


def warm_up_decode(model) -> bool:
    """On CUDA, right after a load: a few throwaway greedy decode steps on a fresh cache, through mlx-lm's own
    `generate_step`, so the first answer of a process does not pay MLX's first-use work for the model's decode
    kernels while it streams. Greedy only: a sampled step would draw from MLX's random state, which a session
    seeded with MLXCHAT_SEED must find as the seed left it (the state cannot be put back); the sampler's own few
    kernels load at the first sampled step. MLX's CUDA build loads (and on a new machine compiles) each kernel at
    its first use in a process; without this, a fresh engine process's first answer decoded slower than its
    second (BENCHMARKS.md, round 9). It runs inside the load, which the status pane already shows. Skipped on the
    CPU (nothing there is built per kernel) and on Metal (not measured there), as `warm_up` is. Returns whether
    it ran."""
    from mlx_lm.models.cache import make_prompt_cache

    if not WARM_UP_AT_LOAD or not running_on_cuda():
        return False
    cache = make_prompt_cache(model)
    for _, _ in zip(range(3), generate_step(mx.array([0] * 8), model, max_tokens=3, prompt_cache=cache)):
        pass
    mx.synchronize(generation_stream)
    mx.clear_cache()
    return True


def _free_room(entry) -> int:
    """Token slots of a layer's buffer past its offset (0 when it has none or cannot say)."""
    keys = getattr(entry, "keys", None)
    if keys is None:
        return 0
    array = keys[0] if isinstance(keys, (tuple, list)) else keys  # a quantized layer holds (data, scales, biases)
    return int(array.shape[-2]) - int(entry.offset)


def continue_text(detokenizer) -> None:
    """Make a fresh streaming detokenizer behave as if text came before: mlx-lm's BPE and SentencePiece
    detokenizers drop the leading space of an answer's first word, which glues a continued answer onto the
    stopped one ("a" + " beacon" → "abeacon")."""
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, SPMStreamingDetokenizer

    if isinstance(detokenizer, (BPEStreamingDetokenizer, SPMStreamingDetokenizer)):
        detokenizer.text = "\x00"
        detokenizer.offset = len(detokenizer.text)


FIRST_TOKEN_ROWS = 128
"""On CUDA, most of the prompt's last tokens whose forward pass also gives the first answer token (`text_steps`);
the rest is prefilled in chunks first. Why 128: on the H200 a 1B model's forward over a 2,400-token cache costs
about the same from 24 to 128 rows (7.9–8.7 ms; 9.7 at 256, `prefill_shapes.py`), and a follow-up longer than the
tail pays a second pass: at 64, a 71-token question took 27.9 ms to its first token (one pass: 11.8 ms at 128).
Most questions fit in 128. The logits are computed for every row (a model's forward cannot be asked for the last
row only), so the tail stays bounded: 128 rows of a 262k vocabulary are 67 MB of bfloat16, for one pass."""


def first_token_rows() -> int:
    """How many of the prompt's last tokens may share the first token's forward pass on this device.

    On CUDA a pass over a few dozen rows costs about what one over a single row does (launch-bound), so sharing
    saves a whole pass before the first token (the H200's resumed follow-up spent 5-8 ms of ~20 ms in it,
    `resume_probe.py`). On the CPU the pass is compute-bound and sharing costs more than it saves: a prefill
    chunk skips the last layer's feed-forward and the output projection (only the cache is evaluated), the
    shared pass computes both for every row (the tiny bench model: 54 ms against 26 ms,
    `benchmarks/first_token.py`). So elsewhere the last token runs alone, as mlx-lm runs it; Metal was not
    measured."""
    return FIRST_TOKEN_ROWS if running_on_cuda() else 1


def first_token_tail(prompt_todo: list[int], chunk_size: int, rows: int | None = None) -> int:
    """How many of the prompt's last uncached tokens `text_steps` runs itself: at most `rows` (this device's
    `first_token_rows`), and at most a prefill chunk, which is what keeps a cancel prompt (that forward cannot
    be interrupted)."""
    rows = first_token_rows() if rows is None else rows
    return max(1, min(len(prompt_todo), rows, chunk_size))


def text_steps(
    model,
    tokenizer,
    tail: list[int],
    cache: list,
    request: ChatRequest,
    *,
    script: Script | None = None,
    budget=None,
    kv_bits: int | None = None,
) -> Iterator[tuple[str, int]]:
    """(text segment, token) pairs, decoded with the streaming detokenizer: the first from one forward pass over
    `tail` (the prompt's last tokens, not in `cache` yet), the rest from mlx-lm's `generate_step`.

    Why the first token is ours: `generate_step` runs its prompt's last token through the model on its own, so a
    turn whose new tokens were prefilled first paid two forward passes before its first token; where one pass can
    take the whole tail (`first_token_rows`) it now pays one. The first token is chosen exactly as
    `generate_step` chooses every token (the processors, then the sampler over the log-probabilities), and
    `generate_step` then starts from it.

    The request's sampling values must be resolved already (no None: see `Engine._chat`). `budget` is the
    thinking-budget processor; it runs after the script's, so at the budget the end of thinking wins.
    """
    sampling = request.sampling
    forced = forced_processor(script, request, tokenizer)
    sampler = make_sampler(
        temp=sampling.temperature, top_p=sampling.top_p, min_p=sampling.min_p, top_k=sampling.top_k
    )
    processors = []
    if sampling.repetition_penalty != 1.0:
        processors += make_logits_processors(repetition_penalty=sampling.repetition_penalty)
    processors += [p for p in (forced, budget) if p is not None]
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    if request.continue_last or request.resume_thinking:
        continue_text(detokenizer)
    if sampling.max_tokens < 1:
        return
    # The processors see the prompt's last token and then what was generated, at every step, whatever the tail's
    # length: what they saw when `generate_step` started from that token (a repetition penalty's window).
    seen = mx.array(tail[-1:])
    with mx.stream(generation_stream):
        logits = model(mx.array(tail)[None], cache=cache)[:, -1, :]
        for processor in processors:
            logits = processor(seen, logits)
        quantize_cache(cache, kv_bits)
        first = int(sampler(logits - mx.logsumexp(logits, keepdims=True)).item())
    detokenizer.add_token(first)
    yield detokenizer.last_segment, first
    if sampling.max_tokens > 1:
        generator = generate_step(
            mx.array([first]),
            model,
            max_tokens=sampling.max_tokens - 1,
            sampler=sampler,
            logits_processors=[with_history(seen, processors)] if processors else None,
            prompt_cache=cache,
        )
        try:
            for token, _ in generator:
                detokenizer.add_token(token)
                yield detokenizer.last_segment, token
        finally:
            generator.close()
    detokenizer.finalize()


def with_history(history: mx.array, processors: list):
    """One logits processor running `processors` in order, each shown `history` before the tokens
    `generate_step` hands it (which start at the token it was started from)."""

    def process(tokens: mx.array, logits: mx.array) -> mx.array:
        tokens = mx.concatenate([history, tokens])
        for processor in processors:
            logits = processor(tokens, logits)
        return logits

    return process


def noting_last(last: list[int], steps: Iterator[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """`steps` as they come, each one's token kept in `last` (its only item); closing this closes `steps`."""
    try:
        for step in steps:
            last[:] = [step[1]]
            yield step
    finally:
        steps.close()


def run_text_turn(
    loaded,
    request: ChatRequest,
    control: RequestControl,
    emit: Emit,
    cache: ConversationCache,
    *,
    script: Script | None = None,
) -> Finished:
    """One text turn through mlx-lm, reusing the conversation's prompt cache.

    The conversation is cut to the context by its overflow policy (`context_fit.fit_prompt`, reported in a
    `ContextWindow` event), and the answer may use what is left: one that reaches the context limit ends with
    reason "length" and `context_full`, never an error.
    """
    request_id = request.request_id
    received = time.perf_counter()  # TTFT counts from here: fitting the prompt and reading a saved cache are part of it
    context_size = loaded.info.context_size
    # The tokenizer remembers the last prompt's tokens: a follow-up tokenizes only its new text (prompt_tokens.py).
    remembered = cache.prompt_for(request.conversation_id, request.saved_as)
    fitted = fit_prompt(loaded.tokenizer, request, context_size, loaded.info.name, remembered)
    prompt = fitted.tokens
    answer_limit = min(request.sampling.max_tokens, fitted.answer_room)
    context_full = answer_limit < request.sampling.max_tokens
    if context_full:
        request = replace(request, sampling=replace(request.sampling, max_tokens=answer_limit))
    if request.sampling.seed is not None:
        mx.random.seed(request.sampling.seed)
    reuse = cache.prepare(request.conversation_id, prompt, request.kv_bits, saved_as=request.saved_as)
    clock = TurnClock(received, len(prompt), reuse.cached_tokens, context_size, peak_memory=peak_memory)
    emit(Started(request_id, len(prompt), reuse.cached_tokens, "text"))
    emit(
        ContextWindow(
            request_id, request.overflow, fitted.window.hidden, len(prompt), context_size, fitted.answer_room
        )
    )
    emit(PrefillProgress(request_id, reuse.cached_tokens, len(prompt)))
    todo = prompt[reuse.cached_tokens :]
    tail = first_token_tail(todo, loaded.chunker.size)
    generated: list[int] = []
    try:
        with wired_limit(loaded.text_model, [generation_stream]):
            try:
                prefill(
                    loaded.text_model,
                    reuse.cache,
                    todo[:-tail],
                    chunker=loaded.chunker,
                    control=control,
                    emit=emit,
                    done_before=reuse.cached_tokens,
                    total=len(prompt),
                    kv_bits=request.kv_bits,
                )
                if control.cancelled:  # the tail's pass cannot be stopped, and may be all the new tokens (CUDA)
                    raise CancelledByRequest
            except CancelledByRequest:
                mx.synchronize(generation_stream)
                cache.record(prompt)
                return Finished(request_id, "cancelled", "", _usage(clock), stats=clock.stats(request_id))
            control.enter("generating")
            quantize_cache(reuse.cache, request.kv_bits)
            splitter, budget = thinking_setup(
                loaded.thinking, loaded.tokenizer, request, lambda: generation_prompt(loaded.tokenizer, request)
            )
            ended_by: list[int] = []  # the last token decode read: at a stop, the end token, which it leaves out
            steps = text_steps(
                loaded.text_model,
                loaded.tokenizer,
                todo[-tail:],
                reuse.cache,
                request,
                script=script,
                budget=budget,
                kv_bits=request.kv_bits,
            )
            reason, text, generated, reasoning = decode(
                noting_last(ended_by, steps),
                request=request,
                control=control,
                clock=clock,
                emit=emit,
                eos_token_ids=loaded.tokenizer.eos_token_ids,
                thinking=splitter,
                thought_before=len(loaded.tokenizer.encode(request.resume_thinking, add_special_tokens=False)),
            )
            if reason != "cancelled":
                mx.synchronize(generation_stream)
            # After a cancel, mlx-lm's pipelined next step may still be computing on this thread's stream. Nothing
            # waits for it: the owner thread has left every MLX call, and whatever it runs next is queued behind
            # that step on the same stream. Waiting would add a whole decode step to every cancel.
    except BaseException:
        cache.invalidate()
        raise
    # mlx-lm feeds each token before handing it out, the end token too: recorded, the follow-up reuses it where
    # its template ends the answer with it, rather than `record` trimming it off (a wrapped sliding-window cache
    # cannot be trimmed, and would be dropped). A first token that ends the answer was never fed: `record` cuts.
    cache.record(prompt + generated + (ended_by if reason == "stop" else []))
    if reason in ("stop", "length"):
        cache.persist_later(on_disk=request.save_cache)
    stats = clock.stats(request_id)
    emit(stats)
    return Finished(
        request_id,
        reason,
        text,
        _usage(clock),
        stats=stats,
        context_full=context_full and reason == "length",
        reasoning=request.resume_thinking + reasoning,  # a resumed answer's thinking is all of it, not the new part
    )


def _usage(clock: TurnClock) -> Usage:
    return Usage(clock.prompt_tokens, clock.cached_tokens, clock.generated, clock.reasoning_tokens)
