"""UI test helpers: apps on the real engine with the tiny model, apps on the staged engine, and test images.

Waiting is always for a condition the app reaches by handling engine events (bounded), never a bare sleep:
`pilot.pause()` does not wait for the engine's owner thread.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlxchat.engine import Engine, Event
from mlxchat.settings import ChatSettings
from mlxchat.ui.app import MlxChatApp, make_app
from staged import StagedEngine, app_on_staged_engine, loaded_scene, sample_images, until  # noqa: F401 (re-exported)

SIZE = (100, 32)


class Gate:
    """Holds the engine's owner thread inside its sink, standing in for one slow decode step.

    With the tiny model a drain lasts about a millisecond, too short to act in. While the gate is closed, the
    owner thread blocks in the next event it emits, so the engine stays active (and draining after a cancel)
    until the test opens the gate. Events emitted on other threads (`Draining`, from `cancel`) pass.
    """

    def __init__(self) -> None:
        self.closed = False
        self._open = threading.Event()
        self.holding = threading.Event()

    def close(self) -> None:
        self._open.clear()
        self.closed = True

    def open(self) -> None:
        self.closed = False
        self._open.set()

    def pass_through(self, owner: threading.Thread) -> None:
        if self.closed and threading.current_thread() is owner:
            self.holding.set()
            self._open.wait(timeout=60)


class RealAppFactory:
    """Builds apps on a real `Engine` with the tiny model; every event is also kept in `events`."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.events: list[Event] = []
        self.gate = Gate()
        self.engines: list[Engine] = []

    def __call__(self, max_tokens: int = 4000, **options) -> MlxChatApp:
        def engine_factory(sink):
            holder: dict[str, Engine] = {}

            def tee(event: Event) -> None:
                self.events.append(event)
                self.gate.pass_through(holder["engine"].owner_thread)
                sink(event)

            holder["engine"] = Engine(tee)
            self.engines.append(holder["engine"])
            return holder["engine"]

        settings = ChatSettings(temperature=0.0, max_tokens=max_tokens, model=str(self.model))
        options.setdefault("chat_settings", settings)
        return make_app(model=str(self.model), engine_factory=engine_factory, **options)

    def finished(self, kind) -> list:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def real_app(tiny_model):
    factory = RealAppFactory(tiny_model)
    yield factory
    factory.gate.open()
    for engine in factory.engines:
        engine.close(timeout_s=30)


async def loaded(pilot, timeout_s: float = 60.0) -> None:
    """Wait until the app's model load has finished."""
    app = pilot.app
    await until(pilot, lambda: app.chat.model is not None and not app.chat.busy, timeout_s, "the model load")


async def generating(pilot, tokens: int = 10) -> None:
    app = pilot.app
    await until(pilot, lambda: app.chat.status.phase == "generating" and app.chat.status.tokens >= tokens,
                what=f"{tokens} generated tokens")


async def idle(pilot, timeout_s: float = 30.0) -> None:
    app = pilot.app
    await until(pilot, lambda: not app.chat.busy, timeout_s, "the engine's Finished")


@pytest.fixture
def staged_app():
    """`staged_app(**options)` -> (app, engine): an app on the `StagedEngine`, with animation off and a clock the
    test sets (`app.test_clock[0]`)."""

    def build(**options) -> tuple[MlxChatApp, StagedEngine]:
        clock_value = [100.0]
        app, engine = app_on_staged_engine(clock=lambda: clock_value[0], **options)
        app.test_clock = clock_value
        return app, engine

    return build


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    """Good and bad files to attach."""
    folder = tmp_path_factory.mktemp("images")
    sunset, flag = sample_images(folder)
    from PIL import Image

    spaced = folder / "my holiday photo.jpg"
    Image.open(sunset).convert("RGB").save(spaced)
    screenshot = folder / "Screenshot 2024-05-01 at 9.41.02\u202fAM.png"
    Image.open(flag).save(screenshot)
    corrupt = folder / "broken.png"
    corrupt.write_bytes(sunset.read_bytes()[:300])
    text = folder / "notes.txt"
    text.write_text("not an image")
    fake = folder / "fake.png"
    fake.write_text("this is text with a png name")
    return {
        "sunset": sunset,
        "flag": flag,
        "spaced": spaced,
        "screenshot": screenshot,
        "corrupt": corrupt,
        "text": text,
        "fake": fake,
        "missing": folder / "missing.png",
        "folder": folder,
    }


async def staged_loaded(pilot, engine: StagedEngine, info=None) -> None:
    """Play a finished model load into an app on the staged engine (once the app has asked for it)."""
    from staged import TINY_INFO

    await loaded_scene(pilot, engine, info or TINY_INFO)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """A tiny random-weight SmolVLM folder: the vision route, without a download."""
    from mlxchat.models.random_vision import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("models") / "tiny-vlm")
