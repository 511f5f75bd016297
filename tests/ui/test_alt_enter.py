"""Alt+Enter in a terminal without the kitty keyboard protocol arrives as Escape then Enter: it must insert a line
break, not send the half-written prompt. An Enter long after an Escape still sends."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding

from mlxchat.ui.keys import ACTIONS
from mlxchat.ui.widgets import prompt_input
from mlxchat.ui.widgets.prompt_input import PromptInput


class PromptHost(App):
    """A prompt on a screen that, like the chat screen, binds Escape (stop) and collects what is sent."""

    BINDINGS = [Binding("escape", "stop", "Stop")]

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.stops = 0

    def compose(self) -> ComposeResult:
        yield PromptInput(id="prompt")

    def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        self.sent.append(message.text)

    def action_stop(self) -> None:
        self.stops += 1


async def test_escape_then_enter_is_alt_enter_and_inserts_a_line_break():
    app = PromptHost()
    async with app.run_test() as pilot:
        await pilot.press(*"one", "escape", "enter", *"two", "enter")
        await pilot.pause()
        assert app.sent == ["one\ntwo"]


async def test_an_enter_long_after_an_escape_sends(monkeypatch):
    clock = iter([10.0, 10.0 + prompt_input.ALT_ENTER_GAP_S + 1.0])
    app = PromptHost()
    async with app.run_test() as pilot:
        await pilot.press(*"hi")
        monkeypatch.setattr(prompt_input, "monotonic", lambda: next(clock))
        await pilot.press("escape", "enter")
        await pilot.pause()
        assert app.sent == ["hi"] and app.stops == 1


async def test_keys_typed_between_an_escape_and_an_enter_make_it_a_plain_send(monkeypatch):
    """Escape stops an answer; a quick typist's next line then ends with Enter well inside the Alt+Enter gap. Only the
    key right after Escape can be the second half of Alt+Enter."""
    monkeypatch.setattr(prompt_input, "monotonic", lambda: 10.0)  # every key at the same instant
    app = PromptHost()
    async with app.run_test() as pilot:
        await pilot.press("escape", *"next", "enter")
        await pilot.pause()
        assert app.sent == ["next"] and app.stops == 1


def test_the_help_names_the_newline_key_that_works_everywhere_and_where_the_others_work():
    newline = next(spec for spec in ACTIONS if spec.id == "newline")
    assert "Ctrl+J works in every terminal" in newline.help
    assert "Shift+Enter and Alt+Enter only where the terminal reports them" in newline.help
