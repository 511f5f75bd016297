"""The conversation list on its own (F2): a delete always names, and removes, the conversation the user chose.

The list is hosted by a bare app here, so these tests depend only on the list and a real `History`.
"""

from __future__ import annotations

import pytest
from textual.app import App

from mlxchat.store import History
from mounts import mounted  # noqa: F401 (fixture)
from mlxchat.ui.screens.conversations import ConversationsScreen
from mlxchat.ui.screens.dialogs import ConfirmScreen

from conftest import until


class ListHost(App):
    """Shows the conversation list over an empty screen, as the chat screen does on F2."""

    def __init__(self, history: History, current_id: str | None) -> None:
        super().__init__()
        self.history = history
        self.current_id = current_id
        self.result = "open"

    def on_mount(self) -> None:
        def closed(result) -> None:
            self.result = result

        self.push_screen(ConversationsScreen(self.history, self.current_id), closed)


@pytest.fixture
def three(tmp_path):
    """A history with "Cats" (2 messages), "Dogs" (4) and "Birds" (2), created in that order: the list shows
    Birds, Dogs, Cats."""
    history = History(tmp_path / "data")
    for title, turns in (("Cats", 1), ("Dogs", 2), ("Birds", 1)):
        conversation = history.create_conversation()
        for turn in range(turns):
            history.add_message(conversation.id, "user", f"{title} {turn}")
            history.add_message(conversation.id, "assistant", f"answer {turn}")
    yield history
    history.close()


def titles(history: History) -> list[str]:
    return [summary.title for summary in history.list_conversations()]


async def open_list(pilot) -> ConversationsScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, ConversationsScreen), what="the list")
    return pilot.app.screen


async def test_a_cancelled_delete_keeps_the_selection_and_the_next_delete_removes_the_chosen_one(three):
    """The reported data loss: select the third row, delete, cancel, delete again, `y`. The second question used
    to name the top row (the open chat) and `y` deleted it."""
    open_id = three.list_conversations()[0].id  # "Birds 0" is open in the chat
    app = ListHost(three, open_id)
    async with app.run_test() as pilot:
        screen = await open_list(pilot)
        await pilot.press("down", "down")
        assert screen.highlighted.title == "Cats 0"
        await pilot.press("f8")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        screen = await open_list(pilot)
        assert screen.highlighted.title == "Cats 0", "cancelling a delete moved the selection"
        await pilot.press("f8")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Cats 0" in app.screen.question
        await pilot.press("y")
        await open_list(pilot)
        assert titles(three) == ["Birds 0", "Dogs 0"]


async def test_the_delete_question_names_the_conversation_its_messages_and_last_date(three, monkeypatch):
    monkeypatch.setattr("mlxchat.ui.screens.conversations.when_label", lambda moment: "2024-05-01 14:03")
    app = ListHost(three, None)
    async with app.run_test() as pilot:
        await open_list(pilot)
        await pilot.press("down")
        await pilot.press("f8")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == (
            "Delete “Dogs 0” (4 messages, last 2024-05-01 14:03)? This cannot be undone."
        )


async def test_after_a_delete_the_selection_stays_at_the_same_place(three):
    app = ListHost(three, None)
    async with app.run_test() as pilot:
        screen = await open_list(pilot)
        await pilot.press("down")
        await pilot.press("f8", "y")
        screen = await open_list(pilot)
        assert [s.title for s in screen.summaries] == ["Birds 0", "Cats 0"]
        assert screen.highlighted.title == "Cats 0", "the row after the deleted one is selected, not the top"


async def test_a_delete_that_fails_keeps_the_selection_and_says_why(three, monkeypatch):
    from mlxchat.store import StoreError

    def refuse(conversation_id):
        raise StoreError("Cannot delete the conversation: /data is read-only or not writable.", "read-only")

    app = ListHost(three, None)
    async with app.run_test() as pilot:
        screen = await open_list(pilot)
        await pilot.press("down", "down")
        monkeypatch.setattr(three, "delete_conversation", refuse)
        await pilot.press("f8", "y")
        screen = await open_list(pilot)
        assert screen.highlighted.title == "Cats 0"
        assert "read-only" in str(screen.query_one("#conversations-problem").content)
        assert titles(three) == ["Birds 0", "Dogs 0", "Cats 0"]


async def test_a_read_only_history_is_listed_and_says_it_is_read_only(mounted, tmp_path):
    """Before: the list said "No conversations yet" under "… cannot be created or opened"."""
    mount = mounted(tmp_path / "data")
    writable = History(mount.folder)
    writable.add_message(writable.create_conversation().id, "user", "Kept from before")
    writable.close()
    mount.read_only()
    history = History(mount.folder)
    app = ListHost(history, None)
    async with app.run_test() as pilot:
        screen = await open_list(pilot)
        assert [s.title for s in screen.summaries] == ["Kept from before"]
        problem = str(screen.query_one("#conversations-problem").content)
        assert problem.startswith("Read-only:") and "cannot be created" not in problem
        await pilot.press("f8")
        assert app.screen is screen, "no delete question for a history that cannot change"
        await pilot.press("f2")
        assert app.screen is screen
        assert [s.title for s in history.list_conversations()] == ["Kept from before"]
    history.close()
