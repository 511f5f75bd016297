"""Provides the download line above the status pane: a model coming from the Hugging Face Hub while you chat.

The widget owns the download: its thread, its cancel switch and the progress it shows. The thread calls
`mlxchat.models.hub.download_model` (looked up when a download starts, so tests can stand in for it) and
reports through messages; a newer progress report replaces an older one still queued, so a slow screen never
falls behind the download. When the download ends the widget posts `ModelDownload.Ended` for the screen to act
on (load the model, or say what went wrong) and hides itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar

if TYPE_CHECKING:  # the hub module loads with the first download, not before the chat screen's first frame
    from mlxchat.models.hub import DownloadProgress


class ModelDownload(Vertical):
    """One download at a time: a line of sizes, speed and time left, and a bar."""

    DEFAULT_CSS = """
    ModelDownload { height: auto; padding: 0 1; display: none; }
    ModelDownload.-running { display: block; }
    ModelDownload > Label { width: 100%; color: $text-muted; }
    ModelDownload > ProgressBar { width: 100%; }
    ModelDownload > ProgressBar Bar { width: 1fr; }
    """

    @dataclass
    class Progressed(Message):
        report: DownloadProgress

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ModelDownload.Progressed)

    @dataclass
    class Ended(Message):
        """The download finished (`problem` None: the model is now local), failed, or was cancelled."""

        repo_id: str
        problem: str | None
        cancelled: bool = False

    repo_id: reactive[str | None] = reactive(None, init=False)
    """The repo being downloaded; None when idle (the widget is hidden then)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id="download-line", markup=False)
        yield ProgressBar(id="download-bar", show_eta=False, show_percentage=True)

    @property
    def running(self) -> bool:
        return self.repo_id is not None

    def watch_repo_id(self, repo_id: str | None) -> None:
        self.set_class(repo_id is not None, "-running")

    def start(self, repo_id: str) -> bool:
        """Start downloading `repo_id`; False (nothing started) while another download runs."""
        if self.running:
            return False
        from mlxchat.models import hub

        self.repo_id, self._cancel = repo_id, threading.Event()
        self.query_one(Label).update(f"Asking the Hugging Face Hub about {repo_id}…")
        self.query_one(ProgressBar).update(total=None, progress=0)
        cancel, download = self._cancel, hub.download_model

        def run() -> None:
            try:
                download(repo_id, progress=lambda r: self.post_message(self.Progressed(r)), cancel=cancel)
            except hub.DownloadCancelled as error:
                self.post_message(self.Ended(repo_id, str(error), cancelled=True))
            except hub.HubError as error:
                self.post_message(self.Ended(repo_id, str(error)))
            except Exception as error:  # the thread must always report, or the line would stay forever
                self.post_message(self.Ended(repo_id, f"Downloading {repo_id} failed: {error}"))
            else:
                self.post_message(self.Ended(repo_id, None))

        threading.Thread(target=run, name=f"download {repo_id}", daemon=True).start()
        return True

    def cancel(self) -> bool:
        """Ask the download to stop at its next socket read; `Ended(cancelled=True)` follows."""
        if self._cancel is None or not self.running:
            return False
        self._cancel.set()
        self.query_one(Label).update(f"Cancelling the download of {self.repo_id}…")
        return True

    def on_model_download_progressed(self, message: Progressed) -> None:
        from mlxchat.models.hub import describe_progress

        message.stop()
        if self.running and not self._cancel.is_set():
            self.query_one(Label).update(f"↓ {message.report.repo_id}: {describe_progress(message.report)}")
            self.query_one(ProgressBar).update(total=max(message.report.total, 1), progress=message.report.done)

    def on_model_download_ended(self, message: Ended) -> None:
        """Hide, then let the message bubble up to the screen."""
        self.repo_id, self._cancel = None, None
