"""Provides the "stop" overflow policy's offer and the summary it may lead to.

`OverflowOfferScreen` asks what to do with a message the conversation can no longer take: switch the
conversation's policy and send it again, start a new chat from a summary, or cancel (the message stays in the
prompt). A refused retry or continue gets the same offer, and the way out retries or continues instead.
`SummaryScreen` shows the summary as the model writes it; Esc stops it and nothing changes. The chat screen owns
the request and decides; these screens only ask and show.
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from mlxchat.terminal_text import visible

from ..chat_model import Redo

OverflowChoice = Literal["truncate-middle", "rolling-window", "summarize"]


def offer_question(problem: str, title: str, redo: Redo | None = None) -> str:
    """The engine's refusal (its numbers), then what each way out does, in words."""
    kept = "Your message is kept. " if redo is None else ""
    carried = {
        None: "",
        "retry": " Your last question goes there to be answered again.",
        "continue": " Your last question and the stopped answer go there, and the answer goes on.",
    }[redo]
    return (
        f"{problem}\n\n{kept}Truncate-middle keeps the start of “{title}” and its latest turns, rolling-window only "
        "the latest; the turns left out stay in the history. A summary starts a new chat from what the model writes "
        f"about this one, which stays as it is.{carried}"
    )


class OverflowOfferScreen(ModalScreen[OverflowChoice | None]):
    """t: truncate-middle and send again; r: rolling-window and send again; s: a new chat from a summary, then
    send there; Esc: cancel (the message stays in the prompt). Buttons do the same by click or Enter. For a
    refused `redo` (a retry or a continue), each way out retries or continues instead of sending."""

    BINDINGS = [
        Binding("t", "choose('truncate-middle')", "Truncate middle", id="overflow_truncate_middle"),
        Binding("r", "choose('rolling-window')", "Rolling window", id="overflow_rolling_window"),
        Binding("s", "choose('summarize')", "Summary", id="overflow_summarize"),
        Binding("escape", "choose(None)", "Cancel", id="overflow_cancel"),
    ]

    def __init__(self, problem: str, title: str, redo: Redo | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.question = offer_question(visible(problem), title, redo)
        """What is asked, as shown (tests read it)."""
        self.redo = redo

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="overflow-offer"):
            yield Label(self.question, classes="dialog-question", markup=False)
            with Vertical(classes="dialog-choices"):
                verb = self.redo or "send"
                yield Button(f"t  Switch to truncate-middle and {verb}", id="truncate-middle", compact=True)
                yield Button(f"r  Switch to rolling-window and {verb}", id="rolling-window", compact=True)
                there = " there" if self.redo else ""
                yield Button(f"s  New chat from a summary, then {verb}{there}", id="summarize", compact=True)
                cancel = "keep the message in the prompt" if self.redo is None else "leave the conversation as it is"
                yield Button(f"Esc  Cancel: {cancel}", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#truncate-middle", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: OverflowChoice | None) -> None:
        self.dismiss(choice)


class SummaryScreen(ModalScreen[bool]):
    """The summary as it streams, with its token count. Esc (or the button) dismisses with True: stop it. The
    chat screen dismisses it with False when the summary has ended on its own."""

    BINDINGS = [Binding("escape", "stop", "Stop the summary", id="summary_stop")]

    def __init__(self, title: str) -> None:
        super().__init__(classes="dialog-screen")
        self.source_title = title
        self.text = ""
        """The summary so far (what the body shows)."""
        self.tokens = 0
        self.ended = False
        self.stop_asked = False
        """Esc (or the button) was pressed: the summary counts as stopped even if it ended on its own first (its
        last event already on its way when the key landed, so there was nothing left to cancel)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="summary-box"):
            yield Label(f"Summarizing “{self.source_title}” for a new chat…", classes="dialog-question", markup=False)
            with VerticalScroll(id="summary-scroll"):
                yield Static("", id="summary-text", markup=False)
            yield Label(self._progress(), id="summary-progress", markup=False)
            yield Button("Esc  Stop: nothing changes", id="summary-stop", compact=True)

    def on_mount(self) -> None:
        self.query_one("#summary-scroll", VerticalScroll).anchor()

    def append(self, text: str, tokens: int) -> None:
        """More of the summary, as the engine batched it."""
        self.text += text
        self.tokens += tokens
        if self.is_mounted:
            self.query_one("#summary-text", Static).update(visible(self.text))
            self.query_one("#summary-progress", Label).update(self._progress())

    def _progress(self) -> str:
        written = f"{self.tokens} tokens written" if self.tokens else "reading the conversation…"
        return f"{written} · the conversation stays as it is until the summary is done"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_stop()

    def action_stop(self) -> None:
        if not self.ended:
            self.stop_asked = True
            self.dismiss(True)

    def end(self) -> None:
        """The summary has ended (the chat screen decides what follows): close now, or as soon as this screen is
        on top again when another one (the command palette, help) was opened over it."""
        self.ended = True
        if self.app.screen is self:  # not `is_current`, which holds under a modal too; dismiss pops the top
            self.dismiss(False)

    def on_screen_resume(self) -> None:
        if self.ended:
            self.dismiss(False)
