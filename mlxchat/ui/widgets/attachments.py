"""Provides the attachment pane: the images and documents that go with the next message, each with its facts
(an image with a preview, a document with its size and estimated tokens).

Previews are drawn with upper half blocks ("▀", foreground = top pixel, background = bottom pixel), which every
terminal with true colour shows, so no graphics protocol is needed. The pane hides itself when empty. It owns
the list for the next message and knows the loaded model, so it can say when that model cannot take images, or
when a document is larger than the model's whole context.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Static

from mlxchat.engine import ModelInfo
from mlxchat.engine.vision_inputs import images_refused

from ..attachment_files import Attachment, AttachmentError, human_size, open_attachment


DOCUMENT_ICON = "┌──┐\n│≡≡│\n│≡≡│\n└──┘"


def attachments_title(attachments: tuple[Attachment, ...], model: ModelInfo | None, refusal: str | None) -> str:
    """'2 images, 1 document for the next message', with what stands in the way: images a text-only model cannot
    see, or a document larger than the model's whole context."""
    documents = [a for a in attachments if a.is_document]
    images = len(attachments) - len(documents)
    counts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((images, "image"), (len(documents), "document")) if n]
    title = f"{', '.join(counts)} for the next message"
    if refusal:
        return f"{title} · {refusal} Load a vision model to send them."
    too_large = [a for a in documents if model is not None and model.context_size and a.tokens >= model.context_size]
    if too_large:
        first = too_large[0]
        return f"{title} · {first.name} is ~{first.tokens} tokens; {model.name} reads at most {model.context_size}."
    return title


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
    """One attached image or document. Delete or Backspace while it has focus removes it."""

    BINDINGS = [Binding("delete,backspace", "remove", "Remove image", id="remove_focused_attachment")]

    def __init__(self, attachment: Attachment) -> None:
        super().__init__(classes="attachment")
        self.attachment = attachment

    def compose(self) -> ComposeResult:
        attachment = self.attachment
        if attachment.is_document:
            yield Static(DOCUMENT_ICON, classes="attachment-preview -document")
            with Vertical(classes="attachment-facts"):
                yield Label(attachment.name, classes="attachment-name", markup=False)
                yield Label(f"document · {human_size(attachment.size_bytes)}", markup=False)
                yield Label(f"~{attachment.tokens} tokens", markup=False)
            return
        yield Static(half_block_preview(attachment), classes="attachment-preview")
        with Vertical(classes="attachment-facts"):
            yield Label(attachment.name, classes="attachment-name", markup=False)
            yield Label(f"{attachment.width}×{attachment.height} px", markup=False)
            yield Label(f"{attachment.format} · {human_size(attachment.size_bytes)}", markup=False)

    def action_remove(self) -> None:
        self.post_message(AttachmentPane.RemoveRequested(self.attachment.path))


class AttachmentPane(Vertical):
    """The images attached to the next message. It owns the list: attach, remove and take go through it, and
    every change is announced with `AttachmentPane.Changed`."""

    @dataclass
    class RemoveRequested(Message):
        """The user asked to remove the image at `path` (posted by an `AttachmentItem`; the pane handles it)."""

        path: Path

    @dataclass
    class Changed(Message):
        """The list changed: something was attached, removed, or taken for a message."""

        pane: "AttachmentPane"
        attachments: tuple[Attachment, ...]
        removed: bool
        """True when an image was taken off the list by the user (the focus may have been on it)."""

        @property
        def control(self) -> "AttachmentPane":
            return self.pane

    attachments: reactive[tuple[Attachment, ...]] = reactive((), always_update=True, recompose=True)
    """The images for the next message, in the order they were attached. Changed only through the methods."""

    model: reactive[ModelInfo | None] = reactive(None, recompose=True)
    """The loaded model, set by the screen: the title warns when it cannot take images."""

    def compose(self) -> ComposeResult:
        self.display = bool(self.attachments)
        title = attachments_title(self.attachments, self.model, self.refusal())
        yield Label(title, id="attachments-title", markup=False)
        with HorizontalScroll(id="attachments-list"):
            for attachment in self.attachments:
                yield AttachmentItem(attachment)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(attachment.path for attachment in self.attachments)

    def refusal(self) -> str | None:
        """Why these images cannot go to the loaded model (it is a text-only model), or None when they can.
        Documents are text: every model reads them."""
        return images_refused(self.model) if any(not a.is_document for a in self.attachments) else None

    async def attach(self, path: Path) -> str | None:
        """Check and attach one image. Returns the problem in words (nothing attached), or None.

        The file is read and decoded on a worker thread, so a slow disk, a network mount or a large image never
        holds up the screen's event loop (keys, the streaming answer and the status keep going meanwhile)."""
        try:
            attachment = await asyncio.to_thread(open_attachment, path)
        except AttachmentError as exc:
            return str(exc)
        if attachment.path not in self.paths:
            self._set(self.attachments + (attachment,), removed=False)
        return None

    async def attach_all(self, paths: Iterable[Path]) -> list[str]:
        """Attach each of `paths`, in order; returns the problems, one sentence per file that failed."""
        problems = []
        for path in paths:
            if problem := await self.attach(path):
                problems.append(problem)
        return problems

    def remove(self, path: Path) -> None:
        self._set(tuple(a for a in self.attachments if a.path != path), removed=True)

    def remove_last(self) -> None:
        if self.attachments:
            self.remove(self.attachments[-1].path)

    def take(self) -> tuple[Path, ...]:
        """The paths for the message being sent; the list is empty afterwards."""
        paths = self.paths
        self._set((), removed=False)
        return paths

    def clear(self) -> None:
        self._set((), removed=True)

    @on(RemoveRequested)
    def _remove_requested(self, message: RemoveRequested) -> None:
        message.stop()
        self.remove(message.path)

    def _set(self, attachments: tuple[Attachment, ...], *, removed: bool) -> None:
        self.attachments = attachments
        self.post_message(self.Changed(self, attachments, removed))
