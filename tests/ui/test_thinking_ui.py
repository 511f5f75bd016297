"""A reasoning model's thinking on screen: a live block at once, one line once the answer starts, expanded by a
key, kept open when stopped while thinking; stored apart; never copied with the answer; thinking switched per
conversation by a key (with the reason when the model cannot think). Snapshots of each visible state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import staged
from mlxchat.engine import TextDelta, ThinkingDelta, ThinkingDone, Usage
from mlxchat.store import History
from mlxchat.ui.chat_model import ChatSession, Turn
from mlxchat.ui.widgets.thinking import ThinkingBlock, stopped_footer, thinking_header

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO
THOUGHT = "The user asks about MLX.\nIt is Apple's array framework for machine learning.\nKeep it short."


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


def block(app) -> ThinkingBlock:
    return app.chat.conversation.views()[-1].query_one(ThinkingBlock)


def header(app) -> str:
    return str(block(app).query_one(".thinking-header").content)


def body_shown(app) -> bool:
    return block(app).query_one(".thinking-body").display


async def thinking_scene(pilot, engine) -> None:
    """The model has thought for 2.5 s (three lines, 21 tokens) and not answered yet."""
    rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
    engine.emit(ThinkingDelta(rid, THOUGHT, 21))
    await until(pilot, lambda: pilot.app.chat.status.phase == "thinking", what="thinking")
    pilot.app.test_clock[0] += 2.5
    block(pilot.app).show_turn()


async def answering_scene(pilot, engine) -> None:
    """Thinking ended after 2.5 s; the answer streams below the collapsed line."""
    await thinking_scene(pilot, engine)
    rid = engine.last_request_id
    engine.emit(ThinkingDone(rid, 23, 2.5))
    engine.emit(TextDelta(rid, staged.half_of(staged.ANSWER), 24))
    await until(pilot, lambda: pilot.app.chat.status.phase == "generating", what="the answer")


async def expanded_scene(pilot, engine) -> None:
    await answering_scene(pilot, engine)
    staged.play_answer_end(engine, staged.half_of(staged.ANSWER), 47)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")
    await pilot.press("alt+t")


async def stopped_while_thinking_scene(pilot, engine) -> None:
    await thinking_scene(pilot, engine)
    await pilot.press("escape")
    engine.finish("cancelled", reasoning=THOUGHT, usage=Usage(42, 0, 21, 21))
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


async def test_thinking_shows_live_at_once_then_collapses_when_the_answer_starts(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await thinking_scene(pilot, engine)
        assert header(app) == "Thinking… 2.5 s · 21 tokens" and body_shown(app)
        assert app.chat.conversation.views()[-1].text == "", "thinking is never answer text"
        rid = engine.last_request_id
        engine.emit(ThinkingDone(rid, 23, 2.5))
        engine.emit(TextDelta(rid, "MLX is", 2))
        await until(pilot, lambda: app.chat.status.phase == "generating", what="the answer")
        assert header(app) == "▸ Thought for 2.5 s · 23 tokens" and not body_shown(app)
        await pilot.click(ThinkingBlock)
        assert body_shown(app) and header(app).startswith("▾")


@pytest.mark.parametrize(
    "turn, footer",
    [
        (Turn("assistant", status="stopped", thinking="Hm", thinking_tokens=212), "■ stopped while thinking · 212 thinking tokens"),
        (
            Turn("assistant", status="stopped", thinking="Hm", thinking_tokens=212, thought_s=3.0),
            "■ stopped after thinking, before the answer · 212 thinking tokens",
        ),
        (Turn("assistant", "Paris", status="stopped", tokens=5, thinking_tokens=212, thought_s=3.0), "■ stopped after 5 tokens"),
        (Turn("assistant", status="stopped"), "■ stopped after 0 tokens"),
    ],
)
def test_a_stopped_answer_footer_names_the_thinking_it_stopped(turn, footer):
    assert stopped_footer(turn) == footer


async def test_continuing_an_answer_stopped_while_thinking_resumes_the_thinking(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await stopped_while_thinking_scene(pilot, engine)
        view = app.chat.conversation.views()[-1]
        assert "continues" in str(view.query_one(".message-footer").content), "the hint offers to continue"
        await app.chat.action_continue_answer()
        request = engine.submitted[-1]
        assert (request.resume_thinking, request.continue_last) == (THOUGHT, False)
        assert request.messages[-1].role == "user", "the question is asked again, the thinking resumed"
        rid = request.request_id
        engine.emit(ThinkingDelta(rid, "\nSay it plainly.", 4))
        engine.emit(ThinkingDone(rid, 4, 0.5))
        engine.emit(TextDelta(rid, "MLX is an array framework.", 6))
        engine.finish("stop", text="MLX is an array framework.", reasoning=THOUGHT + "\nSay it plainly.")
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        turn = view.turn
        assert (turn.thinking, turn.text) == (THOUGHT + "\nSay it plainly.", "MLX is an array framework.")
        assert turn.status == "complete" and view.turn is app.chat.session.turns[-1]
        assert header(app) == "▸ Thought for 3.0 s · 4 tokens", "2.5 s before the stop and 0.5 s resumed"


async def test_a_thought_that_cannot_be_resumed_is_answered_afresh_not_continued(staged_app):
    """With thinking switched off the engine would answer afresh (`resume_applies`): the continue key asks for
    that, a retry, so the stopped thought is not shown as if the model went on from it."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await stopped_while_thinking_scene(pilot, engine)
        stopped = app.chat.session.turns[-1]
        app.chat.session.settings = replace(app.chat.session.settings, thinking=False)
        await app.chat.action_continue_answer()
        request = engine.submitted[-1]
        assert (request.resume_thinking, request.continue_last) == ("", False)
        assert app.chat.session.turns[-1] is not stopped and stopped not in app.chat.session.turns
        assert "written afresh" in app.chat.notice_text()


def test_the_continue_request_resumes_a_thought_only_where_the_engine_would():
    question = Turn("user", "What is MLX?")
    stopped = Turn("assistant", status="stopped", thinking="The user asks")
    session = ChatSession(turns=[question, stopped])
    assert session.continue_request(True).resume_thinking == "The user asks"
    assert session.continue_request(False) is None, "a model that cannot resume a thought"
    question.images = (Path("cat.png"),)
    assert session.continue_request(True) is None, "an image turn is answered afresh"


async def test_thinking_is_stored_apart_and_copy_takes_the_answer_only(staged_app, history):
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answering_scene(pilot, engine)
        staged.play_answer_end(engine, "MLX is an array framework.", 30)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await pilot.press("f6")
        assert app.clipboard == app.chat.conversation.views()[-1].text
        assert "framework for machine learning" not in app.clipboard
        await until(pilot, lambda: history.get_conversation(app.chat.session.stored_id).messages[-1].thinking
                    == THOUGHT, what="the saved thinking")


async def test_the_thinking_key_switches_it_per_conversation_or_says_why_not(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine)  # the tiny model has no thinking format
        await pilot.press("ctrl+b")
        assert app.chat.session.settings.thinking is None
        assert "has no thinking format" in str(app.chat.query_one("#notice").content)
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged.loaded_scene(pilot, engine, QWEN_INFO)
        await pilot.press("ctrl+b")
        assert app.chat.session.settings.thinking is False
        await staged.ask(pilot)
        assert engine.submitted[-1].thinking is False


def test_snapshot_thinking_live(snap_compare, staged_app):
    """You should see the question, then a dim italic "Thinking… 2.5 s · 21 tokens" over three dim lines of
    thinking, no answer text yet, and "thinking" with 21 tokens in the status pane."""
    app, engine = staged_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: thinking_scene(pilot, engine))


def test_snapshot_thinking_collapsed_while_the_answer_streams(snap_compare, staged_app):
    """You should see one dim line "▸ Thought for 2.5 s · 23 tokens" above half an answer (prose and the start of a
    code block), and "generating" in the status pane."""
    app, engine = staged_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: answering_scene(pilot, engine))


def test_snapshot_thinking_expanded(snap_compare, staged_app):
    """You should see "▾ Thought for 2.5 s · 23 tokens" with the three lines of thinking under it, then the
    finished half answer with its stats footer, and "● ready"."""
    app, engine = staged_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: expanded_scene(pilot, engine))


def test_snapshot_stopped_while_thinking(snap_compare, staged_app):
    """You should see "■ Stopped while thinking · 2.5 s · 21 tokens" with the three lines of thinking still
    shown, no answer text, the footer "■ stopped while thinking · 21 thinking tokens — ctrl+r continues · f5
    retries", and "■ stopped" in the status pane."""
    app, engine = staged_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: stopped_while_thinking_scene(pilot, engine))


async def resumed_scene(pilot, engine) -> None:
    """Stopped after 2.5 s of thinking, continued: 0.5 s more of it, then the answer."""
    await stopped_while_thinking_scene(pilot, engine)
    await pilot.app.chat.action_continue_answer()
    rid = engine.last_request_id
    engine.emit(ThinkingDelta(rid, "\nSay it plainly.", 4))
    engine.emit(ThinkingDone(rid, 25, 0.5))
    engine.emit(TextDelta(rid, "MLX is an array framework.", 6))
    engine.finish("stop", text="MLX is an array framework.", reasoning=THOUGHT + "\nSay it plainly.")
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


async def answered_afresh_scene(pilot, engine) -> None:
    """Stopped while thinking, thinking then switched off: the continue key asks for a fresh answer."""
    await stopped_while_thinking_scene(pilot, engine)
    pilot.app.chat.session.settings = replace(pilot.app.chat.session.settings, thinking=False)
    await pilot.app.chat.action_continue_answer()
    await pilot.pause()


def test_snapshot_a_resumed_thought_counts_all_of_it(snap_compare, staged_app):
    """You should see one dim line "▸ Thought for 3.0 s · 25 tokens" (2.5 s before the stop, 0.5 s resumed) above
    the answer "MLX is an array framework.", and "● ready"."""
    app, engine = staged_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: resumed_scene(pilot, engine))


def test_snapshot_a_thought_that_cannot_be_resumed_is_answered_afresh(snap_compare, staged_app):
    """You should see the question and a new, empty answer waiting (the stopped thought is gone: it is replaced),
    and the notice "This answer cannot think on from where it stopped (an image turn, thinking off, or a model
    that cannot resume a thought): it is written afresh."."""
    app, engine = staged_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: answered_afresh_scene(pilot, engine))


@pytest.mark.parametrize(
    "before, line",
    [(2.5, "▸ Thought for 3.0 s · 25 tokens"), (None, "▸ Thought · 25 tokens")],
)
def test_a_resumed_thought_shows_its_whole_time_or_none(before, line):
    """A thought read from history has no stored time (`thought_before_s` None): resumed, it shows no time rather
    than only the resumed part's 0.5 s."""
    turn = Turn("assistant", "MLX is", thinking=THOUGHT, thinking_tokens=25, thought_before_s=before)
    turn.thought_s = (before or 0.0) + 0.5
    assert thinking_header(turn, expanded=False, now=0.0) == line


def test_a_thought_read_from_history_has_no_known_time(history):
    from mlxchat.ui.session_store import session_from

    conversation = history.create_conversation("MLX")
    history.add_message(conversation.id, "user", "What is MLX?")
    history.add_message(conversation.id, "assistant", "", status="stopped", thinking=THOUGHT)
    question, stopped = session_from(history.get_conversation(conversation.id)).turns
    assert (question.thought_before_s, stopped.thought_before_s) == (0.0, None)
