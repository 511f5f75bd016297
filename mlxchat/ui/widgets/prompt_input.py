"""Provides `PromptInput`: the multi-line prompt that turns keys into messages for the screen.

Enter sends and a newline key inserts a line break. Terminals disagree about newline keys: Ctrl+J sends a line
feed everywhere, Shift+Enter and Alt+Enter reach the app only in terminals with the kitty keyboard protocol or
similar, so all three are bound. Elsewhere Alt+Enter is ESC then CR: when those come as two keys, the Enter
inserts a line break; when they come as one sequence Textual reports a plain Enter, which cannot be told apart,
so the help names Ctrl+J as the newline key that works everywhere. Both are bindings with ids, so a keymap can swap them. Up on the first line
and Down on the last line recall earlier prompts, like a shell. A paste that starts with image paths (what a
terminal pastes when a file is dropped on it) becomes a `PathsDropped` message instead of text.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import monotonic
from typing import Callable

from textual import events
from textual.message import Message
from textual.widgets import TextArea

from ..keys import ACTIONS

ALT_ENTER_GAP_S = 0.15
"""An Enter this soon after an Escape is the split form of Alt+Enter (ESC, CR). A person who presses Escape to
stop an answer and then Enter to send takes far longer than this."""
from ..paths_in_text import FoundPaths, find_paths


class PromptInput(TextArea):
    """The prompt. The screen listens for `Submitted` and `PathsDropped`; it sets `prompt_history` and `on_typed` down."""

    BINDINGS = [spec.binding() for spec in ACTIONS if spec.id in ("send", "newline")]

    @dataclass
    class Submitted(Message):
        """The user sent `text` (exactly as typed; the screen decides what to do with it)."""

        prompt: "PromptInput"
        text: str

    @dataclass
    class PathsDropped(Message):
        """A paste started with paths. `found.rest` is the text that followed them."""

        prompt: "PromptInput"
        found: FoundPaths

    def __init__(
        self, *, prompt_history: list[str] | None = None, on_typed: Callable[[], None] | None = None, **kwargs
    ) -> None:
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("show_line_numbers", False)
        kwargs.setdefault("tab_behavior", "focus")
        super().__init__(**kwargs)
        self.prompt_history: list[str] = prompt_history if prompt_history is not None else []
        """Earlier prompts, oldest first. Shared with the screen, which appends each sent prompt."""
        self._recall_index: int | None = None
        self._draft = ""
        self._escape_at = float("-inf")  # when the last Escape key came (see `_on_key`)
        self.on_typed = on_typed
        """Called as each key or paste reaches the prompt, before it is handled: the screen lets a streaming answer's
        next update wait for the key's frame (issue 11). A call, not a message: a message reaches the screen hops
        later, and an update that begins meanwhile is drawn in the key's frame."""

    async def _on_key(self, event: events.Key) -> None:
        if self.on_typed is not None:
            self.on_typed()
        now = monotonic()
        if event.key == "escape":
            self._escape_at = now
            return
        # Alt+Enter in a terminal without the kitty keyboard protocol is ESC then CR; when the two arrive as
        # separate keys, the Enter is the second half of Alt+Enter: a line break, not a send.
        escape_at, self._escape_at = self._escape_at, float("-inf")  # only the key right after Escape pairs with it
        if event.key == "enter" and now - escape_at <= ALT_ENTER_GAP_S:
            event.prevent_default()
            event.stop()
            self.action_newline()
            return
        # Let a bound Enter (send, or whatever the keymap made it) reach its binding instead of inserting "\n";
        # when a keymap leaves Enter unbound, it inserts a line break as in any editor.
        if event.key == "enter" and "enter" in self.screen.active_bindings:
            event.prevent_default()

    async def _on_paste(self, event: events.Paste) -> None:
        if self.on_typed is not None:
            self.on_typed()
        found = find_paths(event.text)
        if found:
            event.prevent_default()
            event.stop()
            self.post_message(self.PathsDropped(self, found))

    def action_submit(self) -> None:
        self._recall_index = None
        self.post_message(self.Submitted(self, self.text))

    def action_newline(self) -> None:
        self.insert("\n")

    def set_text(self, text: str) -> None:
        """Replace the prompt and put the cursor at its end."""
        self.load_text(text)
        self.move_cursor(self.document.end)

    def action_cursor_up(self, select: bool = False) -> None:
        if select or not self.cursor_at_first_line or not self.prompt_history:
            return super().action_cursor_up(select)
        if self._recall_index is None:
            self._draft = self.text
            self._recall_index = len(self.prompt_history)
        if self._recall_index > 0:
            self._recall_index -= 1
            self.set_text(self.prompt_history[self._recall_index])

    def action_cursor_down(self, select: bool = False) -> None:
        if select or not self.cursor_at_last_line or self._recall_index is None:
            return super().action_cursor_down(select)
        self._recall_index += 1
        if self._recall_index >= len(self.prompt_history):
            self._recall_index = None
            self.set_text(self._draft)
        else:
            self.set_text(self.prompt_history[self._recall_index])
