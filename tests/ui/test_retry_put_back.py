"""A retry (F5) keeps the answer it replaces in the history until the new answer is first written; a retry that
writes nothing (a busy server, an error, Esc, a "stop" refusal while another conversation is read) puts that
answer back, on screen and in the history, and says so. The staged engine stands in for the engine's and the
remote server's events (a busy 503, an error before any text), which cannot be produced here on demand; what is
checked is read back from the real history store."""

from __future__ import annotations

import threading

import pytest

from mlxchat.engine import Started, TextDelta, ThinkingDelta, ThinkingDone, Usage
from mlxchat.store import History
from mlxchat.ui.widgets.message import MessageView

from staged import ask, loaded_scene, play_answer_end, play_answer_start

from conftest import SIZE, until

OLD = "Old answer"
HELLO = [("user", "Hello there"), ("assistant", OLD)]


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


def stored(history: History) -> list[tuple[str, str]]:
    return [(m.role, m.text) for c in history.list_conversations() for m in history.get_conversation(c.id).messages]


def shown(app) -> list[str]:
    return [view.turn.text for view in app.chat.conversation.query(MessageView)]


async def answered_then_retried(pilot, engine) -> None:
    """"Hello there" answered with OLD (stored), then F5: the retry is awaited, nothing written yet."""
    await loaded_scene(pilot, engine)
    await ask(pilot, "Hello there")
    play_answer_start(engine, OLD, 2)
    play_answer_end(engine, OLD, 2)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the answer")
    await pilot.app.chat.store.flush()
    await pilot.press("f5")
    await until(pilot, lambda: pilot.app.chat.busy and pilot.app.chat.active.kind == "chat", what="the retry")


@pytest.mark.parametrize(
    "reason, fields, said",
    [
        ("error", {"error": "Server busy: try again in a moment.", "busy": True}, "failed: Server busy"),
        ("error", {"error": "http://gpu:8000/v1 answered HTTP 500"}, "failed: http://gpu:8000/v1 answered HTTP 500"),
        ("cancelled", {}, "stopped before it wrote anything"),
    ],
    ids=["busy", "error", "cancelled"],
)
async def test_a_retry_that_writes_nothing_puts_the_old_answer_back(staged_app, history, reason, fields, said):
    """Busy: the question was the last message sent this run, so it used to be taken back into the prompt, with
    the old answer deleted (and the conversation, being its only message). Error or Esc: the empty answer used
    to replace the old one in the history."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        if reason == "cancelled":
            await pilot.press("escape")
        engine.finish(reason, **fields)
        await until(pilot, lambda: not app.chat.busy, what="the retry's end")
        assert shown(app) == ["Hello there", OLD] and app.chat.prompt.text == ""
        assert [turn.text for turn in app.chat.session.turns] == ["Hello there", OLD]
        notice = app.chat.notice_text()
        assert said in notice and "previous answer is kept" in notice, notice
        await app.chat.store.flush()
        assert stored(history) == HELLO
        await pilot.press("f5")  # the answer put back can be retried again, and is replaced when that one writes
        await until(pilot, lambda: app.chat.busy, what="the second retry")
        play_answer_start(engine, "New answer", 2)
        play_answer_end(engine, "New answer", 2)
        await until(pilot, lambda: not app.chat.busy, what="the second retry's end")
        await app.chat.store.flush()
    assert stored(history) == [("user", "Hello there"), ("assistant", "New answer")]


@pytest.mark.parametrize("reason", ["cancelled", "shutdown", "length"])
async def test_a_retry_that_only_thought_puts_the_old_answer_back(staged_app, history, reason):
    """Esc, Ctrl+Q or max_tokens while the retry was still thinking: no answer text was written, so the old answer
    never left the history (only answer text is saved as it streams). It used to be dropped from the conversation
    and the history, replaced by a stopped thought with no answer."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        rid = engine.last_request_id
        engine.emit(Started(rid, 12, 0, "text"))
        engine.emit(ThinkingDelta(rid, "The user greets me.", 5))
        await until(pilot, lambda: app.chat.status.phase == "thinking", what="the thinking")
        await app.chat.store.flush()
        assert stored(history) == HELLO, "a thought is not an answer: nothing is written yet"
        if reason == "cancelled":
            await pilot.press("escape")
        elif reason == "shutdown":
            await pilot.press("ctrl+q")
        engine.finish(reason, reasoning="The user greets me.", usage=Usage(12, 0, 5, 5))
        if reason == "shutdown":
            await until(pilot, lambda: app.return_code is not None, what="the exit")
        else:
            await until(pilot, lambda: "previous answer is kept" in app.chat.notice_text(), what="the put-back")
            assert shown(app) == ["Hello there", OLD]
            assert [(turn.text, turn.thinking) for turn in app.chat.session.turns] == [("Hello there", ""), (OLD, "")]
            notice = app.chat.notice_text()
            assert "while thinking, before any answer" in notice and "previous answer is kept" in notice, notice
            await app.chat.store.flush()
    assert stored(history) == HELLO


@pytest.mark.parametrize("reason", ["cancelled", "stop"])
async def test_a_retry_that_wrote_only_whitespace_puts_the_old_answer_back(staged_app, history, reason):
    """A server with a reasoning parser often sends "\n\n" as the first answer text after the thinking. A retry
    stopped (or ended) right there wrote no answer: the old one comes back, as after a thought alone. Before, the
    blank answer replaced it on screen and in the history, and nothing was said (review of 0d74f64)."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        rid = engine.last_request_id
        engine.emit(Started(rid, 12, 0, "text"))
        engine.emit(ThinkingDelta(rid, "The user greets me.", 5))
        engine.emit(ThinkingDone(rid, 5, 0.4))
        engine.emit(TextDelta(rid, "\n\n", 1))
        await until(pilot, lambda: app.chat.status.phase == "generating", what="the blank answer text")
        if reason == "cancelled":
            await pilot.press("escape")
        engine.finish(reason, reasoning="The user greets me.", usage=Usage(12, 1, 5, 6))
        await until(pilot, lambda: "previous answer is kept" in app.chat.notice_text(), what="the put-back")
        assert shown(app) == ["Hello there", OLD]
        await app.chat.store.flush()
    assert stored(history) == HELLO


async def test_a_retry_refused_while_another_conversation_is_read_keeps_its_old_answer(staged_app, history):
    """The "stop" policy refused the retry after the reader had opened a new chat: the refused retry's
    conversation is not on screen (no offer there), and the answer it was to replace stays, in memory and stored."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        retried = app.chat.session
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.chat.session is not retried, what="the new chat")
        engine.finish("error", error="The conversation no longer fits.", overflow_refused=True)
        await until(pilot, lambda: not app.chat.busy, what="the refusal")
        assert [turn.text for turn in retried.turns] == ["Hello there", OLD]
        assert shown(app) == []
        assert "previous answer is kept" in app.chat.notice_text(), app.chat.notice_text()
        await app.chat.store.flush()
    assert stored(history) == HELLO


async def test_the_old_answer_leaves_the_history_only_with_the_new_answers_first_write(staged_app, history):
    """The first text of a retry used to queue the old answer's removal at once, while the new answer's first
    partial save waits `partial_every_s`: a crash in between left neither answer stored."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        play_answer_start(engine, "New", 1)
        await until(pilot, lambda: shown(app)[-1] == "New", what="the first text")
        await app.chat.store.flush()
        assert stored(history) == HELLO, "nothing of the new answer is written yet: the old one stays"
        app.chat.store.partial_every_s = 0.0
        play_answer_start(engine, " answer", 1)
        await until(pilot, lambda: shown(app)[-1] == "New answer", what="more text")
        await app.chat.store.flush()
        assert stored(history) == [("user", "Hello there"), ("assistant", "New answer")], "written as it streams"
        play_answer_end(engine, "New answer", 2)
        await until(pilot, lambda: not app.chat.busy, what="the finish")
        await app.chat.store.flush()
    assert stored(history) == [("user", "Hello there"), ("assistant", "New answer")]


async def test_quitting_while_a_retry_has_written_nothing_keeps_the_old_answer(staged_app, history):
    """Ctrl+Q drains the retry (reason "shutdown") before the app exits: the empty retry used to be saved over
    the old answer as a stopped answer with no text."""
    app, engine = staged_app(history=history)
    async with app.run_test(size=SIZE) as pilot:
        await answered_then_retried(pilot, engine)
        await pilot.press("ctrl+q")
        assert app.chat.status.phase == "draining"
        engine.finish("shutdown")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert stored(history) == HELLO


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory):
    from mlxchat.models.random_thinking import build_thinking_model

    return build_thinking_model(tmp_path_factory.mktemp("models") / "qwen3-thinking", "qwen3")


async def test_on_the_real_engine_esc_while_a_retry_thinks_keeps_the_old_answer(thinking_model, history):
    """The same through the real engine and a tiny Qwen3-style model whose retry is scripted to think at length:
    Esc while it thinks ends it (`Finished("cancelled")` with the thought and no text), and the old answer is
    back on screen and still the stored one. The gate holds the owner thread while thinking, so Esc lands there."""
    from mlxchat.engine import Engine, Finished
    from mlxchat.settings import ChatSettings
    from mlxchat.ui.app import make_app

    from conftest import Gate

    thought = "<think>\n" + "Let me think about this greeting once more. " * 60 + "\n</think>\n\nNew answer"
    settings = ChatSettings(temperature=0.0, max_tokens=1000, model=str(thinking_model))
    conversation = history.create_conversation("Greeting", settings=settings)
    for role, text in HELLO:
        history.add_message(conversation.id, role, text)
    gate, events, engines = Gate(), [], []
    hold_after_first_thought = threading.Event()

    def engine_factory(sink):
        def tee(event) -> None:
            events.append(event)
            gate.pass_through(engines[0].owner_thread)
            sink(event)
            # Closed from the owner thread itself, so the retry is held at its second event whatever the
            # machine's speed: closing it from the test once the UI shows "thinking" raced a fast decode to
            # max_tokens (CI: Finished("length") before Esc landed).
            if isinstance(event, ThinkingDelta) and hold_after_first_thought.is_set():
                hold_after_first_thought.clear()
                gate.close()

        engines.append(Engine(tee, script=lambda request: thought))
        return engines[0]

    app = make_app(model=str(thinking_model), engine_factory=engine_factory, history=history,
                   conversation=history.get_conversation(conversation.id), animate=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.chat.model is not None and not app.chat.busy, 60, "the model load")
            hold_after_first_thought.set()
            await pilot.press("f5")
            await until(pilot, gate.holding.is_set, 60, "the engine held mid-thought")
            await until(pilot, lambda: app.chat.status.phase == "thinking", 60, "the retry thinking")
            await pilot.press("escape")
            gate.open()
            await until(pilot, lambda: "previous answer is kept" in app.chat.notice_text(), 60, "the put-back")
            finished = [event for event in events if isinstance(event, Finished)][-1]
            assert (finished.reason, finished.text) == ("cancelled", "") and finished.reasoning
            assert shown(app) == ["Hello there", OLD]
            assert "while thinking, before any answer" in app.chat.notice_text(), app.chat.notice_text()
            await app.chat.store.flush()
    finally:
        gate.open()
        for engine in engines:
            engine.close(timeout_s=30)
    assert stored(history) == HELLO
