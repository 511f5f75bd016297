"""The "stop" overflow policy's offer, end to end on the real engine: a message the conversation can no longer take
is kept, and the user switches the policy and sends it again, or starts a new chat from a summary the model writes
(forced through the real model by a script), or cancels; the history shows what happened.

The model is a tiny random one that reads at most 512 tokens; its answers are scripted (`Engine(script=...)`), so
the summary is known text while every forward pass is the model's own.
"""

from __future__ import annotations

import pytest

from mlxchat.engine import ChatRequest, ContextWindow, Engine, Finished, Message, SamplingParams
from mlxchat.settings import ChatSettings
from mlxchat.store import History
from mlxchat.ui.app import make_app
from mlxchat.engine.summary import SUMMARY_INSTRUCTION, summary_intro
from mlxchat.ui.screens.overflow_offer import OverflowOfferScreen, SummaryScreen
from mlxchat.ui.widgets.message import MessageView

from conftest import Gate, loaded
from staged import until

SIZE = (100, 36)
TITLE = "Lisbon trip"
SUMMARY = "- Planning four days in Lisbon in May.\n- Budget: 900 euros; trams, no car."
ANSWER = "Sure, noted."
QUESTION = "Which museum first?"


@pytest.fixture
def history(tmp_path):
    store = History(tmp_path / "data")
    yield store
    store.close()


def script(request: ChatRequest) -> str:
    """The summary for the summary request, a short answer for anything else."""
    return SUMMARY if request.messages[-1].content == SUMMARY_INSTRUCTION else ANSWER


def long_conversation(history: History, model) -> str:
    """A stored conversation with `model`, longer than its context, under the "stop" policy."""
    settings = ChatSettings(temperature=0.0, max_tokens=64, overflow="stop", model=str(model))
    conversation = history.create_conversation(TITLE, settings=settings)
    for number in range(14):
        history.add_message(conversation.id, "user", f"Day {number}: what should we see, eat and ride in Lisbon?")
        history.add_message(conversation.id, "assistant", f"On day {number}, walk Alfama, eat pastries, ride tram 28.")
    return conversation.id


class ScriptedApps:
    """Apps on a real, scripted `Engine` with the short-context model; every event is kept, and a `Gate` can hold
    the owner thread inside an event (standing in for a slow step)."""

    def __init__(self, model) -> None:
        self.model = model
        self.events: list = []
        self.gate = Gate()
        self.engines: list[Engine] = []
        self.delay = lambda event: False
        """Events it matches are kept back (`delayed`) until `deliver_delayed`: one already on its way to the
        screen when a key lands."""
        self.delayed: list = []

    def __call__(self, history: History, conversation_id: str):
        def engine_factory(sink):
            holder: dict[str, Engine] = {}

            def tee(event) -> None:
                self.events.append(event)
                if self.delay(event):
                    self.delayed.append((sink, event))
                    return
                self.gate.pass_through(holder["engine"].owner_thread)
                sink(event)

            holder["engine"] = Engine(tee, script=script)
            self.engines.append(holder["engine"])
            return holder["engine"]

        conversation = history.get_conversation(conversation_id)
        return make_app(
            model=str(self.model), engine_factory=engine_factory, history=history, conversation=conversation,
            animate=False,
        )

    def deliver_delayed(self) -> None:
        delayed, self.delayed = self.delayed, []
        for sink, event in delayed:
            sink(event)


@pytest.fixture
def apps(short_model):
    factory = ScriptedApps(short_model)
    yield factory
    factory.gate.open()
    for engine in factory.engines:
        engine.close(timeout_s=30)


def stored(history: History, conversation_id: str) -> list[tuple[str, str]]:
    return [(message.role, message.text) for message in history.get_conversation(conversation_id).messages]


def shown(app) -> list[str]:
    return [view.turn.text for view in app.chat.conversation.query(MessageView)]


async def refused_with_offer(pilot) -> OverflowOfferScreen:
    """Send QUESTION into the long "stop" conversation and wait for the offer."""
    await loaded(pilot)
    await pilot.press(*QUESTION, "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, OverflowOfferScreen), 60, "the overflow offer")
    return pilot.app.screen


async def test_the_refused_message_is_kept_out_of_the_conversation_and_the_history(apps, history):
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        offer = await refused_with_offer(pilot)
        assert '"stop"' in offer.question and "Your message is kept" in offer.question
        await app.chat.store.flush()
        assert QUESTION not in shown(app) and app.chat.prompt.text == QUESTION
        assert stored(history, conversation_id) == before
        await pilot.press("escape")
        await until(pilot, lambda: "Nothing was sent" in app.chat.notice_text(), what="the offer cancelled")
        assert app.chat.prompt.text == QUESTION and not isinstance(app.screen, OverflowOfferScreen)
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before
    assert history.get_conversation(conversation_id).settings.overflow == "stop"


async def test_switching_the_policy_sends_the_message_again_and_is_saved_with_the_conversation(apps, history):
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        await pilot.press("t")
        await until(pilot, lambda: shown(app)[-2:] == [QUESTION, ANSWER] and not app.chat.busy, 60, "the answer")
        assert app.chat.session.settings.overflow == "truncate-middle"
        assert app.chat.prompt.text == ""
        window = [event for event in apps.events if isinstance(event, ContextWindow)][-1]
        assert window.policy == "truncate-middle" and window.hidden, "the middle was left out to make it fit"
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before + [("user", QUESTION), ("assistant", ANSWER)]
    assert history.get_conversation(conversation_id).settings.overflow == "truncate-middle"


async def test_a_new_chat_starts_from_the_models_summary_and_takes_the_message(apps, history):
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        await pilot.press("s")
        await until(pilot, lambda: app.chat.session.stored_id != conversation_id, 60, "the new chat")
        await until(pilot, lambda: shown(app)[-2:] == [QUESTION, ANSWER] and not app.chat.busy, 60, "the answer")
        assert not isinstance(app.screen, SummaryScreen)
        new = app.chat.session
        assert new.title == f"{TITLE} (continued)"
        intro, summary = shown(app)[:2]
        assert f"Summary of “{TITLE}” (history id {conversation_id})" in intro
        assert summary == SUMMARY
        summary_requests = [event for event in apps.events if isinstance(event, ContextWindow)][-2]
        assert summary_requests.policy == "truncate-middle", "the summary request reads what fits"
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before, "the old conversation stays as it was"
    assert stored(history, new.stored_id) == [
        ("user", intro), ("assistant", SUMMARY), ("user", QUESTION), ("assistant", ANSWER)
    ]
    saved = history.get_conversation(new.stored_id)
    assert saved.title == f"{TITLE} (continued)" and saved.settings.overflow == "stop"


async def test_stopping_the_summary_changes_nothing(apps, history):
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        apps.gate.close()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="the summary screen")
        await until(pilot, apps.gate.holding.is_set, what="the summary under way")
        await pilot.press("escape")
        await until(pilot, lambda: app.chat.status.phase == "draining", what="the summary draining")
        apps.gate.open()
        await until(pilot, lambda: not app.chat.busy, 60, "the summary's Finished")
        assert app.chat.session.stored_id == conversation_id
        assert app.chat.prompt.text == QUESTION
        assert "no new chat was made" in app.chat.notice_text()
        assert app.chat.status.detail == "summary stopped: nothing changed"
        await app.chat.store.flush()
    assert [summary.id for summary in history.list_conversations()] == [conversation_id]
    assert stored(history, conversation_id) == before


async def test_esc_as_the_summary_ends_still_changes_nothing(apps, history):
    """The summary's last event is already on its way when Esc lands: there is nothing left to cancel, and the
    stop still holds (no new chat, the message back in the prompt)."""
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        summarizing = lambda: app.chat.summarizing  # noqa: E731
        apps.delay = lambda e: isinstance(e, Finished) and summarizing() and e.request_id == summarizing().request_id
        await pilot.press("s")
        await until(pilot, lambda: apps.delayed, 60, "the summary's end, held back")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), what="the summary screen")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SummaryScreen), what="the summary screen closed")
        apps.deliver_delayed()
        await until(pilot, lambda: not app.chat.busy, 60, "the summary's Finished")
        assert app.chat.session.stored_id == conversation_id
        assert app.chat.prompt.text == QUESTION and "no new chat was made" in app.chat.notice_text()
        await app.chat.store.flush()
    assert [summary.id for summary in history.list_conversations()] == [conversation_id]
    assert stored(history, conversation_id) == before


@pytest.mark.parametrize("key", ["s", "t"])
async def test_a_request_of_this_screen_started_while_the_offer_was_open_refuses_it_in_words(apps, history, key):
    """The screen itself became busy (a model load) while the offer was open: the choice is refused with the
    engine's busy answer, not dropped silently, and the message goes back to the prompt."""
    conversation_id = long_conversation(history, apps.model)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        apps.gate.close()
        app.chat.load_model(str(apps.model))
        await until(pilot, apps.gate.holding.is_set, what="the load under way")
        await pilot.press(key)
        await until(pilot, lambda: "Your prompt is kept" in app.chat.notice_text(), what="the busy refusal")
        assert app.chat.notice_text().startswith("Engine busy"), app.chat.notice_text()
        assert app.chat.prompt.text == QUESTION and app.chat.summarizing is None
        apps.gate.open()
        await until(pilot, lambda: not app.chat.busy, 60, "the load's end")


async def test_the_offer_stays_with_its_conversation_when_another_one_was_opened(apps, history):
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        await app.chat.action_new_conversation()
        assert app.chat.session.stored_id is None
        await pilot.press("t")
        await until(pilot, lambda: shown(app)[-2:] == [QUESTION, ANSWER] and not app.chat.busy, 60, "the answer")
        assert app.chat.session.stored_id == conversation_id and app.chat.prompt.text == ""
        await app.chat.store.flush()
    assert [summary.id for summary in history.list_conversations()] == [conversation_id]
    assert stored(history, conversation_id) == before + [("user", QUESTION), ("assistant", ANSWER)]


@pytest.mark.parametrize("key", ["s", "t"])
async def test_a_busy_model_refuses_and_the_message_goes_back_to_the_prompt(apps, history, key):
    """Another request holds the engine (another window's, say) when a way out is chosen: the engine's busy
    answer is shown, the message goes back to the prompt, no summary starts (s) or the policy stays switched (t)."""
    conversation_id = long_conversation(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        engine = apps.engines[0]
        apps.gate.close()
        other = ChatRequest((Message("user", "hello"),), conversation_id="elsewhere",
                            sampling=SamplingParams(max_tokens=4), label="another window's question")
        assert engine.submit(other) is None
        await until(pilot, apps.gate.holding.is_set, what="the other request under way")
        await pilot.press(key)
        await until(pilot, lambda: "Your prompt is kept" in app.chat.notice_text(), what="the busy refusal")
        assert app.chat.prompt.text == QUESTION and not app.chat.busy
        assert not isinstance(app.screen, SummaryScreen) and app.chat.summarizing is None
        apps.gate.open()
        await until(pilot, lambda: engine.state().phase == "idle", 60, "the other request's end")
        await app.chat.store.flush()
    assert [summary.id for summary in history.list_conversations()] == [conversation_id]
    assert stored(history, conversation_id) == before
    policy = history.get_conversation(conversation_id).settings.overflow
    assert policy == ("truncate-middle" if key == "t" else "stop")


async def test_a_summary_that_ends_under_another_screen_closes_when_that_one_does(apps, history):
    from mlxchat.ui.screens.dialogs import ConfirmScreen

    conversation_id = long_conversation(history, apps.model)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await refused_with_offer(pilot)
        apps.gate.close()
        await pilot.press("s")
        await until(pilot, apps.gate.holding.is_set, what="the summary under way")
        app.push_screen(ConfirmScreen("Something else?"))
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="a screen over the summary")
        apps.gate.open()
        await until(pilot, lambda: shown(app)[-2:] == [QUESTION, ANSWER] and not app.chat.busy, 60, "the new chat")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await until(pilot, lambda: app.screen is app.chat, what="the chat on top again")



# ---- a retry or a continue the "stop" policy refuses gets the same offer, and the way out redoes it -------------

STOPPED = "On day 15, start at the"


def long_conversation_ending_stopped(history: History, model) -> str:
    """The long conversation, longer still, whose last answer was stopped part way (it can be continued)."""
    conversation_id = long_conversation(history, model)
    history.add_message(conversation_id, "user", "Day 15: and the last morning?")
    history.add_message(conversation_id, "assistant", STOPPED, status="stopped")
    return conversation_id


async def redo_refused_with_offer(pilot, key: str) -> OverflowOfferScreen:
    await loaded(pilot)
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, OverflowOfferScreen), 60, "the overflow offer")
    return pilot.app.screen


async def test_a_refused_continue_is_offered_the_ways_out_and_switching_continues_the_answer(apps, history):
    conversation_id = long_conversation_ending_stopped(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        offer = await redo_refused_with_offer(pilot, "ctrl+r")
        assert '"stop"' in offer.question and "the stopped answer" in offer.question
        assert app.chat.prompt.text == "", "nothing to put back: the question is in the conversation"
        stopped = app.chat.session.turns[-1]
        assert (stopped.status, stopped.text) == ("stopped", STOPPED), "still the stopped answer it was"
        await pilot.press("t")
        await until(pilot, lambda: shown(app)[-1] == STOPPED + ANSWER and not app.chat.busy, 60, "the continue")
        assert app.chat.session.turns[-1] is stopped and stopped.status == "complete"
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before[:-1] + [("assistant", STOPPED + ANSWER)]
    assert history.get_conversation(conversation_id).settings.overflow == "truncate-middle"


async def test_a_refused_retry_goes_on_in_a_new_chat_from_the_summary(apps, history):
    conversation_id = long_conversation_ending_stopped(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        offer = await redo_refused_with_offer(pilot, "f5")
        assert "answered again" in offer.question
        await pilot.press("s")
        await until(pilot, lambda: app.chat.session.stored_id != conversation_id, 60, "the new chat")
        await until(pilot, lambda: shown(app)[-1] == ANSWER and not app.chat.busy, 60, "the answer")
        new = app.chat.session
        summary_window = [event for event in apps.events if isinstance(event, ContextWindow)][-2]
        assert summary_window.policy == "truncate-middle"
        await app.chat.store.flush()
    intro = summary_intro(TITLE, conversation_id)
    assert stored(history, new.stored_id) == [
        ("user", intro), ("assistant", SUMMARY), ("user", "Day 15: and the last morning?"), ("assistant", ANSWER)
    ]
    assert stored(history, conversation_id)[:-1] == before[:-1], "the old conversation keeps its question"


async def test_a_refused_retry_is_done_again_under_the_policy_chosen(apps, history):
    conversation_id = long_conversation_ending_stopped(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await redo_refused_with_offer(pilot, "f5")
        stopped = app.chat.session.turns[-1]
        assert (stopped.status, stopped.text) == ("stopped", STOPPED), "behind the offer, the answer it was"
        await pilot.press("r")
        await until(pilot, lambda: shown(app)[-1] == ANSWER and not app.chat.busy, 60, "the answer")
        assert [turn.status for turn in app.chat.session.turns[-2:]] == ["complete", "complete"]
        assert "The answer is written again" in app.chat.notice_text()
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before[:-1] + [("assistant", ANSWER)]
    assert history.get_conversation(conversation_id).settings.overflow == "rolling-window"


async def test_cancelling_a_refused_continue_leaves_the_answer_stopped_and_in_the_models_view(apps, history):
    conversation_id = long_conversation_ending_stopped(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await redo_refused_with_offer(pilot, "ctrl+r")
        await pilot.press("escape")
        await until(pilot, lambda: "Nothing was sent" in app.chat.notice_text(), what="the offer cancelled")
        assert app.chat.prompt.text == ""
        assert app.chat.session.continue_request(False) is not None, "it can still be continued"
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before
    assert history.get_conversation(conversation_id).settings.overflow == "stop"


async def test_cancelling_a_refused_retry_leaves_the_stopped_answer_shown_and_stored(apps, history):
    """The retry was refused before it wrote anything: the answer it was to replace comes back, on screen and in
    the history, so "the conversation is as it was" is true."""
    conversation_id = long_conversation_ending_stopped(history, apps.model)
    before = stored(history, conversation_id)
    app = apps(history, conversation_id)
    async with app.run_test(size=SIZE) as pilot:
        await redo_refused_with_offer(pilot, "f5")
        await pilot.press("escape")
        await until(pilot, lambda: "Nothing was sent" in app.chat.notice_text(), what="the offer cancelled")
        stopped = app.chat.session.turns[-1]
        assert (stopped.status, stopped.text) == ("stopped", STOPPED)
        assert shown(app) == [turn.text for turn in app.chat.session.turns], "its view is back, the refused one gone"
        assert app.chat.session.continue_request(False) is not None, "it can still be continued"
        await app.chat.store.flush()
    assert stored(history, conversation_id) == before
    assert history.get_conversation(conversation_id).settings.overflow == "stop"


async def test_a_continue_refused_while_another_conversation_is_read_stays_stopped(apps, history):
    """The refusal reaches the conversation after the reader opened a new chat (no offer there): nothing was read,
    so the answer is the stopped answer it was, on its session and in the history, where it used to be saved as
    "error"; the notice says why it did not go on."""
    conversation_id = long_conversation_ending_stopped(history, apps.model)
    app = apps(history, conversation_id)
    apps.delay = lambda event: isinstance(event, Finished) and event.overflow_refused
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        continued = app.chat.session
        await pilot.press("ctrl+r")
        await until(pilot, lambda: bool(apps.delayed), 60, "the refusal on its way")
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.chat.session is not continued, what="the new chat")
        apps.deliver_delayed()
        await until(pilot, lambda: "was refused" in app.chat.notice_text(), 60, "the refusal")
        assert f"The continue in '{TITLE}' was refused" in app.chat.notice_text(), app.chat.notice_text()
        stopped = continued.turns[-1]
        assert (stopped.status, stopped.text, stopped.error) == ("stopped", STOPPED, None)
        assert not isinstance(app.screen, OverflowOfferScreen) and shown(app) == []
        await app.chat.store.flush()
    last = history.get_conversation(conversation_id).messages[-1]
    assert (last.role, last.text, last.status) == ("assistant", STOPPED, "stopped")
