"""Export from the conversation list (F2, then ctrl+s): the highlighted conversation, to the file the user names,
as the safe Markdown (or JSON for a .json name)."""

from __future__ import annotations

import json

from textual.app import App
from textual.widgets import Input

from mlxchat.store import History
from mlxchat.ui.screens.conversations import ConversationsScreen
from mlxchat.ui.screens.dialogs import TextInputScreen

from conftest import until


class ListHost(App):
    """Shows the conversation list over an empty screen, as the chat screen does on F2."""

    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history

    def on_mount(self) -> None:
        self.push_screen(ConversationsScreen(self.history, None))


async def export_highlighted(pilot, target: str) -> None:
    """Highlight the second row ("Cats"; the list shows the newest first) and export it to `target`."""
    await until(pilot, lambda: isinstance(pilot.app.screen, ConversationsScreen), what="the list")
    if pilot.app.screen.highlighted.title != "Cats":
        await pilot.press("down")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(pilot.app.screen, TextInputScreen), what="the export question")
    pilot.app.screen.query_one(Input).value = target
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, ConversationsScreen), what="back to the list")


async def test_ctrl_s_in_the_list_exports_the_highlighted_conversation(tmp_path):
    history = History(tmp_path / "data")
    for title in ("Cats", "Dogs"):
        conversation = history.create_conversation(title)
        history.add_message(conversation.id, "user", f"Tell me about {title.lower()}")
    app = ListHost(history)
    async with app.run_test() as pilot:
        await export_highlighted(pilot, str(tmp_path / "out" / "cats.md"))
        await export_highlighted(pilot, str(tmp_path / "out" / "cats.json"))
    history.close()
    assert (tmp_path / "out" / "cats.md").read_text().startswith("# Cats\n")
    assert "```markdown\nTell me about cats\n```" in (tmp_path / "out" / "cats.md").read_text()
    assert json.loads((tmp_path / "out" / "cats.json").read_text())["title"] == "Cats"


async def test_an_export_that_cannot_be_written_says_why_in_the_list(tmp_path):
    history = History(tmp_path / "data")
    for title in ("Cats", "Dogs"):
        history.add_message(history.create_conversation(title).id, "user", "hi")
    (tmp_path / "a-file").write_text("")
    app = ListHost(history)
    async with app.run_test() as pilot:
        await export_highlighted(pilot, str(tmp_path / "a-file" / "cats.md"))
        problem = str(app.screen.query_one("#conversations-problem").content)
    history.close()
    assert problem.startswith(f"Cannot write {tmp_path / 'a-file' / 'cats.md'}:"), problem
