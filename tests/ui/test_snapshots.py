"""Snapshots of every visible state, at a fixed size.

States are staged from real engine event types (`tests/staged.py`, the same scenes `scripts/screenshots.py`
draws) with fixed numbers, a fixed clock and animation off, so no timing, elapsed time or memory figure varies
between runs. The real event flow behind each state is tested in `test_chat_real_engine.py`.
"""

from __future__ import annotations

import pytest
from textual import events

import staged
from mlxchat.ui.widgets.status import StatusBar

from conftest import SIZE, staged_loaded, until


def snap(snap_compare, staged_app, scene, *args, **options) -> bool:
    app, engine = staged_app(**options)

    async def run_before(pilot) -> None:
        await scene(pilot, engine, *args)
        await pilot.pause()

    return snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_model_loading(snap_compare, staged_app):
    """You should see an empty conversation with the welcome text and a status pane saying "loading 40%" with a
    progress bar and the step "Reading weights of SmolLM2-135M-Instruct"."""
    assert snap(snap_compare, staged_app, staged.loading_scene)


def test_idle_with_a_loaded_model(snap_compare, staged_app):
    """You should see the welcome text, an empty prompt, and "● ready" with the model name, its size and
    ctx 0/8192 in the status pane."""
    assert snap(snap_compare, staged_app, staged.loaded_scene)


def test_streaming(snap_compare, staged_app):
    """You should see the question, half an answer (prose and the start of a Python code block) and a
    "generating" status with 24 tokens and 48.2 tok/s."""
    assert snap(snap_compare, staged_app, staged.streaming_scene)


def test_draining(snap_compare, staged_app):
    """You should see the half answer and the status pane in the warning colour: "draining 1.2s" and
    "stopping after the current step…"."""
    assert snap(snap_compare, staged_app, staged.draining_scene)


def test_stopped(snap_compare, staged_app):
    """You should see the half answer with a warning-coloured edge and the footer "■ stopped after 24 tokens —
    ctrl+r continues · f5 retries", and "■ stopped" in the status pane."""
    assert snap(snap_compare, staged_app, staged.stopped_scene)


def test_busy_refusal(snap_compare, staged_app):
    """You should see the draining status and, above the prompt, the engine's busy answer naming the
    conversation ("Engine busy: answering in 'What is the capital of France?' (draining, 1.4 s) … Your prompt is
    kept."), with "And Italy?" still in the prompt."""
    assert snap(snap_compare, staged_app, staged.busy_scene)


def test_finished_answer_with_stats(snap_compare, staged_app):
    """You should see the whole answer, its code block highlighted, and the stats footer "TTFT 0.31s · 48.2
    tok/s · 61 tokens · prompt 42"; the status is ready with ctx 103/8192."""
    assert snap(snap_compare, staged_app, staged.answered_scene)


def test_two_attachments(snap_compare, staged_app, images):
    """You should see the attachment pane with two half-block previews (an orange sunset, a blue-white-red
    flag), their names, pixel sizes and file sizes, above a prompt that says "compare these"."""
    assert snap(snap_compare, staged_app, staged.attachments_scene, [images["sunset"], images["flag"]])


def test_attachment_error(snap_compare, staged_app, images, monkeypatch):
    """You should see, above the prompt, the error "Cannot attach broken.png: the image is damaged and cannot be
    decoded (…)" and the pasted path "./broken.png" left in the prompt for the user to fix."""
    monkeypatch.chdir(images["corrupt"].parent)  # a relative path keeps the temporary folder out of the picture

    async def scene(pilot, engine):
        await staged_loaded(pilot, engine, staged.VISION_INFO)
        pilot.app.post_message(events.Paste("./broken.png"))
        await until(pilot, lambda: bool(pilot.app.chat.notice_text()), what="the error")

    assert snap(snap_compare, staged_app, scene)


def test_help_screen(snap_compare, staged_app):
    """You should see the help modal listing every action grouped as "In the prompt", "Conversation" and
    "Anywhere", each with its keys."""
    assert snap(snap_compare, staged_app, staged.help_scene)


@pytest.mark.parametrize("theme", ["mlxchat", "mlxchat-paper", "mlxchat-phosphor", "mlxchat-ember"])
def test_each_bundled_theme(snap_compare, staged_app, theme):
    """You should see a finished answer with stats drawn in the named theme's colours."""
    assert snap(snap_compare, staged_app, staged.answered_scene, theme=theme)


async def test_draining_is_a_distinct_style(staged_app):
    """Not a snapshot: the draining class is what gives the status pane its own colour."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.draining_scene(pilot, engine)
        bar = app.chat.query_one(StatusBar)
        assert bar.has_class("-draining") and not bar.has_class("-generating")


def test_reading_another_conversation_while_one_answers(snap_compare, staged_app, tmp_path):
    """You should see a new, empty chat ("New chat" on top, the welcome text) while the status pane says
    "answering in 'What is the capital of Fr…'" (and the token count, where the line has room): the answer
    streams on in the conversation the reader left."""
    from mlxchat.store import History

    history = History(tmp_path / "data")
    try:
        assert snap(snap_compare, staged_app, staged.reading_elsewhere_scene, history=history)
    finally:
        history.close()


def _history_with_three(tmp_path):
    return staged.example_history(tmp_path / "data")


def test_conversation_list(snap_compare, staged_app, tmp_path, monkeypatch):
    """You should see the conversation list over the chat: a search box and three conversations, newest
    first ("Plan a weekend in Lisbon" highlighted), each with "2 messages · 2024-05-01 14:03" and a preview."""
    monkeypatch.setattr("mlxchat.ui.screens.conversations.when_label", lambda moment: "2024-05-01 14:03")
    history = _history_with_three(tmp_path)

    async def scene(pilot, engine):
        await staged.loaded_scene(pilot, engine)
        await pilot.press("f2")
        await until(pilot, lambda: len(getattr(pilot.app.screen, "summaries", [])) == 3, what="the list")

    try:
        assert snap(snap_compare, staged_app, scene, history=history)
    finally:
        history.close()


def test_delete_question(snap_compare, staged_app, tmp_path, monkeypatch):
    """You should see, over the conversation list, the question "Delete “Plan a weekend in Lisbon” (2 messages,
    last 2024-05-01 14:03)? This cannot be undone." with Delete and Cancel buttons (Cancel focused)."""
    monkeypatch.setattr("mlxchat.ui.screens.conversations.when_label", lambda moment: "2024-05-01 14:03")
    history = _history_with_three(tmp_path)

    async def scene(pilot, engine):
        await staged.loaded_scene(pilot, engine)
        await pilot.press("f2")
        await until(pilot, lambda: len(getattr(pilot.app.screen, "summaries", [])) == 3, what="the list")
        await pilot.press("f8")

    try:
        assert snap(snap_compare, staged_app, scene, history=history)
    finally:
        history.close()


def test_read_only_conversation_list(snap_compare, staged_app, tmp_path, monkeypatch):
    """You should see the conversation list with its three conversations and, under them, the whole line
    "Read-only: conversations open, but nothing here is renamed, deleted or saved." (a real read-only folder is
    tested in test_conversation_list.py)."""
    from mlxchat.store import History

    monkeypatch.setattr("mlxchat.ui.screens.conversations.when_label", lambda moment: "2024-05-01 14:03")
    history = _history_with_three(tmp_path)
    monkeypatch.setattr(History, "read_only", property(lambda self: True))

    async def scene(pilot, engine):
        await staged.loaded_scene(pilot, engine)
        await pilot.press("f2")
        await until(pilot, lambda: len(getattr(pilot.app.screen, "summaries", [])) == 3, what="the list")
        await until(pilot, lambda: pilot.app.screen.query_one("#conversations-problem").display, what="the line")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    try:
        assert snap(snap_compare, staged_app, scene, history=history)
    finally:
        history.close()


def test_unsaved_at_quit(snap_compare, staged_app, tmp_path, monkeypatch):
    """You should see, over the chat, the question "2 changes to “What is the capital of France?” could not be saved
    to the history: Cannot save the message: /data is read-only or not writable. Export the conversation to a Markdown
    file before quitting?" with the buttons Export and quit (focused), Quit without saving and Stay; behind it the
    notice "History not saved (your message): …"."""
    from mlxchat.store import History, StoreError

    history = History(tmp_path / "data")

    def refuse(*args, **kwargs):
        raise StoreError("Cannot save the message: /data is read-only or not writable.", "read-only")

    monkeypatch.setattr(history, "add_message", refuse)
    monkeypatch.setattr(History, "read_only", property(lambda self: False))

    async def scene(pilot, engine):
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot)
        staged.play_answer_start(engine, "A red circle.", 4)
        staged.play_answer_end(engine, "A red circle.", 4)
        await until(pilot, lambda: not pilot.app.chat.busy, what="the answer")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "UnsavedScreen", what="the question")

    try:
        assert snap(snap_compare, staged_app, scene, history=history)
    finally:
        history.close()


def test_settings_modal(snap_compare, staged_app):
    """You should see the settings modal for "New chat": an empty system prompt box, then empty temperature, top-p,
    top-k and min-p fields, each with the value that applies beside it ("0.7, mlxchat's default", "1, mlxchat's
    default", "0, …", "0, …"), and Save and Cancel buttons."""

    async def scene(pilot, engine):
        await staged.loaded_scene(pilot, engine)
        await pilot.press("f3")

    assert snap(snap_compare, staged_app, scene)
