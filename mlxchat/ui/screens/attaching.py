"""Provides the chat screen's attachments: dropped or typed paths, /attach, the file picker, and removal.

Each file is checked before it is attached (`open_attachment`), so a bad one gets one sentence above the prompt
and the prompt keeps its text; the text a failed path was pasted as goes back into the prompt for the user to fix.
"""

from __future__ import annotations

from pathlib import Path

from ..attachment_files import AttachmentError, open_attachment
from ..paths_in_text import FoundPaths, split_words, to_path
from ..widgets.attachments import AttachmentItem, AttachmentPane
from ..widgets.prompt_input import PromptInput
from .file_picker import FilePickerScreen


class AttachingMixin:
    """`ChatScreen`'s attachment handling; `self.attachments` is the list for the next message."""

    def _show_attachments(self) -> None:
        pane = self.query_one(AttachmentPane)
        note = ""
        if self.attachments and self.model is not None and self.model.kind == "text":
            note = f"{self.model.name} reads text only: load a vision model to send images"
        pane.note = note
        pane.attachments = tuple(self.attachments)

    def on_prompt_input_paths_dropped(self, message: PromptInput.PathsDropped) -> None:
        message.stop()
        failed = self.attach_found(message.found)
        leftover = " ".join(failed + ([message.found.rest] if message.found.rest else []))
        if leftover:
            self.prompt.insert(leftover)

    def attach_found(self, found: FoundPaths) -> list[str]:
        """Attach each found path; return the text of those that failed (they go back into the prompt)."""
        failed, problems = [], []
        for path, source in zip(found.paths, found.sources):
            problem = self.attach(path)
            if problem:
                failed.append(source)
                problems.append(problem)
        if problems:
            self.show_notice(" ".join(problems), "error")
        return failed

    def attach(self, path: Path) -> str | None:
        """Attach one image. Returns the problem in words, or None when attached."""
        try:
            attachment = open_attachment(path)
        except AttachmentError as exc:
            return str(exc)
        if any(existing.path == attachment.path for existing in self.attachments):
            return None
        self.attachments.append(attachment)
        self._show_attachments()
        self.clear_notice()
        return None

    def _attach_command(self, argument: str) -> None:
        words = split_words(argument)
        if not words:
            self.show_notice("Usage: /attach PATH [PATH…] (quote or escape spaces).", "info")
            return
        problems = []
        for word in words:
            problem = self.attach(to_path(word.value) or Path(word.value))
            if problem:
                problems.append(problem)
        if problems:
            self.show_notice(" ".join(problems), "error")
        else:
            self.prompt.clear()

    def action_attach_file(self) -> None:
        def attach_picked(path: Path | None) -> None:
            if path is not None:
                problem = self.attach(path)
                if problem:
                    self.show_notice(problem, "error")
            self.prompt.focus()

        self.app.push_screen(FilePickerScreen(Path.home()), attach_picked)

    def action_remove_attachment(self) -> None:
        focused = self.focused
        if isinstance(focused, AttachmentItem):
            self._remove(focused.attachment.path)
        elif self.attachments:
            self._remove(self.attachments[-1].path)

    def on_attachment_pane_remove_requested(self, message: AttachmentPane.RemoveRequested) -> None:
        self._remove(message.path)

    def _remove(self, path: Path) -> None:
        self.attachments = [a for a in self.attachments if a.path != path]
        self._show_attachments()
        self.prompt.focus()
