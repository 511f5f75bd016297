"""The chat screen lets the engine read a conversation's saved prompt cache while the person reads and types:
on switching to a conversation, and on resuming one (`mlxchat -c`) once the model is loaded. What the engine
does with the hint (reads the file on its owner thread, never refusing or delaying a message) is tested with the
real engine in tests/engine/test_disk_cache.py."""

from __future__ import annotations

import pytest

import staged
from mlxchat.store import History

from conftest import SIZE, until
from test_history_screens import chat


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


async def test_switching_to_a_conversation_prepares_it(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "First topic", "About the first")
        first_id = app.chat.session.stored_id
        await pilot.press("ctrl+n")
        assert engine.prepared == [], "a new chat has nothing saved to read"
        await chat(pilot, engine, "Second topic", "About the second")
        await pilot.press("f2")
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.chat.session.stored_id == first_id, what="the switch")
        hint = engine.prepared[-1]
        assert (hint.conversation_id, hint.saved_as, hint.kv_bits) == (first_id, first_id, None)
        await staged.ask(pilot, "More")
        assert engine.submitted[-1].conversation_id == hint.conversation_id, "the hint names the turn's cache"


async def test_a_resumed_conversation_is_prepared_once_the_model_is_loaded(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await chat(pilot, engine, "First topic", "About the first")
        stored_id = app.chat.session.stored_id
    resumed, resumed_engine = staged_app(history=history, conversation=history.last_conversation())
    async with resumed.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(resumed.chat.conversation.views()) == 2, what="the resumed turns")
        assert resumed_engine.prepared == [], "no model yet: nothing can be read"
        await staged.loaded_scene(pilot, resumed_engine)
        await until(pilot, lambda: resumed_engine.prepared, what="the hint")
        assert [(h.conversation_id, h.saved_as) for h in resumed_engine.prepared] == [(stored_id, stored_id)]


async def test_a_conversation_held_with_another_model_is_not_prepared(staged_app, history):
    """Its saved cache was made by that model: reading it for the loaded one is wasted work (the engine would
    read the file and throw it away). It is prepared when its own model has loaded (`ModelLoaded`)."""
    from mlxchat.settings import ChatSettings

    other = history.create_conversation("Held with another", settings=ChatSettings(model="/models/other"))
    history.add_message(other.id, "user", "Hi")
    history.add_message(other.id, "assistant", "Hello")
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)
        await staged.ask(pilot, "Still answering")  # busy: the other model cannot load yet
        await app.chat.show_session(app.chat.store.load(other.id))
        assert app.chat.session.stored_id == other.id
        assert engine.prepared == []
