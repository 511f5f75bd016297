"""Provides the file picker: a folder tree that shows folders and images, for terminals where drag and drop
does not paste a path (or for people who prefer keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Label

from ..paths_in_text import is_image_name


class ImageTree(DirectoryTree):
    """A directory tree without hidden entries, listing only folders and image files."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (_is_dir(p) or is_image_name(p))]


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


class FilePickerScreen(ModalScreen[Path | None]):
    """Choose an image; Enter on a file attaches it, Esc closes without attaching."""

    BINDINGS = [Binding("escape", "close", "Close", id="close_file_picker")]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self._start = start

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Label(f"Attach an image from {self._start}", id="picker-title", markup=False)
            yield ImageTree(self._start, id="picker-tree")
            yield Label("Enter attaches the image · Esc closes", id="picker-hint")

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(event.path)

    def action_close(self) -> None:
        self.dismiss(None)
