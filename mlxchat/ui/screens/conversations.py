"""Provides the conversation list: search, open, start new, rename and delete (after a confirmation).

It reads and changes the history directly (rename and delete are about the list, not the open chat) and tells
the chat screen only what to show next: a conversation to open, a new one, or nothing. The chat screen checks
afterwards whether the conversation it shows still exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from .dialogs import ConfirmScreen, TextInputScreen


@dataclass(frozen=True)
class ConversationsResult:
    """What the chat screen should show after the list closes."""

    open_id: str | None = None
    new: bool = False


def when_label(moment: datetime) -> str:
    """'2024-05-01 14:03' in local time (a test may replace this for fixed pictures)."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def summary_prompt(summary, current_id: str | None) -> Text:
    marker = "● " if summary.id == current_id else "  "
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(marker + summary.title, style="bold")
    count = f"{summary.message_count} message{'s' if summary.message_count != 1 else ''}"
    details = " · ".join(part for part in (count, when_label(summary.updated_at), summary.model) if part)
    text.append(f"\n  {details}", style="dim")
    preview = " ".join((summary.preview or "").split())
    if preview and not preview.startswith(summary.title.rstrip("…")):  # an auto title is the preview's start
        text.append(f"\n  {preview[:200]}", style="italic dim")
    return text


def delete_question(summary) -> str:
    """Names the conversation three ways (title, size, last change), so the user can tell which one goes."""
    count = f"{summary.message_count} message{'s' if summary.message_count != 1 else ''}"
    return f"Delete “{summary.title}” ({count}, last {when_label(summary.updated_at)})? This cannot be undone."


class ConversationsScreen(ModalScreen[ConversationsResult | None]):
    """The list. Typing searches titles and messages."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="conversations_close"),
        Binding("down", "move(1)", "Next", show=False, id="conversations_next"),
        Binding("up", "move(-1)", "Previous", show=False, id="conversations_previous"),
        Binding("ctrl+n", "new", "New", id="conversations_new"),
        Binding("f2", "rename", "Rename", id="conversations_rename"),
        Binding("f8", "delete", "Delete", id="conversations_delete"),
        Binding("ctrl+s", "export", "Export", id="conversations_export"),
    ]

    def __init__(self, history, current_id: str | None) -> None:
        super().__init__()
        self.history = history
        self.current_id = current_id
        self.summaries: list = []

    def compose(self) -> ComposeResult:
        with Vertical(id="conversations-box"):
            yield Label("Conversations", id="conversations-title")
            yield Input(placeholder="Search titles and messages…", id="conversations-search")
            yield OptionList(id="conversations-list")
            yield Label("", id="conversations-problem", markup=False)
            yield Label(
                "Enter opens · ctrl+n new · F2 rename · F8 delete · ctrl+s export · Esc closes", id="conversations-hint"
            )

    def on_mount(self) -> None:
        self.query_one("#conversations-problem").display = False
        self.refresh_list(from_top=True)
        if self.history.read_only:
            self.show_problem(self.read_only_line)
        self.query_one(Input).focus()

    read_only_line = "Read-only: conversations open, but nothing here is renamed, deleted or saved."

    def _refused_read_only(self) -> bool:
        if self.history.read_only:
            self.show_problem(self.read_only_line)
            self.app.bell()
            return True
        return False

    def refresh_list(self, from_top: bool = False) -> None:
        """Read the list again. The highlighted conversation stays highlighted (a cancelled or failed delete, a
        rename); when it is gone, the row now in its place is (after a delete). `from_top`: a new search."""
        from mlxchat.store import StoreError

        kept = None if from_top else self.highlighted
        kept_index = 0 if from_top else (self.query_one(OptionList).highlighted or 0)
        query = self.query_one(Input).value
        try:
            self.summaries = self.history.search(query) if query.strip() else self.history.list_conversations()
        except StoreError as exc:
            self.summaries = []
            self.show_problem(str(exc))
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(Option(summary_prompt(s, self.current_id), id=s.id) for s in self.summaries)
        if not self.summaries:
            options.add_option(Option(Text("No conversations" + (" match" if query.strip() else " yet")), disabled=True))
            return
        ids = [summary.id for summary in self.summaries]
        options.highlighted = ids.index(kept.id) if kept is not None and kept.id in ids else min(kept_index, len(ids) - 1)

    def show_problem(self, text: str) -> None:
        problem = self.query_one("#conversations-problem", Label)
        problem.update(text)
        problem.display = bool(text)

    @property
    def highlighted(self):
        index = self.query_one(OptionList).highlighted
        return self.summaries[index] if index is not None and index < len(self.summaries) else None

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_list(from_top=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._open()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._open()

    def _open(self) -> None:
        if self.highlighted is not None:
            self.dismiss(ConversationsResult(open_id=self.highlighted.id))

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = ((options.highlighted or 0) + step) % options.option_count

    def action_new(self) -> None:
        self.dismiss(ConversationsResult(new=True))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_rename(self) -> None:
        summary = self.highlighted
        if summary is None or self._refused_read_only():
            return

        def rename(title: str | None) -> None:
            from mlxchat.store import StoreError

            if title:
                try:
                    self.history.rename(summary.id, title)
                except StoreError as exc:
                    self.show_problem(str(exc))
            self.refresh_list()

        self.app.push_screen(TextInputScreen("Rename the conversation", summary.title), rename)

    def action_export(self) -> None:
        """Ask where to write the highlighted conversation (.json: JSON, anything else: the safe Markdown)."""
        summary = self.highlighted
        if summary is None:
            return
        from pathlib import Path

        from mlxchat.store import suggested_file_name

        def export(target: str | None) -> None:
            from mlxchat.store import StoreError, export_conversation

            if not target:
                return
            try:
                written = export_conversation(self.history.get_conversation(summary.id), Path(target))
            except StoreError as exc:
                self.show_problem(str(exc))
            except OSError as exc:
                self.show_problem(f"Cannot write {target}: {exc.strerror or exc}")
            else:
                self.show_problem("")
                self.notify(f"Exported “{summary.title}” to {written}", title="Export")

        suggested = str(Path.cwd() / suggested_file_name(summary))
        self.app.push_screen(TextInputScreen("Export to (.md for Markdown, .json for JSON)", suggested), export)

    def action_delete(self) -> None:
        summary = self.highlighted
        if summary is None or self._refused_read_only():
            return

        def delete(confirmed: bool | None) -> None:
            from mlxchat.store import StoreError

            if confirmed:
                try:
                    self.history.delete_conversation(summary.id)
                except StoreError as exc:
                    self.show_problem(str(exc))
            self.refresh_list()

        self.app.push_screen(ConfirmScreen(delete_question(summary)), delete)
