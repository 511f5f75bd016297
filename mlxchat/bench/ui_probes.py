"""Provides the measurements the UI benchmark combines (`ui_bench.run_ui_bench`), each on the real app.

See `ui_bench`'s docstring for what each one measures and how. Every app here is headless (`App.run_test`) on
the real engine, except the launch timing, which runs the real `mlxchat` process in a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .frames import FrameRecorder, SettledText
from .realistic import (
    REALISTIC_ANSWER,
    ForcedAnswerEngine,
    answer_script,
    code_fence_lines,
    current_pace,
    forced_ids,
    paced,
)
from .stats import median, percentile

DECODE_PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
IMAGE_QUESTION = "What is in this picture?"
WELCOME_TEXT = "Ask anything below"
PROBE_LETTERS = "etaoinshrdlucmfwypvbgkjqxz"


@dataclass
class UIBenchConfig:
    decode_tokens: int = 64
    runs: int = 3
    key_probes: int = 20
    launch_trials: int = 3
    size: tuple[int, int] = (100, 32)
    vision_model: str | None = None
    """A vision model for the image turn; None builds a tiny random SmolVLM in a temporary folder."""
    load_timeout_s: float = 600.0
    answer: str | None = REALISTIC_ANSWER
    """The text every answer is forced to (see `realistic.py`); None lets the model choose (random weights: "!!!!")."""
    key_rates: tuple[float | None, ...] = (None,)
    """Token rates the keypress probe runs at, one whole answer each (None: the model's own speed)."""
    image_turn: bool = True
    key_max_tokens: int = 1_000_000
    """Tokens of the answer the keypress probe streams through (fewer: a shorter run on a slow model)."""
    engines: tuple[str, ...] = ("process",)
    """Where the app's engine runs in the decode rounds, each kind once a round: "process" (as `mlxchat` runs it)
    and/or "thread" (an owner thread in the app's process). The first kind is the one reported and probed."""
    one_launch: bool = False
    """Every decode round's TUI answer in one app launch (one engine kind), not a launch per round."""


# ---- the app, with every engine event timestamped --------------------------------------------------------------


ENGINE_PROCESS = [True]
"""Whether the app's engine runs in its own process, as `mlxchat` runs it (`ProcessEngine`), or on an owner thread
in the app's process (`ui_bench --engines process,thread`: what the process buys)."""


@contextmanager
def engine_kind(kind: str) -> Iterator[None]:
    """Apps made inside run their engine in its own "process" or on a "thread" in theirs (`ENGINE_PROCESS`)."""
    if kind not in ("process", "thread"):
        raise ValueError(f"not an engine kind: {kind!r} (process or thread)")
    outer, ENGINE_PROCESS[0] = ENGINE_PROCESS[0], kind == "process"
    try:
        yield
    finally:
        ENGINE_PROCESS[0] = outer


class EventTee:
    """An engine factory for `make_app` that keeps (perf_counter time, event) of everything the engine emits, as
    the app receives it. With `answer`, the engine forces that text through the model (`Engine(script=...)`); in
    its own process it is paced by the innermost `realistic.paced` around the app's making."""

    def __init__(self, answer: str | None = None) -> None:
        self.events: list[tuple[float, Any]] = []
        self.answer = answer

    def __call__(self, sink):
        from mlxchat.engine import Engine
        from mlxchat.engine.process import ProcessEngine

        def tee(event) -> None:
            self.events.append((time.perf_counter(), event))
            sink(event)

        if ENGINE_PROCESS[0]:
            return ProcessEngine(tee, ForcedAnswerEngine(self.answer, current_pace()))
        return Engine(tee, script=answer_script(self.answer) if self.answer is not None else None)

    def of(self, request_id: str, kind=object) -> list[tuple[float, Any]]:
        return [(at, e) for at, e in list(self.events) if e.request_id == request_id and isinstance(e, kind)]


def _app(spec: str | None, max_tokens: int, tee: EventTee):
    from mlxchat.settings import ChatSettings
    from mlxchat.ui.app import make_app

    settings = ChatSettings(temperature=0.0, max_tokens=max_tokens, model=spec)
    return make_app(model=spec, engine_factory=tee, chat_settings=settings)


async def _until(pilot, condition, timeout_s: float, what: str) -> None:
    """Wait for `condition`, looking every 20 ms with a plain sleep.

    Not `Pilot.pause`: each pause walks every widget of the screen (a callback through each one's message queue)
    and forces a frame. With a long realistic answer (hundreds of widgets) polling that way every 10 ms kept the
    UI thread 78 % busy on the H200 and cut decode in the TUI to 0.28 of raw: work no terminal user's app does.
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def _loaded(pilot, timeout_s: float) -> None:
    chat = pilot.app.chat
    await _until(pilot, lambda: (chat.model is not None and not chat.busy) or chat.status.phase == "error", timeout_s, "the model load")
    if chat.model is None:
        raise RuntimeError(f"the model did not load: {chat.status.detail}")


class DrawnText:
    """How many characters of the answers the widgets hold, updated when an update has completed.

    Answers stream through `AnswerStream` (its `shown_chars`: Markdown plus an open fence's code view) or, in an
    app without it, straight into `Markdown.append` (`frames.SettledText` per widget); both are tracked."""

    def __init__(self) -> None:
        self.markdowns: dict[int, SettledText] = {}
        self.streams: list[Any] = []

    @property
    def chars(self) -> int:
        if self.streams:
            return sum(stream.shown_chars for stream in self.streams)
        return sum(tracker.settled_chars for tracker in self.markdowns.values())

    def mark(self) -> tuple[int, int]:
        """Where the next answer starts: `chars_since(mark)` counts its characters alone."""
        return len(self.streams), sum(tracker.settled_chars for tracker in self.markdowns.values())

    def chars_since(self, mark: tuple[int, int]) -> int:
        streams, markdown_chars = mark
        if len(self.streams) > streams:
            return sum(stream.shown_chars for stream in self.streams[streams:])
        if self.streams:
            return 0
        return sum(tracker.settled_chars for tracker in self.markdowns.values()) - markdown_chars


@contextmanager
def _drawn_text():
    """Track what every answer stream (or `Markdown` widget) has drawn while the block is active."""
    from textual.widgets import Markdown

    from mlxchat.ui.widgets.code_stream import AnswerStream

    drawn = DrawnText()
    original_append, original_init = Markdown.append, AnswerStream.__init__

    def append(self, fragment: str):
        tracker = drawn.markdowns.get(id(self))
        if tracker is None:
            Markdown.append = original_append  # SettledText wraps the original on the instance
            try:
                tracker = drawn.markdowns[id(self)] = SettledText(self)
            finally:
                Markdown.append = append
        return self.append(fragment)

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        drawn.streams.append(self)

    Markdown.append = append
    AnswerStream.__init__ = init
    try:
        yield drawn
    finally:
        Markdown.append = original_append
        AnswerStream.__init__ = original_init


STREAM_VARIANTS = ("code-stream", "frame-budget", "markdown-stream")
"""How answers reach the screen, to measure what each change bought: `code-stream` is the app as shipped
(`AnswerStream`: a frame budget, open fences drawn line by line); `frame-budget` keeps the budget but lets open
fences go through the Markdown; `markdown-stream` is Textual's `MarkdownStream`, which the app used before."""


@contextmanager
def stream_variant(name: str):
    """Make message views stream answers the `name` way (see `STREAM_VARIANTS`) while the block is active."""
    from textual.widgets.markdown import MarkdownStream

    from mlxchat.ui.widgets import message
    from mlxchat.ui.widgets.code_stream import AnswerStream, FenceTracker

    class NoFences(FenceTracker):
        def feed(self, fragment: str) -> None:
            self.text += fragment

        def safe_end(self) -> int:
            return len(self.text)

    def budget_only(markdown, code, **kwargs):
        stream = AnswerStream(markdown, code, **kwargs)
        stream.fences = NoFences()
        return stream

    def markdown_stream(markdown, code, **_kwargs):
        stream = MarkdownStream(markdown)
        stream.start()
        return stream

    if name not in STREAM_VARIANTS:
        raise ValueError(f"unknown stream variant {name!r}; one of {', '.join(STREAM_VARIANTS)}")
    original = message.AnswerStream
    message.AnswerStream = {"code-stream": original, "frame-budget": budget_only, "markdown-stream": markdown_stream}[name]
    try:
        yield
    finally:
        message.AnswerStream = original


@contextmanager
def layout_echo(on: bool = True):
    """With `on`, the widgets that declare `laid_out_virtual_size` take Textual's own `virtual_size` back while the
    block is active: a layout pass that resizes them asks for another, as before round 11 (`ui_bench
    --layout-echo`: what the change bought, measured beside it). Apps in this process only: the launch probe's
    `mlxchat` runs in a process of its own, as shipped."""
    from textual.widget import Widget

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    textual_own = Widget.__dict__["virtual_size"]
    changed = [cls for cls in set(subclasses(Widget)) if "virtual_size" in cls.__dict__ and not cls.__dict__["virtual_size"]._layout]
    originals = {cls: cls.__dict__["virtual_size"] for cls in changed}
    if on:
        for cls in changed:
            cls.virtual_size = textual_own
    try:
        yield [cls.__name__ for cls in changed]
    finally:
        for cls, reactive_ in originals.items():
            cls.virtual_size = reactive_


@contextmanager
def typing_first(on: bool = True):
    """With `on` off, the answer's updates never wait for a typed key's frame while the block is active
    (`AnswerStream.key_frame_s` 0: `ui_bench --no-give-way`, what typing first buys, measured beside it)."""
    from mlxchat.ui.widgets.code_stream import AnswerStream

    shipped = AnswerStream.key_frame_s
    if not on:
        AnswerStream.key_frame_s = 0.0
    try:
        yield
    finally:
        AnswerStream.key_frame_s = shipped


# ---- decode through the TUI ---------------------------------------------------------------------------------


async def tui_decode_once(spec: str | None, config: UIBenchConfig) -> dict[str, Any]:
    """One answer through a freshly launched app (see `tui_decode_rounds`)."""
    ((_, run),) = await tui_decode_rounds(spec, config, [lambda: None])
    return run


async def tui_decode_rounds(
    spec: str | None, config: UIBenchConfig, befores: list, after_each=lambda before_result, run: None, closing=None
) -> list[tuple[Any, dict[str, Any]]]:
    """One app launch, one answer per callable in `befores`, each in a new conversation: `before()` runs first
    (the raw run of a round, on this thread: the app waits idle meanwhile), then the prompt is typed and sent.
    Returns (what `before` returned, the answer's measures) per round, each also handed to `after_each` as it ends
    (a run cut short keeps its rounds). `closing()`, if given, runs after the last answer with the app still open
    (the raw run that brackets the last round from after).

    One launch for many rounds (`ui_bench --one-launch`) puts each round's raw run seconds, not a child start
    (14-18 s on the H200 host), before its TUI run, and fits twice the rounds in the same device time."""
    from mlxchat.engine import Finished

    tee = EventTee(config.answer)
    app = _app(spec, config.decode_tokens, tee)
    rounds: list[tuple[Any, dict[str, Any]]] = []
    with _drawn_text() as drawn:
        async with app.run_test(size=config.size) as pilot:
            await _loaded(pilot, config.load_timeout_s)
            for index, before in enumerate(befores):
                if index:
                    await app.chat.action_new_conversation()
                    await pilot.pause()
                earlier = {e.request_id for _, e in tee.events if isinstance(e, Finished)}
                before_result = before()
                run = await _answer_once(app, pilot, drawn, config)
                request_id = next(
                    e.request_id for _, e in tee.events
                    if isinstance(e, Finished) and e.request_id.startswith("chat") and e.request_id not in earlier
                )
                run.update(_engine_measures(tee, request_id, run.pop("_shown"), run.pop("_text")))
                run["ui_cpu_ms_per_text_event"] = run["ui_cpu_s"] * 1000 / max(1, run["text_events"])
                rounds.append((before_result, run))
                after_each(before_result, run)
            if closing is not None:
                closing()
    return rounds


async def _answer_once(app, pilot, drawn: "DrawnText", config: UIBenchConfig) -> dict[str, Any]:
    """Send the decode prompt and follow its answer to the last frame that draws it."""
    mark = drawn.mark()
    recorder = FrameRecorder(app)
    shown: list[tuple[float, int]] = []  # (frame time, characters of the answer drawn by then)

    def on_frame(at: float, _frame: str) -> bool:
        chars = drawn.chars_since(mark)
        if not shown or chars > shown[-1][1]:
            shown.append((at, chars))
        return False

    recorder.watch(on_frame)
    app.chat.prompt.insert(DECODE_PROMPT)
    # CPU time of this (the UI) thread while the answer streams: Python here holds the GIL the owner
    # thread needs between tokens.
    ui_cpu_started, wall_started = time.thread_time(), time.perf_counter()
    await pilot.press("enter")
    await _until(pilot, lambda: not app.chat.busy, config.load_timeout_s, "the answer")
    ui_cpu_s, wall_s = time.thread_time() - ui_cpu_started, time.perf_counter() - wall_started
    answer = app.chat.session.turns[-1]
    await _until(pilot, lambda: shown and shown[-1][1] >= len(answer.text), 10, "the last frame")
    recorder.close()
    model = app.chat.model  # the status pane holds it: read it while the app runs
    return {
        "frames": len(recorder.frames),
        "ui_cpu_s": ui_cpu_s,
        "ui_busy_fraction": ui_cpu_s / wall_s if wall_s else float("nan"),
        "ui_cpu_ms_per_frame": ui_cpu_s * 1000 / max(1, len(recorder.frames)),
        "serialise_ms_p50": median(recorder.serialise_s) * 1000,
        "model_size_bytes": model.size_bytes,
        "model_name": model.name,
        "model_path": model.path,
        "_shown": shown,
        "_text": answer.text,
    }


def _engine_measures(tee: EventTee, request_id: str, shown: list[tuple[float, int]], shown_text: str) -> dict[str, Any]:
    from mlxchat.engine import Finished, TextDelta

    finished = tee.of(request_id, Finished)[0][1]
    emitted = [(at, e) for at, e in tee.of(request_id, TextDelta)]
    deltas = [e for _, e in emitted]
    return {
        **_rendered_speed(deltas, shown, finished.text),
        "events_tps": _event_speed(emitted),
        "engine_tps": finished.stats.decode_tps,
        "tokens": finished.stats.generation_tokens,
        "peak_memory_bytes": finished.stats.peak_memory_bytes,
        "text_events": len(deltas),
        "shown_text_matches": shown_text == finished.text,
    }


def _rendered_speed(deltas, shown: list[tuple[float, int]], full_text: str) -> dict[str, Any]:
    """Tokens ÷ time between the first and the last frame that drew answer text.

    The widget's text may lack a prefix of the engine's text (events the screen did not take); widget character
    c is then engine character c + `missing_chars`, and tokens are counted from the engine's deltas."""
    drawn_total = shown[-1][1] if shown else 0
    missing = max(0, len(full_text) - drawn_total)
    marks, chars, tokens = [], 0, 0
    for delta in deltas:
        chars += len(delta.text)
        tokens += delta.tokens
        marks.append((chars, tokens))

    def tokens_at(widget_chars: int) -> int:
        engine_chars = widget_chars + missing
        return max([t for c, t in marks if c <= engine_chars], default=0)

    drawn = [(at, c) for at, c in shown if c > 0]
    if len(drawn) < 2:
        return {"rendered_tps": float("nan"), "missing_chars": missing}
    (first_at, first_chars), (last_at, last_chars) = drawn[0], drawn[-1]
    counted = tokens_at(last_chars) - tokens_at(first_chars)
    return {"rendered_tps": counted / (last_at - first_at), "missing_chars": missing, "render_span_s": last_at - first_at}


def _event_speed(emitted) -> float:
    if len(emitted) < 2:
        return float("nan")
    tokens = sum(e.tokens for _, e in emitted[1:])
    return tokens / (emitted[-1][0] - emitted[0][0])


# ---- keypress → repaint ---------------------------------------------------------------------------------------


CODE_BUCKETS = ((0, 50), (50, 200), (200, 10**9))
"""Lines of an open code fence at the press, as the issue grouped them (0–49, 50–199, 200+)."""


def rate_label(rate: float | None) -> str:
    return "own" if not rate else f"{rate:g}tps"


_MOVE_TO = re.compile(r"\x1b\[(\d+);(\d+)H")


def frame_rows(frame: str) -> dict[int, str]:
    """The text a serialised frame writes on each screen row (0-based), escape sequences removed.

    A compositor update writes each changed line's chops after a cursor move to their start (`ESC [ y ; x H`);
    the text up to the next move belongs to that row."""
    from mlxchat.bench.pty_app import strip_escapes

    rows: dict[int, str] = {}
    moves = list(_MOVE_TO.finditer(frame))
    for move, following in zip(moves, [*moves[1:], None]):
        text = frame[move.end() : following.start() if following is not None else len(frame)]
        row = int(move.group(1)) - 1
        rows[row] = rows.get(row, "") + strip_escapes(text.encode())
    return rows


class KeyProbe:
    """Presses keys in the chat's prompt the way a terminal's keys arrive, and times each until it is painted.

    A key goes through the driver's `send_message`, as the terminal driver's input thread sends it, and nothing
    waits for the app to settle (`Pilot.press` waits for every widget's queue after each key: with a streaming
    answer that wait took longer than the repaint, so few keys were measured). The key counts as repainted at the
    first frame, serialised to the escape sequences a terminal would be sent, that writes the prompt's rows
    holding the whole typed line while the prompt holds it."""

    def __init__(self, app, recorder: FrameRecorder, timeout_s: float = 5.0) -> None:
        self.app, self.recorder, self.timeout_s = app, recorder, timeout_s
        self.typed = ""

    def clear(self) -> None:
        self.app.chat.prompt.clear()
        self.typed = ""

    async def press(self, letter: str) -> float | None:
        """Seconds from sending `letter` to the frame that shows it; None when none did within the timeout."""
        from textual import events

        prompt = self.app.chat.prompt
        expected = self.typed = self.typed + letter
        painted = asyncio.Event()
        latency: list[float] = []
        pressed_at = 0.0

        def on_frame(at: float, frame: str) -> bool:
            if painted.is_set():
                return True  # given up on: drop the watcher
            if prompt.text != expected:
                return False
            region = prompt.content_region
            rows = frame_rows(frame)
            if any(expected in rows.get(row, "") for row in range(region.y, region.bottom)):
                latency.append(at - pressed_at)
                painted.set()
                return True
            return False

        self.recorder.watch(on_frame)
        key = events.Key(letter, letter)
        key.set_sender(self.app)
        pressed_at = time.perf_counter()
        self.app._driver.send_message(key)  # the terminal driver's own path into the app's queue
        try:
            await asyncio.wait_for(painted.wait(), self.timeout_s)
        except TimeoutError:
            painted.set()
            return None
        return latency[0]


SLOWEST_PRESSES = 5
"""How many of the slowest presses the keypress probe reports with where they landed: a p99 over ~200 presses is
the second slowest, so these say which part of the answer sets it."""


def answer_place(text: str, fence_lines: int | None) -> str:
    """Where in the streamed answer a press landed: in the open fence (its lines so far), or before or after fences,
    by the characters streamed (a press just after a long fence closes waits behind its handover to the Markdown)."""
    if fence_lines is not None:
        return f"fence at {fence_lines} lines"
    closed = sum(1 for line in text.split("\n") if line.startswith(("```", "~~~"))) // 2
    return f"{'after' if closed else 'before'} the fence, {len(text)} chars"


async def keypress_latencies(spec: str | None, config: UIBenchConfig, rate: float | None = None) -> dict[str, Any]:
    """Keypress → repaint while answers stream at `rate` tok/s (None: the model's own speed), by `KeyProbe`.

    With a forced answer the probe runs through one whole answer, so presses land in the paragraphs, the table
    and every part of the 500-line code block; each press is filed by the lines its open fence held then. Keys
    follow each other like a typist's: the next is sent 30–150 ms (random) after the last was painted."""
    tee = EventTee(config.answer)
    rng = random.Random(6)
    latencies: list[float] = []
    in_code: list[tuple[int, float]] = []  # (lines of the open fence at the press, latency)
    placed: list[tuple[float, str]] = []  # (latency, where in the answer the press landed): the slowest are reported
    misses = 0
    answers = 0
    with paced(rate):
        app = _app(spec, config.key_max_tokens, tee)  # in the pace: an engine process takes it when it is made
        async with app.run_test(size=config.size) as pilot:
            await _loaded(pilot, config.load_timeout_s)
            recorder = FrameRecorder(app)
            probe = KeyProbe(app, recorder)
            chat = app.chat

            async def streaming() -> bool:
                """Start an answer when none streams; False once the forced answer has streamed in full."""
                nonlocal answers
                if chat.busy:
                    return True
                if config.answer is not None and answers:
                    return False
                answers += 1
                chat.prompt.clear()
                chat.prompt.insert(DECODE_PROMPT)
                await pilot.press("enter")
                await _until(pilot, lambda: chat.status.phase == "generating", config.load_timeout_s, "generation")
                probe.clear()
                return True

            while config.answer is not None or len(latencies) + misses < config.key_probes:
                if not await streaming():
                    break
                if len(probe.typed) >= config.size[0] // 2:
                    probe.clear()
                text = chat.session.turns[-1].text if chat.session.turns else ""
                fence_lines = code_fence_lines(text)
                latency = await probe.press(rng.choice(PROBE_LETTERS))
                if latency is None:
                    misses += 1
                else:
                    latencies.append(latency)
                    placed.append((latency, answer_place(text, fence_lines)))
                    if fence_lines is not None:
                        in_code.append((fence_lines, latency))
                await asyncio.sleep(rng.uniform(0.03, 0.15))
            if chat.busy:
                chat.cancel()
                await _until(pilot, lambda: not chat.busy, 60, "the cancelled answer")
            recorder.close()
    from mlxchat.engine import Finished

    finished = [e for _, e in tee.events if isinstance(e, Finished) and e.stats is not None]
    label = rate_label(rate)
    numbers: dict[str, Any] = {
        "mlx_peak_memory_bytes": max((e.stats.peak_memory_bytes for e in finished), default=0),
        f"key_{label}_decode_tps": median([e.stats.decode_tps for e in finished if e.stats.generation_tokens > 1]),
        f"key_{label}_p50_ms": percentile(latencies, 50) * 1000,
        f"key_{label}_p99_ms": percentile(latencies, 99) * 1000,
        f"key_{label}_max_ms": max(latencies, default=float("nan")) * 1000,
        f"key_{label}_probes": len(latencies),
        f"key_{label}_missed": misses,
        f"key_{label}_code_p50_ms": percentile([lat for _, lat in in_code], 50) * 1000,
        f"key_{label}_code_p99_ms": percentile([lat for _, lat in in_code], 99) * 1000,
        f"key_{label}_code_probes": len(in_code),
        f"key_{label}_slowest": [[round(lat * 1000, 1), where] for lat, where in sorted(placed, reverse=True)[:SLOWEST_PRESSES]],
    }
    for low, high in CODE_BUCKETS:
        bucket = [lat for lines, lat in in_code if low <= lines < high]
        name = f"{low}-{high - 1}" if high < 10**9 else f"{low}+"
        numbers[f"key_{label}_code_{name}_p50_ms"] = percentile(bucket, 50) * 1000
        numbers[f"key_{label}_code_{name}_p99_ms"] = percentile(bucket, 99) * 1000
        numbers[f"key_{label}_code_{name}_probes"] = len(bucket)
    return numbers


# ---- an image turn --------------------------------------------------------------------------------------------


async def image_turn(vision_model: str, config: UIBenchConfig, image: Path) -> dict[str, Any]:
    from mlxchat.engine import Finished

    tee = EventTee()  # the vision model answers freely: the measure is the image turn, not the text
    app = _app(vision_model, 32, tee)
    with _drawn_text() as drawn:
        async with app.run_test(size=config.size) as pilot:
            await _loaded(pilot, config.load_timeout_s)
            chat = app.chat
            chat.prompt.insert(f"/attach {image}")
            await pilot.press("enter")
            await _until(pilot, lambda: bool(chat.attachments), 10, "the attachment")
            recorder = FrameRecorder(app)
            drawn_at: list[float] = []  # the frame that drew the whole answer (`drawn` counts what is drawn)
            recorder.watch(lambda at, _f: bool(
                chat.session.turns and chat.session.turns[-1].status != "streaming"
                and drawn.chars >= len(chat.session.turns[-1].text)
                and not drawn_at.append(at)))
            chat.prompt.insert(IMAGE_QUESTION)
            sent_at = time.perf_counter()
            await pilot.press("enter")
            await _until(pilot, lambda: not chat.busy and bool(drawn_at), 120, "the image answer")
            recorder.close()
            model = chat.model
    request_id = next(e.request_id for _, e in tee.events if isinstance(e, Finished) and e.request_id.startswith("chat"))
    finished_at, finished = tee.of(request_id, Finished)[0]
    stats = finished.stats
    return {
        "image_turn_s": drawn_at[0] - sent_at,
        "image_turn_engine_s": finished_at - sent_at,
        "image_ttft_s": stats.ttft_s,
        "image_decode_tps": stats.decode_tps,
        "image_tokens": stats.generation_tokens,
        "image_prompt_tokens": stats.prompt_tokens,
        "image_finish": finished.reason,
        "image_error": finished.error,
        "vision_model_size_bytes": model.size_bytes,
    }


def photo(folder: Path) -> Path:
    """A 1024×768 photo-like PNG (gradients and shapes), the size of a typical screenshot or phone picture."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1024, 768))
    draw = ImageDraw.Draw(image)
    for y in range(768):
        draw.line([(0, y), (1024, y)], fill=(255 - y // 3, 90 + y // 5, 60 + y // 4))
    draw.ellipse([380, 420, 640, 680], fill=(255, 210, 80))
    draw.rectangle([60, 500, 300, 760], fill=(30, 40, 60))
    path = folder / "photo.png"
    image.save(path)
    return path


# ---- launch → first frame, in a real terminal -------------------------------------------------------------------


def launch_to_first_frame(spec: str | None, trials: int, size: tuple[int, int], folder: Path) -> dict[str, Any]:
    """Spawn `mlxchat [--model spec]` in a pty `trials` times; time the first frame and the model load, then
    quit with Ctrl+Q. Config and data folders are empty temporary ones (the cache, with the demo model, is kept).

    An installed mlxchat has its bytecode compiled (pip compiles at install), but a benchmark machine may set
    PYTHONDONTWRITEBYTECODE, and then every launch compiles every module again (~0.2 s here, more on a slow file
    system). So the launches write and read bytecode in the bench's folder, filled by one untimed launch first."""
    from .pty_app import ALT_SCREEN, CTRL_Q, PtyApp, mlxchat_command

    args = ("--model", spec) if spec else ()

    def launch(name: str) -> PtyApp:
        env = {
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str(folder / "bytecode"),
            "MLXCHAT_CONFIG_DIR": str(folder / f"config-{name}"),
            "MLXCHAT_DATA_DIR": str(folder / f"data-{name}"),
        }
        return PtyApp(mlxchat_command(*args), env=env, columns=size[0], rows=size[1])

    with launch("warm-up") as app:
        app.wait_for(WELCOME_TEXT, 60)  # leaving the block kills it: only the bytecode was wanted
    first, alt, ready, codes = [], [], [], []
    for trial in range(trials):
        with launch(str(trial)) as app:
            alt.append(app.wait_for(ALT_SCREEN, 30, plain=False) - app.started_at)
            first.append(app.wait_for(WELCOME_TEXT, 30) - app.started_at)
            ready.append(app.wait_for("● ready", 600) - app.started_at)
            app.send(CTRL_Q)
            codes.append(app.wait(60))
    return {
        "launch_first_frame_s": median(first),
        "launch_first_frame_max_s": max(first),
        "launch_alt_screen_s": median(alt),
        "launch_model_ready_s": median(ready),
        "launch_exit_codes": codes,
    }


# ---- raw mlx-lm and the whole run -----------------------------------------------------------------------------


class RawMlxLm:
    """Plain mlx-lm on this (main) thread with its own copy of the model; it runs only while no app (and so no
    engine) is running, never beside one. With `answer`, each run forces that text with the same `ForcedTokens`
    processor the engine uses, so both sides do identical work."""

    def __init__(self, model_path: str, answer: str | None = None) -> None:
        from mlx_lm import load

        from mlxchat.engine import ChatRequest, Message
        from mlxchat.engine.local.chat_template import render_prompt
        from mlxchat.engine.local.loader import fit_to_device

        self.model, self.tokenizer = load(model_path)
        fit_to_device(self.model)
        # The tokens the engine renders for the same user message: its chat template, no extra specials.
        self.prompt = render_prompt(self.tokenizer, ChatRequest((Message("user", DECODE_PROMPT),)))
        self.forced = forced_ids(self.tokenizer, answer) if answer is not None else None

    def decode_tps(self, max_tokens: int) -> float:
        from mlx_lm import stream_generate

        from mlxchat.engine.local.scripted import ForcedTokens

        processors = [ForcedTokens(*self.forced)] if self.forced is not None else None
        times = [
            time.perf_counter()
            for _ in stream_generate(self.model, self.tokenizer, self.prompt, max_tokens=max_tokens, logits_processors=processors)
        ]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def release(self) -> None:
        import gc

        import mlx.core as mx

        del self.model, self.tokenizer
        gc.collect()
        mx.clear_cache()
