"""Provides the attachment pane: the images that go with the next message, each with a preview and its facts.

Previews are drawn with upper half blocks ("▀", foreground = top pixel, background = bottom pixel), which every
terminal with true colour shows, so no graphics protocol is needed. The pane hides itself when empty. Removing
an image is a message up (`AttachmentPane.RemoveRequested`); the screen owns the list and sets it back down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Static

from ..attachment_files import Attachment, human_size


def half_block_preview(attachment: Attachment) -> Text:
    """The preview grid as rich text: one terminal row per two pixel rows."""
    text = Text(no_wrap=True, overflow="crop")
    rows = attachment.preview
    for y in range(0, len(rows) - 1, 2):
        for top, bottom in zip(rows[y], rows[y + 1]):
            text.append("▀", Style(color=f"rgb{top}", bgcolor=f"rgb{bottom}"))
        if y + 2 < len(rows) - 1:
            text.append("\n")
    return text


class AttachmentItem(Horizontal, can_focus=True):
    """One attached image. Delete or Backspace while it has focus removes it."""

    BINDINGS = [Binding("delete,backspace", "remove", "Remove image", id="remove_focused_attachment")]

    def __init__(self, attachment: Attachment) -> None:
        super().__init__(classes="attachment")
        self.attachment = attachment

    def compose(self) -> ComposeResult:
        attachment = self.attachment
        yield Static(half_block_preview(attachment), classes="attachment-preview")
        with Vertical(classes="attachment-facts"):
            yield Label(attachment.name, classes="attachment-name", markup=False)
            yield Label(f"{attachment.width}×{attachment.height} px", markup=False)
            yield Label(f"{attachment.format} · {human_size(attachment.size_bytes)}", markup=False)

    def action_remove(self) -> None:
        self.post_message(AttachmentPane.RemoveRequested(self.attachment.path))


class AttachmentPane(Vertical):
    """The images attached to the next message."""

    @dataclass
    class RemoveRequested(Message):
        """The user asked to remove the image at `path` from the next message."""

        path: Path

    attachments: reactive[tuple[Attachment, ...]] = reactive((), always_update=True, recompose=True)
    """The images for the next message, in the order they were attached. Set by the screen."""

    note: reactive[str] = reactive("")
    """A warning about the attachments, e.g. that the loaded model reads text only."""

    def compose(self) -> ComposeResult:
        self.display = bool(self.attachments)
        count = len(self.attachments)
        yield Label(
            f"{count} image{'s' if count != 1 else ''} for the next message{' · ' + self.note if self.note else ''}",
            id="attachments-title",
            markup=False,
        )
        with HorizontalScroll(id="attachments-list"):
            for attachment in self.attachments:
                yield AttachmentItem(attachment)

    def watch_note(self) -> None:
        if self.is_mounted:
            self.refresh(recompose=True)
