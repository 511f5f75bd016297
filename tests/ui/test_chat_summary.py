"""The summary's rules as plain values: what the summary request reads and how the new conversation opens."""

from __future__ import annotations

from mlxchat.engine import Finished, Usage
from dataclasses import replace

from mlxchat.engine import ModelInfo
from mlxchat.engine.summary import (
    SUMMARY_INSTRUCTION,
    SUMMARY_MAX_TOKENS,
    SUMMARY_THINKING_BUDGET,
    summary_cache_id,
    summary_problem,
)
from mlxchat.settings import ChatSettings
from mlxchat.ui.chat_model import ChatSession, Turn
from mlxchat.ui.chat_summary import summarized_session, summary_request


def trip() -> ChatSession:
    settings = ChatSettings(system_prompt="Be brief.", max_tokens=4000, overflow="stop", kv_bits=8)
    turns = [Turn("user", "Plan Lisbon."), Turn("assistant", "Day 1: Alfama."), Turn("assistant", "", status="error")]
    return ChatSession(id="trip-1", title="Lisbon trip", settings=settings, turns=turns, stored_id="trip-1")


def test_the_summary_request_reads_what_fits_of_the_conversation_as_the_model_reads_it():
    session = trip()
    request = summary_request(session, None)
    assert request.overflow == "truncate-middle", "a 'stop' conversation's summary must still fit"
    assert request.messages[:-1] == session.context(), "the failed answer is left out, as in every request"
    assert request.messages[-1].role == "user" and request.messages[-1].content == SUMMARY_INSTRUCTION
    assert request.kv_bits == 8 and "Lisbon trip" in request.label


def test_the_summary_has_its_own_prompt_cache_so_the_conversations_saved_one_stays():
    request = summary_request(trip(), None)
    assert request.conversation_id == request.saved_as == summary_cache_id("trip-1")
    assert "trip-1" not in (request.conversation_id, request.saved_as)


def test_thinking_is_off_where_the_template_can_switch_it_else_capped_beside_the_summarys_room():
    switch = ModelInfo("qwen", "/m", "text", "4-bit", 1, 4096, thinking="<think> tags", thinking_switch=True)
    off = summary_request(trip(), switch)
    assert off.thinking is False and off.sampling.max_tokens == SUMMARY_MAX_TOKENS
    capped = summary_request(trip(), replace(switch, thinking_switch=False))
    assert capped.thinking_budget == SUMMARY_THINKING_BUDGET
    assert capped.sampling.max_tokens == SUMMARY_MAX_TOKENS + SUMMARY_THINKING_BUDGET


def test_the_new_conversation_opens_with_the_request_and_the_summary_and_keeps_the_settings():
    session = trip()
    finished = Finished("chat-1", "stop", text="  - Lisbon, four days.\n", usage=Usage(10, 0, 7))
    new = summarized_session(session, finished)
    assert new.title == "Lisbon trip (continued)" and new.stored_id is None and new.id != session.id
    intro, summary = new.turns
    assert intro.role == "user" and "“Lisbon trip” (history id trip-1)" in intro.text
    assert (summary.role, summary.text, summary.tokens) == ("assistant", "- Lisbon, four days.", 7)
    assert new.settings == session.settings and len(session.turns) == 3


def test_only_a_written_summary_starts_a_new_conversation():
    assert summary_problem(Finished("c", "stop", text="notes")) is None
    assert summary_problem(Finished("c", "length", text="notes cut")) is None
    assert summary_problem(Finished("c", "cancelled", text="half")) == "The summary was stopped"
    assert "no memory" in summary_problem(Finished("c", "error", error="no memory"))
    assert summary_problem(Finished("c", "stop", text=" \n")) == "The model wrote an empty summary"
    only_thought = Finished("c", "length", text="", usage=Usage(10, 0, 512, reasoning_tokens=512))
    assert summary_problem(only_thought) == "The model only thought (512 thinking tokens) and wrote no summary"
