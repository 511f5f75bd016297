"""Provides `StagedEngine`: the tests' scripted engine — the `EngineClient` API with no thread and no MLX — and
the scenes that drive an app on it to each visible state, for snapshots and screenshots.

Snapshot tests and `scripts/screenshots.py` need every visible state drawn the same way on every run, which a
real model on a shared CPU cannot give (timings, memory, token counts). The staged engine accepts or refuses
requests like the real one and plays *real engine event types* into the app through the same sink, so what is
drawn is what the real event sequence draws. The scenes below are shared by the tests and the script, which
imports this module with `tests/` on its path: it is test code, not part of the installed package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from mlxchat.engine import (
    Busy,
    Draining,
    EngineState,
    Event,
    Finished,
    ModelInfo,
    ModelLoaded,
    ModelLoading,
    PrefillProgress,
    Silence,
    Started,
    Stats,
    TextDelta,
    Usage,
)

TINY_INFO = ModelInfo(
    name="SmolLM2-135M-Instruct",
    path="/models/SmolLM2-135M-Instruct",
    kind="text",
    quantization="4-bit",
    size_bytes=114_000_000,
    context_size=8192,
)
VISION_INFO = ModelInfo(
    name="SmolVLM-256M-Instruct",
    path="/models/SmolVLM-256M-Instruct",
    kind="vision",
    quantization="4-bit",
    size_bytes=180_000_000,
    context_size=8192,
)
REMOTE_INFO = ModelInfo(
    name="qwen3-8b",
    path="qwen3-8b",
    kind="remote",
    quantization="",
    size_bytes=0,
    context_size=8192,
    endpoint="http://127.0.0.1:8080/v1",
)
THINKING_INFO = replace(TINY_INFO, name="Qwen3-0.6B", thinking="<think> tags", thinking_switch=True)
"""A reasoning model: Qwen3-style `<think>` tags and a thinking switch."""

ANSWER = (
    "Paris is the capital of France. Here is how you could look it up in Python:\n\n"
    "```python\ncapitals = {\"France\": \"Paris\", \"Italy\": \"Rome\"}\nprint(capitals[\"France\"])\n```\n\n"
    "It has been the capital since the 10th century, apart from a few short periods."
)


@dataclass
class StagedEngine:
    """Accepts requests (or refuses them while `active` is set) and lets the caller emit events. An
    `EngineClient`, like the local and remote engines."""

    sink: Callable[[Event], None]
    submitted: list = field(default_factory=list)
    prepared: list = field(default_factory=list)
    """The `PrepareConversation` hints the screen gave (they are never refused and make no one busy)."""
    active: object | None = None
    phase: str = "idle"
    busy_elapsed_s: float = 1.4

    def start(self) -> "StagedEngine":
        return self

    def submit(self, request) -> Busy | None:
        if self.active is not None:
            active_kind = kind_of(self.active)
            # Numbered per engine, not per process, so a snapshot does not depend on which tests ran before it.
            active_name = f"{active_kind}-{len(self.submitted)}"
            label = self.active.label if active_kind == "chat" else (self.active.model or "the demo model")
            return Busy(request.request_id, active_name, active_kind, self.phase, self.busy_elapsed_s, label)
        self.submitted.append(request)
        self.active = request
        self.phase = "loading" if kind_of(request) == "load" else "prefill"
        return None

    def prepare(self, hint) -> None:
        self.prepared.append(hint)

    def cancel(self, request_id: str | None = None, *, reason: str = "cancel") -> bool:
        if self.active is None:
            return False
        if self.phase != "draining":
            self.phase = "draining"
            self.sink(Draining(self.active.request_id, "shutdown" if reason == "shutdown" else "cancel"))
        return True

    def finish(self, reason: str = "stop", **fields) -> None:
        """End the active request with its one `Finished`."""
        request, self.active, self.phase = self.active, None, "idle"
        self.sink(Finished(request.request_id, reason, **fields))

    def emit(self, event: Event) -> None:
        self.sink(event)

    def state(self) -> EngineState:
        rid = getattr(self.active, "request_id", None)
        return EngineState(self.phase if rid else "idle", rid, None, 0.0, None)

    def waiting_on(self) -> str | None:
        return None if self.active is None else f"{self.active.request_id} ({self.phase})"

    def close(self, timeout_s: float = 30.0) -> bool:
        return True

    @property
    def last_request_id(self) -> str:
        return self.submitted[-1].request_id


def app_on_staged_engine(**options):
    """(app, engine): the real app (`make_app(**options)`, animation off unless `options` say otherwise) on a
    `StagedEngine`, which the app makes as it is built."""
    from mlxchat.ui.app import make_app

    made: list[StagedEngine] = []

    def factory(sink) -> StagedEngine:
        made.append(StagedEngine(sink))
        return made[-1]

    options.setdefault("animate", False)
    app = make_app(engine_factory=factory, **options)
    return app, made[0]


def kind_of(request) -> str:
    return "chat" if type(request).__name__ == "ChatRequest" else "load"


def stats_for(request_id: str, tokens: int, prompt_tokens: int = 42) -> Stats:
    """Fixed, plausible numbers (a 135M model on a laptop), so snapshots never see real timings."""
    return Stats(
        request_id=request_id,
        ttft_s=0.31,
        prompt_tokens=prompt_tokens,
        cached_tokens=0,
        prompt_tps=135.0,
        generation_tokens=tokens,
        decode_tps=48.2,
        peak_memory_bytes=162_000_000,
        context_used=prompt_tokens + tokens,
        context_size=8192,
    )


# ---- scenes: each drives an app built with a StagedEngine to one visible state -------------------------------


def play_loading(engine: StagedEngine) -> None:
    rid = engine.last_request_id
    engine.emit(ModelLoading(rid, "demo model", "Reading weights of SmolLM2-135M-Instruct", 0.4))


def play_loaded(engine: StagedEngine, info: ModelInfo = TINY_INFO) -> None:
    rid = engine.last_request_id
    engine.emit(ModelLoading(rid, "demo model", "Fitting weights to the device", 0.8))
    engine.emit(ModelLoaded(rid, info, 0.5))
    engine.finish("stop")


def play_answer_start(engine: StagedEngine, text: str, tokens: int) -> None:
    """Started, prefill done, and `text` streamed: the state of an answer in the middle of generating."""
    rid = engine.last_request_id
    engine.phase = "generating"
    engine.emit(Started(rid, 42, 0, "text"))
    engine.emit(PrefillProgress(rid, 42, 42))
    engine.emit(TextDelta(rid, text, tokens))
    engine.emit(stats_for(rid, tokens))


def play_answer_end(engine: StagedEngine, text: str, tokens: int, reason: str = "stop") -> None:
    rid = engine.last_request_id
    stats = stats_for(rid, tokens)
    engine.emit(stats)
    engine.finish(reason, text=text, usage=Usage(42, 0, tokens), stats=stats)


def half_of(text: str) -> str:
    return text[: len(text) // 2]


def sample_images(folder: Path) -> list[Path]:
    """Two small, recognisable images (a gradient and a flag), written with Pillow."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    sunset = Image.new("RGB", (640, 480))
    draw = ImageDraw.Draw(sunset)
    for y in range(480):
        draw.line([(0, y), (640, y)], fill=(255 - y // 3, 90 + y // 4, 60 + y // 3))
    draw.ellipse([240, 260, 400, 420], fill=(255, 210, 80))
    flag = Image.new("RGB", (300, 200), (255, 255, 255))
    ImageDraw.Draw(flag).rectangle([0, 0, 100, 200], fill=(0, 85, 164))
    ImageDraw.Draw(flag).rectangle([200, 0, 300, 200], fill=(239, 65, 53))
    paths = [folder / "sunset.png", folder / "flag.png"]
    sunset.save(paths[0])
    flag.save(paths[1])
    return paths


# ---- scenes as a user sees them: coroutines that take a Textual pilot and the app's staged engine -------------

QUESTION = "What is the capital of France?"


async def until(pilot, condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds (it changes only as the app handles messages)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}; {_describe(pilot.app)}")
        await pilot.pause(0.02)


def _describe(app) -> str:
    chat = getattr(app, "chat", None)
    if chat is None:
        return ""
    engine = getattr(app, "engine", None)
    waiting = engine.waiting_on() if engine is not None else None
    return f"status {chat.status.phase!r} ({chat.status.detail!r}), waiting on {chat.active}, engine: {waiting}"


async def loading_scene(pilot, engine: StagedEngine) -> None:
    await until(pilot, lambda: bool(engine.submitted), what="the load request")
    play_loading(engine)
    await until(pilot, lambda: pilot.app.chat.status.progress == 0.4, what="the progress")


async def loaded_scene(pilot, engine: StagedEngine, info: ModelInfo = TINY_INFO) -> None:
    await until(pilot, lambda: bool(engine.submitted), what="the load request")
    play_loaded(engine, info)
    await until(pilot, lambda: pilot.app.chat.model is not None and not pilot.app.chat.busy, what="the load")


async def ask(pilot, text: str = QUESTION) -> None:
    await pilot.press(*text, "enter")
    await until(pilot, lambda: pilot.app.chat.busy and pilot.app.chat.active.kind == "chat", what="the send")


async def prefilled_scene(pilot, engine: StagedEngine, info: ModelInfo = TINY_INFO, question: str = QUESTION) -> str:
    """`question` asked of `info` and its 42-token prompt read; nothing generated yet. Returns the request id."""
    await loaded_scene(pilot, engine, info)
    await ask(pilot, question)
    rid = engine.last_request_id
    engine.emit(Started(rid, 42, 0, "text"))
    engine.emit(PrefillProgress(rid, 42, 42))
    return rid


async def streaming_scene(pilot, engine: StagedEngine) -> None:
    await loaded_scene(pilot, engine)
    await ask(pilot)
    play_answer_start(engine, half_of(ANSWER), 24)
    await until(pilot, lambda: pilot.app.chat.status.phase == "generating", what="generating")


async def draining_scene(pilot, engine: StagedEngine) -> None:
    """Esc pressed mid-answer; the app's injected clock (a one-item list) is moved 1.2 s on."""
    await streaming_scene(pilot, engine)
    await pilot.press("escape")
    pilot.app.test_clock[0] += 1.2
    chat = pilot.app.chat
    chat.status_bar.status = chat.status  # redraw the elapsed time with the moved clock


async def stopped_scene(pilot, engine: StagedEngine) -> None:
    await draining_scene(pilot, engine)
    play_answer_end(engine, half_of(ANSWER), 24, reason="cancelled")
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


async def busy_scene(pilot, engine: StagedEngine) -> None:
    await draining_scene(pilot, engine)
    await pilot.press(*"And Italy?", "enter")


async def reading_elsewhere_scene(pilot, engine: StagedEngine) -> None:
    """The answer streams on in its conversation while the reader starts a new chat (titles need a history)."""
    await streaming_scene(pilot, engine)
    await pilot.press("ctrl+n")
    await until(pilot, lambda: pilot.app.chat.status.answering_in is not None, what="the new chat")


async def silent_server_scene(pilot, engine: StagedEngine) -> None:
    """Half an answer from a server that has said nothing more for 4 s (a remote engine reports no memory)."""
    await loaded_scene(pilot, engine, REMOTE_INFO)
    await ask(pilot)
    rid = engine.last_request_id
    engine.phase = "generating"
    engine.emit(Started(rid, 42, 0, "text"))
    engine.emit(TextDelta(rid, half_of(ANSWER), 24))
    engine.emit(replace(stats_for(rid, 24), peak_memory_bytes=0))
    engine.emit(Silence(rid, 4.2))
    await until(pilot, lambda: pilot.app.chat.status.silent_s is not None, what="the silence")


async def answered_scene(pilot, engine: StagedEngine) -> None:
    await loaded_scene(pilot, engine)
    await ask(pilot)
    play_answer_start(engine, ANSWER, 61)
    play_answer_end(engine, ANSWER, 61)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


async def attachments_scene(pilot, engine: StagedEngine, images: list[Path]) -> None:
    from textual import events

    await loaded_scene(pilot, engine, VISION_INFO)
    pilot.app.post_message(events.Paste(" ".join(str(path) for path in images) + " compare these"))
    await until(pilot, lambda: len(pilot.app.chat.attachments) == len(images), what="the attachments")


async def help_scene(pilot, engine: StagedEngine) -> None:
    await loaded_scene(pilot, engine)
    await pilot.press("f1")


EXAMPLE_CONVERSATIONS = (
    ("How do I reverse a list in Python?", "Use `reversed(items)` or `items[::-1]`."),
    ("What is in this picture?", "A sunset over the sea."),
    ("Plan a weekend in Lisbon", "Day one: Alfama and the castle…"),
)


def example_history(folder: Path):
    """A history in `folder` holding three short conversations, for the conversation-list pictures."""
    from mlxchat.store import History

    history = History(folder)
    for question, reply in EXAMPLE_CONVERSATIONS:
        conversation = history.create_conversation()
        history.add_message(conversation.id, "user", question)
        history.add_message(conversation.id, "assistant", reply)
    return history
