"""Provides the file picker: a folder tree that shows folders, images and documents, for terminals where drag and drop
does not paste a path (or for people who prefer keys).

It starts in a folder (the home folder) but is not held there: Backspace on the tree goes up a folder, and the
path box takes a typed or pasted path (a folder opens in the tree, a file is attached, by the same rules as
`/attach`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label

from mlxchat.engine.documents import is_document_path

from ..paths_in_text import is_image_name, paths_to_attach


class AttachableFileTree(DirectoryTree):
    """A directory tree without hidden entries, listing folders and the files whose names say image or document.

    Names decide here because reading every file of a folder to list it would be slow; a file with another name
    can still be attached by typing its path (the attach reads its bytes and says what is wrong, if anything)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p
            for p in paths
            if not p.name.startswith(".") and (_is_dir(p) or is_image_name(p) or is_document_path(p))
        ]


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


class FilePickerScreen(ModalScreen[Path | None]):
    """Choose an image or a document; Enter on a file attaches it, Backspace goes up a folder, Esc closes without attaching."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="close_file_picker"),
        Binding("backspace", "up", "Up a folder", id="file_picker_up"),
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self._start = start

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Label(self._title(self._start), id="picker-title", markup=False)
            yield Input(placeholder="Type or paste a path: a folder opens, a file is attached", id="picker-path")
            yield AttachableFileTree(self._start, id="picker-tree")
            yield Label(
                "Enter attaches the file · Backspace: up a folder · Tab: type a path · Esc closes", id="picker-hint"
            )

    def on_mount(self) -> None:
        self.query_one(AttachableFileTree).focus()

    @property
    def folder(self) -> Path:
        """The folder the tree shows."""
        return Path(self.query_one(AttachableFileTree).path)

    def open_folder(self, folder: Path) -> None:
        self.query_one(AttachableFileTree).path = folder
        self.query_one("#picker-title", Label).update(self._title(folder))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        paths = paths_to_attach(event.value)
        if not paths:
            return
        path = paths[0] if paths[0].is_absolute() else self.folder / paths[0]
        if _is_dir(path):
            self.open_folder(path)
            event.input.value = ""
            self.query_one(AttachableFileTree).focus()
        else:
            self.dismiss(path)  # the attach says what is wrong with it, if anything

    def action_up(self) -> None:
        if self.folder.parent != self.folder:
            self.open_folder(self.folder.parent)

    def action_close(self) -> None:
        self.dismiss(None)

    @staticmethod
    def _title(folder: Path) -> str:
        return f"Attach an image or a document from {folder}"
