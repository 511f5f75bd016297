"""The overflow policy as a plain function: which messages fit, from token costs alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlxchat.engine.context_window import ContextOverflow, answer_room, plan_window

ROLES = ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]


def test_a_conversation_that_fits_is_read_whole():
    window = plan_window([10] * 8, ROLES, room=80)
    assert window.kept == tuple(range(8)) and window.hidden == () and window.tokens == 80


def test_truncate_middle_keeps_the_system_prompt_the_first_exchange_and_the_recent_turns():
    window = plan_window([10] * 8, ROLES, room=60)
    assert window.kept[:3] == (0, 1, 2)
    assert window.kept[-1] == 7
    assert window.tokens <= 60
    # 20 tokens too many; the window moves by whole quarters of the room (15), so 30 go, then the
    # assistant message that would otherwise open the recent turns.
    assert window.hidden == (3, 4, 5, 6)


def test_the_recent_turns_start_with_a_user_message():
    costs = [10, 10, 10, 10, 30, 10, 10, 10]
    window = plan_window(costs, ROLES, room=95)
    first_recent = window.kept[3]
    assert ROLES[first_recent] == "user"


def test_rolling_window_gives_up_the_first_exchange_too():
    window = plan_window([10] * 8, ROLES, room=60, policy="rolling-window")
    assert window.kept[0] == 0 and 1 not in window.kept
    assert window.kept[-1] == 7 and ROLES[window.kept[1]] == "user"


def test_stop_refuses_with_the_numbers():
    with pytest.raises(ContextOverflow) as raised:
        plan_window([10] * 8, ROLES, room=60, policy="stop")
    assert (raised.value.needed, raised.value.room) == (80, 60)


def test_a_last_message_that_alone_is_too_long_is_refused_with_its_size():
    with pytest.raises(ContextOverflow) as raised:
        plan_window([10, 10, 10, 100], ["system", "user", "assistant", "user"], room=60)
    assert raised.value.needed == 110


def test_a_first_exchange_too_big_to_keep_is_given_up_rather_than_refusing():
    costs = [5, 40, 40, 10, 10, 10]
    roles = ["system", "user", "assistant", "user", "assistant", "user"]
    window = plan_window(costs, roles, room=40)
    assert 1 not in window.kept and window.kept[-1] == 5 and window.tokens <= 40


def test_continuing_an_answer_keeps_its_question():
    roles = ["user", "assistant"] * 5
    window = plan_window([10] * 10, roles, room=40, keep_last=2)
    assert window.kept[-2:] == (8, 9)


def test_the_window_stays_put_for_several_turns_so_the_prompt_cache_keeps_its_prefix():
    """As the chat grows turn by turn, the set of hidden messages changes only every few turns (it moves in steps
    of a quarter of the room), and the messages right after the pinned start stay the same in between."""
    roles = ["system", "user", "assistant"]
    costs = [20, 30, 30]
    starts = []
    for _turn in range(60):
        roles += ["user", "assistant"]
        costs += [25, 35]
        window = plan_window(costs + [25], roles + ["user"], room=1200)
        assert window.tokens <= 1200
        starts.append(window.kept[3])
    moves = sum(1 for before, after in zip(starts, starts[1:]) if before != after)
    # 60 tokens a turn, a quarter of the room is 300: the window moves about every fifth turn, not every turn.
    assert 3 <= moves <= 10


def test_the_answer_room_is_the_answer_limit_but_at_most_a_quarter_of_the_context():
    assert answer_room(8192, 512) == 512
    assert answer_room(2048, 1024) == 512


def test_a_prompt_is_cut_only_past_the_answers_room_and_never_under_stop():
    """`prompt_fit.must_cut`, asked by the fitting and by the vision route before it pays for an image's cost."""
    from mlxchat.engine import ChatRequest, Message, SamplingParams
    from mlxchat.engine.prompt_fit import must_cut

    ask = ChatRequest((Message("user", "hi"),), sampling=SamplingParams(max_tokens=512), overflow="truncate-middle")
    assert not must_cut(ask, 8192 - 512, 8192)
    assert must_cut(ask, 8192 - 511, 8192)
    assert not must_cut(replace(ask, overflow="stop"), 8192 - 511, 8192)
