"""The live thinking block's clock gives way to the thinking itself (issue 11): each piece of thinking redraws the
header with the elapsed time, so the block's own 10 Hz tick redraws it only once thinking has paused
`give_way_s`. A tick between two pieces was a screen update more (25 pieces a second: ~36 updates a second, now
~30; 8 a second: ~20, now ~11)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Label

from mlxchat.ui.chat_model import Turn
from mlxchat.ui.widgets.thinking import ThinkingBlock


class ThinkingScreen(Screen):
    animate = True

    def __init__(self) -> None:
        super().__init__()
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def compose(self) -> ComposeResult:
        yield ThinkingBlock(Turn("assistant", status="streaming", thinking="Let me see", thinking_tokens=3, thinking_since=99.0))


class ThinkingApp(App):
    def get_default_screen(self) -> Screen:
        return ThinkingScreen()


async def test_the_clock_ticks_only_while_no_thinking_arrives():
    app = ThinkingApp()
    async with app.run_test() as pilot:
        screen = app.screen
        block = screen.query_one(ThinkingBlock)
        header = block.query_one(".thinking-header", Label)
        block.show_turn()  # the first piece of thinking
        assert str(header.content) == "Thinking… 1.0 s · 3 tokens"
        screen.now = 100.1  # thinking arrived 0.1 s ago: its own redraw keeps the time
        block._tick()
        await pilot.pause()
        assert str(header.content) == "Thinking… 1.0 s · 3 tokens"
        block.turn.thinking += " what it needs."
        block.show_turn()  # a piece arrives: the header shows the time with it
        assert str(header.content) == "Thinking… 1.1 s · 3 tokens"
        screen.now = 100.4  # 0.3 s without thinking: the clock moves on its own
        block._tick()
        await pilot.pause()
        assert str(header.content) == "Thinking… 1.4 s · 3 tokens"
