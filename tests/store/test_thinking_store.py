"""A reasoning model's thinking is stored apart from its answer: kept, read back, updated, never sent to the model
again, and a database from before the column gains it empty."""

from __future__ import annotations

import sqlite3

from mlxchat.store import History


def test_thinking_is_saved_apart_from_the_answer_and_not_sent_back(history):
    conversation = history.create_conversation()
    history.add_message(conversation.id, "user", "Capital of France?")
    saved = history.add_message(conversation.id, "assistant", "Paris.", thinking="France… its capital is Paris.")
    assert (saved.text, saved.thinking) == ("Paris.", "France… its capital is Paris.")
    stored = history.get_conversation(conversation.id)
    assert [(m.text, m.thinking) for m in stored.messages] == [
        ("Capital of France?", ""),
        ("Paris.", "France… its capital is Paris."),
    ]
    assert all("France…" not in m.content for m in stored.engine_messages())


def test_a_continued_answer_can_extend_its_thinking(history):
    conversation = history.create_conversation()
    saved = history.add_message(conversation.id, "assistant", "", status="stopped", thinking="Half a thought")
    updated = history.update_message(saved.id, text="Done.", status="complete", thinking="Half a thought, whole.")
    assert (updated.text, updated.thinking) == ("Done.", "Half a thought, whole.")
    assert history.update_message(saved.id, text="Done!").thinking == "Half a thought, whole."


def test_a_database_from_before_thinking_gains_the_column_empty(data_dir):
    old = History(data_dir)
    conversation = old.create_conversation()
    old.add_message(conversation.id, "assistant", "Old answer")
    path = old.database_path
    old.close()
    with sqlite3.connect(path) as connection:  # back to version 3, as an older mlxchat left it
        connection.execute("ALTER TABLE messages DROP COLUMN thinking")
        connection.execute("PRAGMA user_version = 3")
    reopened = History(data_dir)
    try:
        (message,) = reopened.get_conversation(conversation.id).messages
        assert (message.text, message.thinking) == ("Old answer", "")
    finally:
        reopened.close()
