"""The chat app on the real engine for the stress tests, and bounded waits on states it reaches by itself.

Every wait is for a condition the app reaches by handling engine events, with a bound; `pilot.pause()` alone does
not wait for the engine's owner thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import events

from mlxchat.engine import Engine, Event
from mlxchat.settings import ChatSettings
from mlxchat.ui.app import MlxChatApp, make_app
from staged import until  # noqa: F401 (re-exported)

SIZE = (100, 32)


class RealApps:
    """Builds apps on a real `Engine`; keeps every event the engines emit (in `events`) and closes them all."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.engines: list[Engine] = []

    def __call__(self, model: str | Path | None, *, max_tokens: int = 200, **options) -> MlxChatApp:
        def engine_factory(sink):
            def tee(event: Event) -> None:
                self.events.append(event)
                sink(event)

            engine = Engine(tee)
            self.engines.append(engine)
            return engine

        spec = None if model is None else str(model)
        options.setdefault("chat_settings", ChatSettings(temperature=0.0, max_tokens=max_tokens, model=spec))
        return make_app(model=spec, engine_factory=engine_factory, **options)

    def close(self) -> None:
        for engine in self.engines:
            engine.close(timeout_s=30)


async def settled_load(pilot, timeout_s: float = 60.0) -> None:
    """Wait until the app's model load has finished, loaded or failed."""
    chat = pilot.app.chat
    await until(pilot, lambda: not chat.busy and chat.status.phase not in ("starting", "loading"), timeout_s, "the load")


async def loaded(pilot, timeout_s: float = 60.0) -> None:
    await settled_load(pilot, timeout_s)
    assert pilot.app.chat.model is not None, pilot.app.chat.status


async def idle(pilot, timeout_s: float = 60.0) -> None:
    chat = pilot.app.chat
    await until(pilot, lambda: not chat.busy, timeout_s, "the engine's Finished")


async def type_text(pilot, text: str) -> None:
    """Put `text` in the prompt as typing would leave it (inserting is much faster than a key per character)."""
    pilot.app.chat.prompt.insert(text)
    await pilot.pause()


async def paste(pilot, text: str) -> float:
    """Paste `text` the way a terminal does (bracketed paste → `Paste` event to the focused widget); returns
    the seconds until the app had handled it."""
    started = time.perf_counter()
    pilot.app.post_message(events.Paste(text))
    await pilot.pause()
    await until(pilot, lambda: not pilot.app.chat.attaching, what="the attachment")  # files are read off the loop
    return time.perf_counter() - started


async def send(pilot, text: str) -> None:
    await type_text(pilot, text)
    await pilot.press("enter")
    await until(pilot, lambda: not pilot.app.chat.attaching, what="the attachment")  # /attach reads off the loop


async def answer_works(pilot, question: str = "still there?", timeout_s: float = 60.0) -> None:
    """The app is alive: a fresh question gets a complete answer from the engine."""
    chat = pilot.app.chat
    chat.prompt.clear()
    before = len(chat.session.turns)
    await send(pilot, question)
    await until(pilot, lambda: len(chat.session.turns) >= before + 2 and not chat.busy, timeout_s, "an answer")
    answer = chat.session.turns[-1]
    assert answer.role == "assistant" and answer.status == "complete", (answer.status, answer.error)
