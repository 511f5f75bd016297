"""Provides the conversation pane: the turns, newest at the bottom, following the answer as it streams.

It is anchored (`Widget.anchor()`): while the reader is at the bottom, new text keeps it there; once they scroll
up it stays where they put it, and returning to the bottom re-anchors it. Nothing here polls or forces scrolling.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from ..chat_model import Turn
from .message import MessageView

WELCOME = (
    "Ask anything below and press Enter.\n"
    "Drop an image on the window (or paste its path) to attach it. F1 lists every key."
)


class ConversationView(VerticalScroll, can_focus=False):
    """The scrolling list of `MessageView`s."""

    def compose(self):
        yield Static(WELCOME, id="welcome", markup=False)

    def on_mount(self) -> None:
        self.anchor()

    def new_view(self, turn: Turn, *, label: str) -> MessageView:
        """A view for `turn`, not yet shown. The screen tracks it before mounting, so no event is missed."""
        return MessageView(turn, label=label)

    async def show(self, *views: MessageView) -> None:
        """Mount `views` at the bottom."""
        self.query_one("#welcome").display = False
        await self.mount_all(views)

    async def add_turn(self, turn: Turn, *, label: str) -> MessageView:
        """Show `turn` at the bottom and return its view."""
        view = self.new_view(turn, label=label)
        await self.show(view)
        return view

    async def clear_turns(self) -> None:
        await self.query(MessageView).remove()
        self.query_one("#welcome").display = True

    def views(self) -> list[MessageView]:
        return list(self.query(MessageView))

    def last_view(self) -> MessageView | None:
        views = self.views()
        return views[-1] if views else None
