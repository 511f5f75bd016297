"""Provides `UnsavedScreen`: the question asked when quitting would lose turns the history could not take."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

UnsavedChoice = Literal["export", "discard"]


def unsaved_question(count: int, titles: list[str], problem: str) -> str:
    """Says plainly what is not saved, why, and where an export would go."""
    turns = f"{count} change{'s' if count != 1 else ''}"
    named = ", ".join(f"“{title}”" for title in titles[:3]) + (" and more" if len(titles) > 3 else "")
    return (
        f"{turns} to {named} could not be saved to the history: {problem} "
        "Export the conversation to a Markdown file before quitting?"
    )


class UnsavedScreen(ModalScreen[UnsavedChoice | None]):
    """Export and quit (`e`, Enter on the focused button), quit without saving (`d`), or stay (Esc)."""

    BINDINGS = [
        Binding("e", "choose('export')", "Export and quit", id="unsaved_export"),
        Binding("d", "choose('discard')", "Quit without saving", id="unsaved_discard"),
        Binding("escape", "choose(None)", "Stay", id="unsaved_stay"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export and quit", variant="primary", id="export")
                yield Button("Quit without saving", variant="error", id="discard")
                yield Button("Stay", id="stay")

    def on_mount(self) -> None:
        self.query_one("#export", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: UnsavedChoice | None) -> None:
        self.dismiss(choice)
