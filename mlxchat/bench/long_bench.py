"""Provides the long-conversation benchmark: resume from a saved prompt cache, image follow-ups, a chat that
overflows its context, and the KV cache's memory with and without quantization.

    python -m mlxchat.bench.long_bench --model PATH --json OUT [--quick]

Measured through the engine, as the chat screen uses it (TTFT is the engine's own `Stats.ttft_s`):

- **resume**: a conversation of about `history_tokens` is answered by one engine, which saves its prompt cache;
  another engine answers the follow-up cold (no saved cache), from the saved cache, and from it after a hint,
  the model loaded afresh before each turn (a restart: nothing in memory). Target: resumed ≤ 10 % of cold.
- **image follow-up**: the first turn of an image chat, then a text follow-up about the image. Target ≤ 20 %.
- **long chat**: a scripted chat on a copy of the model that reads at most `overflow_context` tokens, run until
  the truncate-middle window has moved twice; TTFT of each turn, the turns right after a move marked.
- **memory**: one long prompt (up to the model's context, or `memory_context`) with kv_bits 16 (full
  precision), 8 and 4: the KV cache's bytes (the saved cache file), peak memory, decode tok/s.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxchat.engine import (
    ChatRequest,
    ContextWindow,
    ConversationPrepared,
    Engine,
    Finished,
    LoadModel,
    Message,
    PrepareConversation,
    SamplingParams,
    Started,
)
from mlxchat.engine.saved_caches import SavedCacheFolder

from .stats import median

MEMORY_CONTEXT_CAP = 16384
"""A 128k-context model would otherwise prefill 128k tokens three times: longer than one device call allows."""

FILLER = (
    "The lighthouse keeper wrote in his log every evening: the wind from the west, the height of the waves, the "
    "ships that passed and the colour of the sky before the storm. "
)
ANSWER = (
    "Here is what I found. The keeper's log shows a pattern: storms came after three days of westerly wind, and "
    "the ships that passed kept closer to the coast before them. I would read the next pages to be sure. "
)


@dataclass
class LongBenchConfig:
    model: str | None = None
    history_tokens: int = 2000
    overflow_context: int = 2048
    overflow_question_tokens: int = 60
    overflow_answer_tokens: int = 120
    memory_context: int | None = None
    """The long prompt's size for the memory run; None: the model's context (at most `MEMORY_CONTEXT_CAP`) less
    room for the answer."""
    decode_tokens: int = 32
    vision_model: str | None = None
    """A vision model for the image follow-up; None: a random one of `vision_shape` (mlxchat.models.random_vision)."""
    vision_shape: str = "smolvlm-256m"
    """The random vision model's shape: "smolvlm-256m" (SmolVLM-256M-Instruct's, a 1024x768 photo: 13 tiles,
    832 image tokens through a 12 x 768 SigLIP tower), "smolvlm-tiles" (the same processing and tokens through a
    narrow model) or "tiny" (a 256-pixel image, 64 tokens, for a CPU)."""
    image_rounds: int = 3
    image_profile: Path | None = None
    image_clear_cache_rounds: int = 0
    """Extra image chats, alternating as they are and with `mx.clear_cache` made a no-op (the engine and mlx-vlm
    free MLX's buffer cache after each turn and prefill chunk): whether refilling it costs a follow-up time."""
    """Where to write a profile (cProfile, by cumulative time) of a text follow-up up to its first token (an extra
    chat after the timed ones), if anywhere."""
    resume_rounds: int = 3


@dataclass
class Turn:
    started: Started
    finished: Finished
    window: ContextWindow | None
    send_to_started_s: float = float("nan")
    """Wall time from `submit` to the `Started` event: fitting the prompt and finding its cache (a saved
    cache's read included)."""

    @property
    def ttft_s(self) -> float:
        """The engine's TTFT, counted from when its owner thread took the request (microseconds after the send
        when it was idle): the prompt's fitting, a saved cache's read, the prefill and the first step."""
        return self.finished.stats.ttft_s if self.finished.stats and self.finished.stats.ttft_s else float("nan")


class Driver:
    """One engine and its events; `ask` submits a chat turn and waits for its `Finished`."""

    def __init__(self, *, saved: SavedCacheFolder | None = None, script=None) -> None:
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.engine = Engine(lambda event: self.events.put((time.perf_counter(), event)), saved_caches=saved, script=script)
        self.engine.start()

    def load(self, model: str | None):
        request = LoadModel(model)
        self.engine.submit(request)
        finished = self._wait(request.request_id)[-1][1]
        if finished.reason != "stop":
            raise RuntimeError(f"could not load {model}: {finished.error}")
        return self.engine.model

    def ask(self, messages, conversation_id: str, max_tokens: int, **options) -> Turn:
        sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        request = ChatRequest(tuple(messages), conversation_id=conversation_id, sampling=sampling, **options)
        sent = time.perf_counter()
        busy = self.engine.submit(request)
        if busy is not None:
            raise RuntimeError(busy.message)
        timed = self._wait(request.request_id)
        events = [event for _, event in timed]
        finished = events[-1]
        if finished.reason not in ("stop", "length"):
            raise RuntimeError(f"turn failed ({finished.reason}): {finished.error}")
        started_at, started = next((at, e) for at, e in timed if isinstance(e, Started))
        window = next((e for e in events if isinstance(e, ContextWindow)), None)
        return Turn(started, finished, window, started_at - sent)

    def prepare(self, conversation_id: str) -> ConversationPrepared:
        """Give the engine a `PrepareConversation` hint and wait until it has acted on it."""
        hint = PrepareConversation(conversation_id)
        self.engine.prepare(hint)
        return self._wait(hint.request_id, until=ConversationPrepared)[-1][1]

    def _wait(self, request_id: str, timeout_s: float = 3600, until: type = Finished) -> list:
        """(arrival time, event) pairs of `request_id` up to its first `until` event."""
        seen = []
        deadline = time.monotonic() + timeout_s
        while True:
            at, event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.request_id == request_id:
                seen.append((at, event))
                if isinstance(event, until):
                    return seen

    def close(self) -> None:
        self.engine.close(timeout_s=60)


def count_tokens(model_path: str, text: str) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(model_path).encode(text, add_special_tokens=False))


def history_of(tokens: int, model_path: str) -> list[Message]:
    """User/assistant turns of filler text adding up to about `tokens` (counted with the model's tokenizer)."""
    per_filler = max(1, count_tokens(model_path, FILLER))
    per_answer = max(1, count_tokens(model_path, ANSWER))
    messages: list[Message] = [Message("system", "You are a careful reader of old logs.")]
    total, turn = 0, 0
    while total < tokens:
        messages.append(Message("user", f"Page {turn}: " + FILLER * 3))
        messages.append(Message("assistant", ANSWER))
        total += 3 * per_filler + per_answer + 12
        turn += 1
    messages.append(Message("user", "What does the log say about the storms?"))
    return messages


def cache_file_costs(path: Path) -> dict[str, float]:
    """Where reading and writing a saved cache goes, timed on this thread from the file the engine wrote: the
    bytes off the disk (warm page cache), `mx.load` and evaluating the arrays, the whole of mlx-lm's
    `load_prompt_cache` (arrays plus cache objects), and writing it again, as the engine does after each answer,
    at its own length and at four times it (the same arrays tiled: an 8,000-token cache from a 2,000-token one)."""
    import mlx.core as mx
    from mlx_lm.models.cache import load_prompt_cache, save_prompt_cache

    def timed(work) -> float:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    read_s = timed(path.read_bytes)
    load_s = timed(lambda: mx.eval(list(mx.load(str(path)).values())))
    holder: list = []
    rebuild_s = timed(lambda: holder.append(load_prompt_cache(str(path), return_metadata=True)))
    cache, metadata = holder[0]
    mx.eval([entry.state for entry in cache])
    target = path.with_name("write-probe.safetensors")
    write_s = timed(lambda: save_prompt_cache(str(target), cache, metadata))
    for entry in cache:  # four times as long: the same arrays, tiled along the sequence (full-precision layers)
        entry.keys, entry.values = (mx.concatenate([array] * 4, axis=2) for array in (entry.keys, entry.values))
        entry.offset *= 4
    mx.eval([entry.state for entry in cache])
    write_4x_s = timed(lambda: save_prompt_cache(str(target), cache, metadata))
    size_4x = target.stat().st_size
    target.unlink()
    return {
        "file_bytes": path.stat().st_size,
        "read_bytes_s": read_s,
        "mx_load_and_eval_s": load_s,
        "load_prompt_cache_s": rebuild_s,
        "write_s": write_s,
        "write_4x_s": write_4x_s,
        "file_4x_bytes": size_4x,
    }


RESUMED_ANSWER = "The storms came after three days of westerly wind, and the keeper lit the lamp an hour early on each of them."
"""The answer the resumed conversation ends with, forced through the model (`scripted`). A real model's answer is
its tokenizer's own encoding of its text, so the follow-up's prompt, which encodes the answer's text again, finds
it in the saved cache (the demo model: 100 of a follow-up's 114 tokens cached, the answer's 57 included). A random
model's answer is not ("!!!!" tokens re-encode differently): the follow-up found only the history cached and ran
the answer's tokens again, 55 new tokens where a real chat has about 15."""


def resumed_answer_ids(model_path: str) -> list[int]:
    """`RESUMED_ANSWER`'s tokens and then the end-of-turn token the chat template writes after an answer, as a
    real model ends its answer (the engine keeps that token in the cache, and the follow-up's prompt has it
    there). Llama 3 lists `<|end_of_text|>` and `<|eot_id|>` as end tokens, Qwen2.5 `<|endoftext|>` and
    `<|im_end|>`: the template's is the one that matches."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    mark = "\x00ANSWER\x00"
    chat = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": mark}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    after = tokenizer.encode(rendered.split(mark, 1)[1], add_special_tokens=False) if mark in rendered else []
    ids = tokenizer.encode(RESUMED_ANSWER, add_special_tokens=False)
    return ids + after[:1] if after and after[0] in tokenizer.all_special_ids else ids


def measure_resume(config: LongBenchConfig, work: Path, progress) -> dict[str, Any]:
    """A conversation answered and saved by one engine; another engine then answers its follow-up
    `resume_rounds` times each way, alternating which goes first: cold (a conversation with no saved cache),
    resumed with the cache read inside the turn, and resumed after a `PrepareConversation` hint (the cache read
    while the person types). Every one of these turns is the first after a restart: the model is loaded afresh
    before it (`restarted`), so nothing is in memory and the prefill's chunk size is not learned yet (a fresh
    engine prefills in `PrefillChunker`'s first size, then learns a larger one on a fast device). The process's
    first use of each kernel is left out, as a cost of the machine, not of resuming (the untimed first turn pays
    it). Each resumed round starts from the file the first engine saved. "cold, learned" is a second cold turn
    right after a cold one, with the chunk size learned: not a restart's, kept for comparison with earlier
    rounds. TTFT is counted from the send."""
    import mlx.core as mx

    folder = SavedCacheFolder(work / "resume-caches", cap_bytes=2**40)
    answer_ids: list[int] = []
    first = Driver(saved=folder, script=lambda request: answer_ids)
    info = first.load(config.model)
    answer_ids[:] = resumed_answer_ids(info.path)
    history = history_of(config.history_tokens, info.path)
    progress(f"resume: answering a {config.history_tokens}-token conversation and saving its cache")
    answered = first.ask(history, "resume", len(answer_ids) + 1)  # room for the end, so it ends as answers do
    first.close()
    follow_up = history + [Message("assistant", answered.finished.text), Message("user", "And the ships?")]
    saved = folder.file_for("resume")
    saved_copy = work / "resume-saved.bin"
    saved_copy.write_bytes(saved.read_bytes())

    def restore() -> None:
        """The first engine's file back, without the segment the last resumed answer saved beside it (which
        continues that file, so a read would join it and find the follow-up already cached)."""
        for path in folder.files_of("resume"):
            path.unlink()
        saved.write_bytes(saved_copy.read_bytes())

    progress("resume: restarted engines answer the follow-up cold, resumed, and resumed after a hint")
    engine = Driver(saved=folder)
    engine.load(config.model)
    if mx.default_device().type == mx.gpu:  # MLX's CUDA build compiles kernels per shape on first use: not resume's cost
        engine.ask(follow_up, "warm-up", config.decode_tokens)

    def restarted() -> None:
        """The engine as a restart leaves it: the model loaded afresh (after the last answer's save, which the
        load waits behind), nothing in memory, the saved file as the first engine left it."""
        engine.load(config.model)
        restore()

    runs: dict[str, list[Turn]] = {"cold": [], "cold_learned": [], "resumed": [], "prepared": []}
    prepare_s: list[float] = []
    for round_ in range(config.resume_rounds):
        order = ["cold", "resumed", "prepared"] if round_ % 2 == 0 else ["prepared", "resumed", "cold"]
        for side in order:
            restarted()
            if side == "cold":
                runs["cold"].append(engine.ask(follow_up, f"cold-{round_}", config.decode_tokens))
                runs["cold_learned"].append(engine.ask(follow_up, f"cold-learned-{round_}", config.decode_tokens))
                continue
            if side == "prepared":
                prepared = engine.prepare("resume")
                prepare_s.append(prepared.seconds)
            runs[side].append(engine.ask(follow_up, "resume", config.decode_tokens))
    # The rounds above repeat one follow-up, so MLX's per-shape work (cuDNN attention graphs per query/key shape)
    # is done once for all; every real follow-up has a shape of its own. One more each way, never asked before.
    other = follow_up[:-1] + [Message("user", "What did the keeper write about the fog, the rocks and the lamp?")]
    restarted()
    engine.prepare("resume")
    new_prepared = engine.ask(other, "resume", config.decode_tokens)
    restarted()
    new_cold = engine.ask(other, "cold-new", config.decode_tokens)
    engine.close()
    costs = cache_file_costs(saved_copy.rename(work / "resume.safetensors"))
    cold, resumed, prepared = (median([t.ttft_s for t in runs[side]]) for side in ("cold", "resumed", "prepared"))
    cold_learned = median([t.ttft_s for t in runs["cold_learned"]])
    return {
        "prompt_tokens": runs["cold"][-1].started.prompt_tokens,
        "rounds": config.resume_rounds,
        "cold_ttft_s": cold,
        "resumed_ttft_s": resumed,
        "prepared_ttft_s": prepared,
        "resumed_cached_tokens": [t.started.cached_tokens for t in runs["resumed"]],
        "prepared_cached_tokens": [t.started.cached_tokens for t in runs["prepared"]],
        "first_answer_forced": answered.finished.text == RESUMED_ANSWER and answered.finished.reason == "stop",
        "resumed_over_cold": resumed / cold,
        "prepared_over_cold": prepared / cold,
        "cold_learned_ttft_s": cold_learned,
        "prepared_over_cold_learned": prepared / cold_learned,
        "target": "<= 0.10",
        "prepare_s": median(prepare_s) if prepare_s else None,
        "resumed_send_to_started_s": median([t.send_to_started_s for t in runs["resumed"]]),
        "prepared_send_to_started_s": median([t.send_to_started_s for t in runs["prepared"]]),
        "cold_send_to_started_s": median([t.send_to_started_s for t in runs["cold"]]),
        "cache_file": costs,
        "all_from_send_s": {side: [t.ttft_s for t in turns] for side, turns in runs.items()},
        "first_answer_ttft_s": answered.ttft_s,
        "new_question": {
            "prepared_ttft_s": new_prepared.ttft_s,
            "cold_ttft_s": new_cold.ttft_s,
            "prepared_over_cold": new_prepared.ttft_s / new_cold.ttft_s,
            "prepared_cached_tokens": new_prepared.started.cached_tokens,
            "prompt_tokens": new_prepared.started.prompt_tokens,
        },
    }


def vision_bench_model(shape: str, work: Path) -> tuple[str, tuple[int, int]]:
    """A random vision model of `shape` (see `LongBenchConfig.vision_shape`), written under `work`, and the size
    of picture it is meant to read."""
    from dataclasses import replace

    import mlx.core as mx

    from mlxchat.models.random_vision import SMOLVLM_256M, TinyVisionSpec, build_tiny_vlm

    if shape == "tiny":
        # Tiny, but with an image that costs something: 256 patches through a 4-layer tower, 64 tokens.
        spec = TinyVisionSpec(image_size=256, vision_hidden_size=256, vision_layers=4, text_hidden_size=256)
        size = (256, 256)
    elif shape == "smolvlm-256m":
        spec, size = SMOLVLM_256M, (1024, 768)
        if mx.default_device() == mx.cpu:  # bfloat16 matmuls crawl on MLX's CPU build
            spec = replace(spec, dtype="float32")
    elif shape == "smolvlm-tiles":
        # SmolVLM's processing at the real size (13 tiles, 832 image tokens) through a narrow model: the per-turn
        # costs outside the model (reading, processing, tokenizing the picture) as they are, cheaply on a CPU.
        spec = replace(SMOLVLM_256M, text_hidden_size=64, text_intermediate_size=128, text_layers=2, text_heads=4,
                       text_kv_heads=2, vision_hidden_size=64, vision_intermediate_size=128, vision_layers=2,
                       vision_heads=4, model_vocab_size=0, dtype="float32")
        size = (1024, 768)
    else:
        raise ValueError(f"unknown vision shape {shape!r} (tiny, smolvlm-tiles, smolvlm-256m)")
    return str(build_tiny_vlm(work / f"vlm-{shape}", spec=spec)), size


def photo(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A JPEG of random pixels: each seed another picture, so no turn finds it already read."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def measure_image_follow_up(config: LongBenchConfig, work: Path, progress) -> dict[str, Any]:
    model, size = config.vision_model, (1024, 768)
    if model is None:
        model, size = vision_bench_model(config.vision_shape, work)
    warm_image = photo(work / "warm-up.jpg", size, seed=1000)
    driver = Driver()
    driver.load(model)
    with PhaseTimer() as phases:
        # Untimed: a fresh GPU compiles its kernels on first use (tens of seconds), which is not the turn's cost.
        progress("image follow-up: warm-up turn")
        warm = [Message("user", "What is in this picture?", (warm_image,))]
        answer = driver.ask(warm, "image-warm-up", config.decode_tokens)
        warm_follow = warm + [Message("assistant", answer.finished.text), Message("user", "And its colours?")]
        driver.ask(warm_follow, "image-warm-up", config.decode_tokens)  # the timed turns' shapes, compiled
        phases.clear()
        firsts, follow_ups, cold_follow_ups, cached, prompts = [], [], [], [], []
        first_phases, follow_phases = [], []
        for round_ in range(config.image_rounds):
            progress(f"image follow-up: round {round_ + 1} of {config.image_rounds}")
            image = photo(work / f"photo-{round_}.jpg", size, seed=round_)  # a new picture: read and processed
            opening = [Message("user", "What is in this picture?", (image,))]
            first = driver.ask(opening, f"image-{round_}", config.decode_tokens)
            first_phases.append(phases.clear())
            follow = opening + [Message("assistant", first.finished.text), Message("user", "And its colours?")]
            second = driver.ask(follow, f"image-{round_}", config.decode_tokens)
            follow_phases.append(phases.clear())
            cold = driver.ask(follow, f"image-cold-{round_}", config.decode_tokens)  # the same follow-up, read whole
            phases.clear()
            cold_follow_ups.append(cold.ttft_s)
            firsts.append(first.ttft_s)
            follow_ups.append(second.ttft_s)
            cached.append(second.started.cached_tokens)
            prompts.append(first.started.prompt_tokens)
        clear_cache_ab = _clear_cache_ab(config, driver, work, size) if config.image_clear_cache_rounds else None
        if config.image_profile is not None:  # one more chat, its follow-up profiled up to its first token
            opening = [Message("user", "What is in this picture?", (photo(work / "profiled.jpg", size, seed=99),))]
            first = driver.ask(opening, "image-profiled", config.decode_tokens)
            with phases.profiling(True):
                follow = opening + [Message("assistant", first.finished.text), Message("user", "And its colours?")]
                driver.ask(follow, "image-profiled", 1)
            phases.write_profile(config.image_profile)
    driver.close()
    return {
        "model": model,
        "shape": config.vision_shape if config.vision_model is None else None,
        "image_pixels": list(size),
        "first_prompt_tokens": prompts,
        "first_image_turn_ttft_s": median(firsts),
        "text_follow_up_ttft_s": median(follow_ups),
        "text_follow_up_without_cache_ttft_s": median(cold_follow_ups),
        "follow_up_cached_tokens": cached,
        "follow_up_route": second.started.route,
        "follow_up_over_first": median(follow_ups) / median(firsts),
        "first_turn_phases_s": PhaseTimer.medians(first_phases),
        "follow_up_phases_s": PhaseTimer.medians(follow_phases),
        "clear_cache_ab": clear_cache_ab,
        "all_ttft_s": {"first": firsts, "follow_up": follow_ups, "cold_follow_up": cold_follow_ups},
        "target": "<= 0.20",
    }


def _clear_cache_ab(config: LongBenchConfig, driver: Driver, work: Path, size) -> dict[str, Any]:
    """First image turn and text follow-up TTFTs, alternating rounds as is and with `mx.clear_cache` a no-op."""
    import mlx.core as mx

    original = mx.clear_cache
    times: dict[str, dict[str, list[float]]] = {label: {"first": [], "follow_up": []} for label in ("as_is", "kept")}
    for round_ in range(config.image_clear_cache_rounds):
        for label in ("as_is", "kept")[:: 1 if round_ % 2 == 0 else -1]:
            mx.clear_cache = original if label == "as_is" else (lambda: None)
            try:
                conversation = f"clear-cache-{label}-{round_}"
                image = photo(work / f"{conversation}.jpg", size, seed=500 + 2 * round_ + (label == "kept"))
                opening = [Message("user", "What is in this picture?", (image,))]
                first = driver.ask(opening, conversation, config.decode_tokens)
                follow = opening + [Message("assistant", first.finished.text), Message("user", "And its colours?")]
                second = driver.ask(follow, conversation, config.decode_tokens)
            finally:
                mx.clear_cache = original
            times[label]["first"].append(first.ttft_s)
            times[label]["follow_up"].append(second.ttft_s)
    return {
        label: {"first_s": median(runs["first"]), "follow_up_s": median(runs["follow_up"]), "all": runs}
        for label, runs in times.items()
    }


class PhaseTimer:
    """Times the vision route's steps (reading images, the processor, the template, the cache lookup) by wrapping
    the module functions `run_vision_turn` calls, while the `with` block lasts. A bench-only look inside a turn:
    the engine itself reports only TTFT. Calls run on the engine's owner thread; `clear` happens between turns.
    Steps nest: `_fit_to_context` holds reading the images, `_prepare_inputs` (the processor) and `render_prompt`."""

    STEPS = (
        "_fit_to_context",
        "_prepare_inputs",
        "render_prompt",
        "_reuse_prefix",
        "_generation_prompt",
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._profile = None
        self._profiling = False

    @contextmanager
    def profiling(self, on: bool):
        """While the block runs, a turn of the vision route is profiled (on the owner thread, where it runs)."""
        self._profiling = on
        try:
            yield
        finally:
            self._profiling = False

    def write_profile(self, path: Path) -> None:
        import io
        import pstats

        if self._profile is None:
            return
        text = io.StringIO()
        pstats.Stats(self._profile, stream=text).sort_stats("cumulative").print_stats(40)
        path.write_text(text.getvalue())

    def __enter__(self) -> "PhaseTimer":
        from mlxchat.engine.local import vision

        self._module, self._originals = vision, {}
        self._originals["run_vision_turn"] = turn = vision.run_vision_turn
        vision.run_vision_turn = lambda *args, **kwargs: self._turn(turn, args, kwargs)
        for name in self.STEPS:
            if hasattr(vision, name):
                self._originals[name] = original = getattr(vision, name)
                setattr(vision, name, self._timed(name, original))
        return self

    def _timed(self, name, original):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed

    def _turn(self, turn, args, kwargs):
        if not self._profiling:
            return turn(*args, **kwargs)
        import cProfile

        self._profile = self._profile or cProfile.Profile()
        return self._profile.runcall(turn, *args, **kwargs)

    def clear(self) -> dict[str, float]:
        seconds, self.seconds = self.seconds, {}
        return seconds

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(self._module, name, original)

    @staticmethod
    def medians(runs: list[dict[str, float]]) -> dict[str, float]:
        names = {name for run in runs for name in run}
        return {name: median([run.get(name, 0.0) for run in runs]) for name in sorted(names)}


def short_context_copy(model_path: str, context: int, folder: Path) -> Path:
    """The model folder again (weights linked, not copied) with a config that reads at most `context` tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in Path(model_path).iterdir():
        if entry.name != "config.json":
            (folder / entry.name).symlink_to(entry.resolve())
    config = json.loads((Path(model_path) / "config.json").read_text())
    for key in ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length"):
        config.pop(key, None)
    config["max_position_embeddings"] = context
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def measure_long_chat(config: LongBenchConfig, work: Path, progress, model_path: str) -> dict[str, Any]:
    short = short_context_copy(model_path, config.overflow_context, work / "short-context")
    answer_words = ANSWER.split() * 8
    answer = " ".join(answer_words[: int(config.overflow_answer_tokens * 0.75)])
    driver = Driver(script=lambda request: f"Page {len(request.messages)}. {answer}")
    driver.load(str(short))

    def question(number: int) -> str:  # every turn different, as in a real chat (identical turns would all match)
        return f"Question {number}: " + " ".join(FILLER.split() * 4)[: config.overflow_question_tokens * 4]

    messages = [Message("system", "You are a careful reader of old logs."), Message("user", question(0))]
    turns: list[dict[str, Any]] = []
    moves: list[int] = []  # indices of the turns whose window moved
    hidden_before: tuple[int, ...] = ()
    while not (len(moves) >= 2 and len(turns) >= moves[1] + 2) and len(turns) < 80:
        turn = driver.ask(messages, "long-chat", config.overflow_answer_tokens)
        hidden = turn.window.hidden if turn.window else ()
        moved = bool(hidden) and hidden != hidden_before
        after_move = bool(moves) and moves[-1] == len(turns) - 1
        if moved:
            moves.append(len(turns))
        turns.append(
            {
                "turn": len(turns) + 1,
                "prompt_tokens": turn.started.prompt_tokens,
                "cached_tokens": turn.started.cached_tokens,
                "hidden_messages": len(hidden),
                "window_moved": moved,
                "after_move": after_move,
                "ttft_s": turn.ttft_s,
                "reason": turn.finished.reason,
            }
        )
        progress(f"long chat: turn {len(turns)}, {len(hidden)} messages out of view, TTFT {turn.ttft_s:.2f} s")
        hidden_before = hidden
        messages += [Message("assistant", turn.finished.text), Message("user", question(len(turns)))]
    driver.close()
    steady = [t["ttft_s"] for t in turns if not t["window_moved"] and t["turn"] > 1]
    at_move = [t["ttft_s"] for t in turns if t["window_moved"]]
    after_move = [t["ttft_s"] for t in turns if t["after_move"]]
    return {
        "context": config.overflow_context,
        "turns": turns,
        "window_moves_at_turns": [m + 1 for m in moves],
        "median_ttft_s_without_move": median(steady) if steady else None,
        "ttft_s_at_moves": at_move,
        "ttft_s_after_moves": after_move,
    }


def measure_memory(config: LongBenchConfig, work: Path, progress, context_size: int) -> dict[str, Any]:
    import mlx.core as mx

    length = config.memory_context or min(context_size, MEMORY_CONTEXT_CAP) - config.decode_tokens - 64
    folder = SavedCacheFolder(work / "memory-caches", cap_bytes=2**40)
    results = {}
    text = ""
    for bits in (None, 8, 4):
        label = "16" if bits is None else str(bits)
        driver = Driver(saved=folder)
        info = driver.load(config.model)
        if not text:
            text = FILLER * max(1, (length - 16) // max(1, count_tokens(info.path, FILLER)))
        progress(f"memory: a {length}-token prompt with kv_bits {label}")
        mx.reset_peak_memory()
        try:
            turn = driver.ask([Message("user", text)], f"memory-{label}", config.decode_tokens, kv_bits=bits)
        except RuntimeError as exc:  # e.g. a quantized attention shape this MLX build has no kernel for
            results[label] = {"error": str(exc)}
            progress(f"memory: kv_bits {label} failed: {exc}")
            continue
        finally:
            driver.close()
        stats = turn.finished.stats
        saved = folder.file_for(f"memory-{label}")
        results[label] = {
            "prompt_tokens": turn.started.prompt_tokens,
            "kv_cache_bytes": saved.stat().st_size if saved.exists() else None,
            "peak_memory_bytes": stats.peak_memory_bytes,
            "decode_tps": stats.decode_tps,
            "ttft_s": stats.ttft_s,
        }
        progress(f"memory: kv_bits {label}: {json.dumps(results[label])}")  # kept if a time limit ends the run
    full = results["16"]
    for label in ("8", "4"):
        if "error" in results[label] or "error" in full:
            continue
        if full["kv_cache_bytes"] and results[label]["kv_cache_bytes"]:
            results[label]["kv_bytes_vs_16"] = results[label]["kv_cache_bytes"] / full["kv_cache_bytes"]
        if full["decode_tps"]:
            results[label]["decode_vs_16"] = results[label]["decode_tps"] / full["decode_tps"]
    return results


SECTIONS = ("resume", "image", "long", "memory")


def run(
    config: LongBenchConfig, progress=print, sections=SECTIONS, on_section=lambda result: None
) -> dict[str, Any]:
    """Measure `sections`; `on_section` gets the result so far after each one (a long run keeps what it has)."""
    import mlx.core as mx

    with tempfile.TemporaryDirectory(prefix="mlxchat-long-bench-") as temporary:
        work = Path(temporary)
        info = None
        if set(sections) - {"image"}:  # the image section brings its own model
            probe = Driver()
            info = probe.load(config.model)
            probe.close()
        result: dict[str, Any] = {
            "model": info.name if info else None,
            "model_path": info.path if info else None,
            "device": str(mx.default_device()),
            "config": config.__dict__,
        }
        measures = {
            "resume": ("resume", lambda: measure_resume(config, work, progress)),
            "image": ("image_follow_up", lambda: measure_image_follow_up(config, work, progress)),
            "long": ("long_chat", lambda: measure_long_chat(config, work, progress, info.path)),
            "memory": ("memory", lambda: measure_memory(config, work, progress, info.context_size)),
        }
        result["section_seconds"] = {}
        for section in sections:
            key, measure = measures[section]
            started = time.perf_counter()
            result[key] = measure()
            result["section_seconds"][section] = time.perf_counter() - started
            progress(f"{section}: {result['section_seconds'][section]:.1f} s")
            on_section(result)
    return result


QUICK = dict(
    history_tokens=600,
    overflow_context=1024,
    overflow_question_tokens=30,
    overflow_answer_tokens=48,
    memory_context=1024,
    resume_rounds=1,
    vision_shape="tiny",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder or name (default: the demo model)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--quick", action="store_true", help=f"smaller sizes for a CPU: {QUICK}")
    parser.add_argument("--history-tokens", type=int)
    parser.add_argument("--overflow-context", type=int)
    parser.add_argument("--memory-context", type=int)
    parser.add_argument("--resume-rounds", type=int, help="follow-ups each way in the resume section (alternated)")
    parser.add_argument("--vision-model", help="a vision model for the image follow-up (default: a tiny random one)")
    shapes = ("smolvlm-256m", "smolvlm-tiles", "tiny")
    parser.add_argument("--vision-shape", choices=shapes, help="the random vision model's shape")
    parser.add_argument("--image-rounds", type=int, help="image chats timed in the image section")
    parser.add_argument("--image-clear-cache-rounds", type=int, help="image chats with and without mx.clear_cache")
    parser.add_argument("--image-profile", type=Path, help="write a profile of a follow-up's first token here")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"which to run, of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    config = LongBenchConfig(model=args.model, vision_model=args.vision_model)
    for name, value in (QUICK if args.quick else {}).items():
        setattr(config, name, value)
    options = ("history_tokens", "overflow_context", "memory_context", "resume_rounds", "vision_shape", "image_rounds")
    for name in (*options, "image_profile", "image_clear_cache_rounds"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")

    def save(result: dict[str, Any]) -> None:
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")

    result = run(config, progress=lambda line: print(line, flush=True), sections=sections, on_section=save)
    print(json.dumps(result, indent=2, default=str), flush=True)
    from mlxchat.exit import flush_stdio

    flush_stdio()
    os._exit(0)  # engine threads that generated and finished abort the interpreter's exit (NOTES-MLX.md)


if __name__ == "__main__":
    main()
