"""The history store: what is saved comes back the same, and the list, search, rename and delete behave."""

from __future__ import annotations

import threading
from datetime import timezone

import pytest

from mlxchat.engine import Stats
from mlxchat.settings import ChatSettings
from mlxchat.store import History, StoreError


def test_nothing_is_created_until_the_first_write(data_dir):
    history = History(data_dir)
    assert history.list_conversations() == []
    assert history.search("anything") == []
    assert history.last_conversation() is None
    assert not data_dir.exists()
    history.create_conversation()
    assert history.database_path.is_file()


def test_round_trip_keeps_settings_messages_stats_and_images(history, make_image):
    settings = ChatSettings(system_prompt="Be brief.", temperature=0.2, top_p=0.9, max_tokens=64, seed=7, model="m")
    conversation = history.create_conversation("Geography", settings)
    image = make_image()
    stats = Stats("chat-1", 0.5, 12, 3, 18.0, 5, 9.5, 1024, 17, 4096)
    user = history.add_message(conversation.id, "user", "Where is this?\nPlease answer.", images=[image])
    answer = history.add_message(conversation.id, "assistant", "It looks like Par", status="stopped", stats=stats)

    loaded = History(history.data_dir).get_conversation(conversation.id)

    assert loaded.title == "Geography"
    assert loaded.settings == settings
    assert loaded.messages == (user, answer)
    assert [m.status for m in loaded.messages] == ["complete", "stopped"]
    assert loaded.messages[1].stats["decode_tps"] == 9.5
    assert loaded.created_at.tzinfo is timezone.utc
    (attachment,) = loaded.messages[0].attachments
    assert attachment.name == "photo.png"
    assert attachment.path.read_bytes() == image.read_bytes()


def test_a_chat_survives_its_image_being_moved(history, make_image):
    conversation = history.create_conversation()
    image = make_image(content=b"pixels")
    history.add_message(conversation.id, "user", "What is it?", images=[image])
    image.rename(image.with_name("moved.png"))

    (message,) = history.get_conversation(conversation.id).messages
    assert message.attachments[0].path.read_bytes() == b"pixels"
    assert message.to_engine_message().images == (message.attachments[0].path,)


def test_engine_messages_start_with_the_system_prompt(history):
    conversation = history.create_conversation(settings=ChatSettings(system_prompt="Speak French."))
    history.add_message(conversation.id, "user", "Hello")
    messages = history.get_conversation(conversation.id).engine_messages()
    assert [(m.role, m.content) for m in messages] == [("system", "Speak French."), ("user", "Hello")]


def test_untitled_conversation_is_named_after_its_first_user_message(history):
    conversation = history.create_conversation()
    history.add_message(conversation.id, "user", "\n  What is the capital of France?  \nThanks")
    history.add_message(conversation.id, "user", "Second question")
    assert history.get_conversation(conversation.id).title == "What is the capital of France?"


def test_list_is_most_recent_first_and_last_conversation_follows_activity(history):
    first = history.create_conversation("first")
    second = history.create_conversation("second")
    assert [s.title for s in history.list_conversations()] == ["second", "first"]
    history.add_message(first.id, "user", "back to the first")
    summaries = history.list_conversations()
    assert [s.title for s in summaries] == ["first", "second"]
    assert summaries[0].message_count == 1 and summaries[0].preview == "back to the first"
    assert history.last_conversation().id == first.id
    assert second.id in {s.id for s in history.list_conversations(limit=5)}


def test_rename_and_update_settings(history):
    conversation = history.create_conversation()
    history.rename(conversation.id, "  Trip   plans ")
    history.update_settings(conversation.id, ChatSettings(temperature=0.0))
    loaded = history.get_conversation(conversation.id)
    assert loaded.title == "Trip plans"
    assert loaded.settings.temperature == 0.0
    history.add_message(conversation.id, "user", "a renamed chat keeps its name")
    assert history.get_conversation(conversation.id).title == "Trip plans"
    with pytest.raises(StoreError):
        history.rename(conversation.id, "   ")


def test_delete_removes_messages_and_images_nothing_else_uses(history, make_image):
    kept, dropped = history.create_conversation("kept"), history.create_conversation("dropped")
    shared, own = make_image("shared.png", b"shared"), make_image("own.png", b"own")
    history.add_message(kept.id, "user", "shared image", images=[shared])
    stored = history.add_message(dropped.id, "user", "both", images=[shared, own]).attachments

    history.delete_conversation(dropped.id)

    assert [s.title for s in history.list_conversations()] == ["kept"]
    assert stored[0].path.exists(), "still used by the kept conversation"
    assert not stored[1].path.exists()
    with pytest.raises(StoreError) as error:
        history.get_conversation(dropped.id)
    assert error.value.kind == "not-found"


def test_regenerate_edit_and_continue(history):
    conversation = history.create_conversation()
    question = history.add_message(conversation.id, "user", "Count to three")
    answer = history.add_message(conversation.id, "assistant", "One, two", status="stopped")

    continued = history.update_message(answer.id, text="One, two, three.", status="complete")
    assert (continued.text, continued.status) == ("One, two, three.", "complete")

    assert history.delete_messages([answer.id]) == 1  # regenerate: drop the answer
    history.update_message(question.id, text="Count to four")  # edit the last user message
    (message,) = history.get_conversation(conversation.id).messages
    assert message.text == "Count to four" and message.status == "complete"


def test_search_finds_titles_and_message_text(history):
    paris = history.create_conversation("Capitals")
    history.add_message(paris.id, "user", "Tell me about France.")
    history.add_message(paris.id, "assistant", "The capital of France is PARIS, on the Seine. " * 3)
    cooking = history.create_conversation("Cooking")
    history.add_message(cooking.id, "user", "A recipe with 100% butter_and_salt")

    assert [s.id for s in history.search("paris")] == [paris.id]
    assert "PARIS" in history.search("paris")[0].preview
    assert [s.id for s in history.search("cook")] == [cooking.id]
    assert [s.id for s in history.search("100%")] == [cooking.id]
    assert [s.id for s in history.search("r_a")] == [cooking.id]
    assert history.search("0%b") == []  # % and _ are literal, not wildcards
    assert history.search("nowhere to be found") == []
    assert len(history.search("")) == 2


def test_bad_role_or_status_is_a_caller_bug(history):
    conversation = history.create_conversation()
    with pytest.raises(ValueError):
        history.add_message(conversation.id, "robot", "hi")
    with pytest.raises(ValueError):
        history.add_message(conversation.id, "user", "hi", status="done")


def test_threads_can_share_one_history(history):
    conversation = history.create_conversation()

    def write(worker: int) -> None:
        for i in range(20):
            history.add_message(conversation.id, "user", f"{worker}-{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(history.get_conversation(conversation.id).messages) == 80
