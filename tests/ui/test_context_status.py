"""The context meter (plain values, no Textual): it warns at 80 % and 95 % of the model's context, counts the turns
the overflow policy left out of view, and says when an answer stopped at the context limit."""

from __future__ import annotations

import pytest

from mlxchat.engine import ContextWindow, Finished, ModelLoaded
from mlxchat.ui.engine_status import AnswerKeys, Awaited, EngineStatus, after_event, context_warning

from staged import TINY_INFO

KEYS = AnswerKeys(continue_key="f5", retry_key="f4")
CHAT = Awaited("chat-1", "chat")


@pytest.mark.parametrize(
    ("used", "size", "warning"),
    [(0, 8192, None), (6553, 8192, None), (6554, 8192, "filling"), (7783, 8192, "full"), (100, None, None)],
)
def test_the_meter_warns_from_80_and_95_percent(used, size, warning):
    assert context_warning(used, size) == warning


def test_a_context_window_sets_the_meter_and_the_turns_out_of_view():
    status = after_event(EngineStatus(), ModelLoaded("load-1", TINY_INFO, 0.1), None, now=0.0, keys=KEYS)
    window = ContextWindow("chat-1", "truncate-middle", (3, 4, 5, 6), 7000, 8192, 1192)
    status = after_event(status, window, CHAT, now=1.0, keys=KEYS)
    assert (status.context_used, status.context_size, status.turns_out_of_view) == (7000, 8192, 4)
    assert status.context_warning == "filling"


def test_another_requests_window_changes_nothing():
    window = ContextWindow("chat-9", "truncate-middle", (3,), 7000, 8192, 1192)
    assert after_event(EngineStatus(), window, CHAT, now=1.0, keys=KEYS) == EngineStatus()


def test_an_answer_cut_at_the_context_limit_says_so():
    finished = Finished("chat-1", "length", "…", context_full=True)
    status = after_event(EngineStatus(phase="generating"), finished, CHAT, now=1.0, keys=KEYS)
    assert (status.phase, status.detail) == ("ready", "reached the context limit")
