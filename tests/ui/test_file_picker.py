"""The Ctrl+O picker is not held in the folder it starts in: Backspace goes up a folder, and a typed path opens
a folder or attaches a file."""

from __future__ import annotations

from PIL import Image
from textual.app import App
from textual.widgets import Input

from mlxchat.ui.screens.file_picker import AttachableFileTree, FilePickerScreen

from conftest import until


class PickerHost(App):
    def __init__(self, start) -> None:
        super().__init__()
        self.start = start
        self.picked = "open"

    def on_mount(self) -> None:
        def picked(path) -> None:
            self.picked = path

        self.push_screen(FilePickerScreen(self.start), picked)


async def test_backspace_goes_up_and_a_typed_folder_opens_and_a_typed_file_is_picked(tmp_path):
    start = tmp_path / "home" / "me"
    start.mkdir(parents=True)
    photo = tmp_path / "elsewhere" / "my photo.png"
    photo.parent.mkdir()
    Image.new("RGB", (8, 8)).save(photo)
    app = PickerHost(start)
    async with app.run_test() as pilot:
        await until(pilot, lambda: isinstance(app.screen, FilePickerScreen), what="the picker")
        picker = app.screen
        assert isinstance(app.focused, AttachableFileTree)
        await pilot.press("backspace")
        assert picker.folder == tmp_path / "home"
        assert str(tmp_path / "home") in str(picker.query_one("#picker-title").content)
        picker.query_one(Input).focus()
        picker.query_one(Input).value = str(photo.parent)
        await pilot.press("enter")
        assert picker.folder == photo.parent and isinstance(app.focused, AttachableFileTree)
        picker.query_one(Input).focus()
        picker.query_one(Input).value = str(photo)  # unquoted, with a space, as /attach takes it
        await pilot.press("enter")
        await until(pilot, lambda: app.picked != "open", what="the pick")
    assert app.picked == photo


def test_the_tree_lists_folders_images_and_documents_but_not_other_files(tmp_path):
    for name in ("photo.JPG", "notes.md", "paper.pdf", "main.py", "Makefile", "archive.zip", "movie.mp4", ".hidden.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    (tmp_path / ".git").mkdir()
    listed = {p.name for p in AttachableFileTree(tmp_path).filter_paths(sorted(tmp_path.iterdir()))}
    assert listed == {"photo.JPG", "notes.md", "paper.pdf", "main.py", "Makefile", "folder"}
