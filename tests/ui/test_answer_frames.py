"""One answer update is one screen update (issue 11): what a streaming answer changes, and what the screen turns on
the answer's clock (`MessageView.AnswerDrawn`: the status pane's spinner and token count), go out in one frame.

Every frame is Python on the UI thread holding the GIL the engine's thread needs between tokens. A Markdown half
mounted, or a status label reaching the screen just after the answer's widgets, was a frame of its own."""

from __future__ import annotations

import asyncio

import textual.screen
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label

from mlxchat.ui.chat_model import Turn
from mlxchat.ui.widgets.message import MessageView

PIECES = [
    "Here is the plan.\n\n",
    "1. Read the file.\n2. Count the words",
    ".\n\n## Then\n\nA table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    "| 3 | 4 |\n\n- one\n- two",
    " and three\n\nDone: run it with `python add.py`.\n",
]
"""Blocks mounted, grown and added to (no code fence: a closed fence waits for its highlight on a thread, so when its
updates come is not up to the test)."""


class StreamScreen(Screen):
    """An answer streaming, and a label the screen turns on the answer's clock, as the chat screen turns its
    status pane (`ChatScreen.on_message_view_answer_drawn`)."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield MessageView(Turn("assistant", status="streaming"), label="assistant")
        yield Label("0", id="clock")

    def on_message_view_answer_drawn(self) -> None:
        clock = self.query_one("#clock", Label)
        clock.update(str(int(str(clock.content)) + 1))


class StreamApp(App):
    def get_default_screen(self) -> Screen:
        return StreamScreen()


async def test_an_answer_update_and_what_turns_on_its_clock_share_one_frame(monkeypatch):
    """With the screen drawing as soon as anything is dirty, each update's label change is drawn once, in the
    frame that draws the answer's change, never in a frame of its own."""
    monkeypatch.setattr(textual.screen, "UPDATE_PERIOD", 0.001)
    app = StreamApp()
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        view, clock = screen.query_one(MessageView), screen.query_one("#clock", Label)
        frames: list[set] = []  # the widgets each screen update drew
        display = app._display

        def counting_display(screen, update) -> None:
            frames.append(set(screen._dirty_widgets))
            display(screen, update)

        app._display = counting_display
        for updates, piece in enumerate(PIECES, start=1):
            frames.clear()
            view.turn.text += piece
            await view.sync()
            for _ in range(200):  # until the update is drawn and the screen is quiet (bounded)
                await pilot.pause(0.01)
                if view._stream.updates >= updates and clock.content == str(updates) and frames:
                    break
            await pilot.pause(0.05)
            with_clock = [drawn for drawn in frames if clock in drawn]
            assert len(with_clock) == 1, f"update {updates}: the clock was drawn in {len(with_clock)} frames"
            assert with_clock[0] - {clock}, f"update {updates}: the clock went out in a frame of its own"
            assert frames.index(with_clock[0]) == 0, f"update {updates}: {frames.index(with_clock[0])} frames came first"
        await view.end_stream()
        await asyncio.sleep(0)


async def test_updates_slower_than_their_budget_still_leave_the_screen_time_to_draw(monkeypatch):
    """Each update holds the screen's drawing while it draws. When an update takes longer than its frame budget
    (here each Markdown append blocks 0.1 s, as when the engine's thread holds the GIL) and text keeps coming, the
    next update must not start at once: the screen needs a moment between them, or nothing is drawn, typed keys
    included, until the answer ends. The review found 4.6–6.6 s without a single frame before the gap."""
    import time

    from mlxchat.ui.widgets import code_stream

    append = code_stream.AnswerMarkdown.append

    async def slow_append(self, fragment):
        time.sleep(0.1)
        return await append(self, fragment)

    monkeypatch.setattr(code_stream.AnswerMarkdown, "append", slow_append)
    app = StreamApp()
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(MessageView)
        drawn: list[float] = []
        display = app._display

        def counting_display(screen, update) -> None:
            drawn.append(time.perf_counter())
            display(screen, update)

        app._display = counting_display
        started = time.perf_counter()
        for word in range(120):  # a word every 20 ms for about 2.5 s (longer on a loaded machine)
            view.turn.text += f"word{word} "
            await view.sync()
            await asyncio.sleep(0.02)
        ended = time.perf_counter()
        times = [started, *(t for t in drawn if t < ended), ended]
        longest = max(later - earlier for earlier, later in zip(times, times[1:]))
        assert len(times) - 2 >= 5, f"{len(times) - 2} screen updates in {ended - started:.1f} s of streaming"
        assert longest < 1.5, f"{longest:.2f} s without a screen update while the answer streamed"
        await view.end_stream()
        await asyncio.sleep(0)
