"""The chat screen's requests carry the conversation's overflow policy and KV-cache quantization."""

from __future__ import annotations

from mlxchat.settings import ChatSettings
from mlxchat.ui.chat_model import ChatSession, Turn


def test_every_request_of_a_conversation_carries_its_overflow_policy_and_kv_bits():
    session = ChatSession(settings=ChatSettings(overflow="rolling-window", kv_bits=8))
    question = Turn("user", "Hello")
    session.turns = [question, Turn("assistant", "Hi", status="stopped")]
    requests = [session.request_for(Turn("user", "More")), session.continue_request(False), session.retry_request()]
    assert [(r.overflow, r.kv_bits) for r in requests] == [("rolling-window", 8)] * 3


def test_a_conversation_with_default_settings_truncates_the_middle_at_full_precision():
    request = ChatSession().request_for(Turn("user", "Hello"))
    assert (request.overflow, request.kv_bits) == ("truncate-middle", None)


def test_a_context_windows_indices_name_the_turns_behind_the_request():
    session = ChatSession(settings=ChatSettings(system_prompt="Be brief."))
    first, answer, failed, second = (
        Turn("user", "One"),
        Turn("assistant", "Uno"),
        Turn("assistant", "", status="error"),
        Turn("user", "Two"),
    )
    session.turns = [first, answer, failed, second]
    request = session.request_for(Turn("user", "Three"))
    session.turns.append(Turn("user", "Three"))
    session.turns.append(Turn("assistant", "", status="streaming"))  # the answer being written
    behind = session.message_turns()
    assert len(behind) == len(request.messages)
    assert behind[0] is None and behind[1:4] == [first, answer, second]
    assert [turn.text for turn in behind[1:]] == [message.content for message in request.messages[1:]]


def test_requests_name_the_stored_conversation_for_the_saved_prompt_cache():
    """A new chat's own id dies with the process; once the history has stored it, the engine saves the prompt
    cache under the stored id, which is what `mlxchat -c` resumes after a restart."""
    session = ChatSession()
    assert session.request_for(Turn("user", "Hello")).saved_as is None
    session.stored_id = "0f3c"
    request = session.request_for(Turn("user", "Hello"))
    assert (request.conversation_id, request.saved_as) == (session.id, "0f3c")
