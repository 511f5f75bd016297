"""Provides `FrameRecorder`: a timestamp for every frame the app composes, for the UI benchmark.

Textual repaints in frames: a screen's update timer collects the widgets marked dirty, the compositor renders
their changed lines into a `CompositorUpdate`, and `App._display` turns that into escape sequences for the
terminal driver. In a headless app (`App.run_test`) everything up to `_display` runs as in a terminal, and
`_display` itself skips the driver. The recorder wraps `_display` on one app instance: it serialises each update
to escape sequences (the work a terminal driver would do, minus the write), timestamps it, and asks each
registered watcher whether the frame shows what it is waiting for. That is the only private Textual name the
benchmark touches, and only in the benchmark.

A frame "shows" something when that thing had reached the widgets before the frame was composed; watchers are
called with the frame's time and its serialised text, so they may check either.
"""

from __future__ import annotations

import time
from typing import Callable

Watcher = Callable[[float, str], bool]
"""Called after each frame with (perf_counter time, the frame's escape sequences); True removes the watcher."""


class FrameRecorder:
    """Install with `FrameRecorder(app)` before or after the app starts; `close()` restores the app."""

    def __init__(self, app) -> None:
        self.app = app
        self.frames: list[float] = []
        self.serialise_s: list[float] = []
        self._watchers: list[Watcher] = []
        self._original = app._display
        app._display = self._display

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def close(self) -> None:
        self.app._display = self._original

    def _display(self, screen, renderable) -> None:
        self._original(screen, renderable)
        if renderable is None or self.app._batch_count:
            return
        started = time.perf_counter()
        text = _serialise(self.app, renderable)
        now = time.perf_counter()
        self.serialise_s.append(now - started)
        self.frames.append(now)
        self._watchers = [watcher for watcher in self._watchers if not watcher(now, text)]


def _serialise(app, renderable) -> str:
    from textual._compositor import CompositorUpdate

    if isinstance(renderable, CompositorUpdate):
        return renderable.render_segments(app.console)
    with app.console.capture() as capture:
        app.console.print(renderable)
    return capture.get()


class SettledText:
    """Tracks how much of a `Markdown` widget's source its block widgets already hold.

    `Markdown.append` updates `source` at once and builds or updates the block widgets in an awaitable; only
    after that can a frame draw the text. This wraps `append` on one widget instance and records the source
    length each completed append brought in, so a frame can be matched to the text it really drew.
    """

    def __init__(self, markdown) -> None:
        self.markdown = markdown
        self.settled_chars = len(markdown.source)
        self.settled_at: list[tuple[float, int]] = []
        original = markdown.append

        def append(fragment: str):
            waiter = original(fragment)
            length = len(markdown.source)

            async def settle() -> None:
                await waiter
                self.settled_chars = max(self.settled_chars, length)
                self.settled_at.append((time.perf_counter(), length))

            from textual.await_complete import AwaitComplete

            return AwaitComplete(settle())

        markdown.append = append
