"""Snapshots of the "stop" overflow policy's offer, the summary as it streams, and the new chat that starts from it.

Staged from real engine event types with fixed numbers (`tests/staged.py`), so no timing varies between runs; the
real flow behind each state is tested on the real engine in `test_overflow_offer.py`. The conversation is opened
from a fixed in-memory record (no history), so its id in the summary's first message is fixed too.
"""

from __future__ import annotations

from datetime import datetime, timezone

from mlxchat.settings import ChatSettings
from mlxchat.store.records import Conversation, StoredMessage
from mlxchat.ui.screens.overflow_offer import OverflowOfferScreen, SummaryScreen

import staged
from conftest import until

SIZE = (100, 36)
QUESTION = "Which museum first?"
SUMMARY = "- Planning four days in Lisbon in May.\n- Budget: 900 euros; trams, no car.\n- Day 1 done: Alfama, tram 28."
REFUSAL = (
    "The conversation is 8330 tokens; SmolLM2-135M-Instruct reads at most 8192, and this conversation's overflow "
    'policy is "stop". To go on, switch its overflow policy to truncate-middle or rolling-window, or start a new '
    "conversation from a summary of this one."
)


def lisbon_trip(last_status: str = "complete") -> Conversation:
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    texts = [("user", "Plan four days in Lisbon for me, 900 euros."), ("assistant", "Day 1: Alfama and tram 28.")]
    statuses = ["complete", last_status]
    messages = tuple(
        StoredMessage(number, "trip-1", role, text, status, when)
        for number, ((role, text), status) in enumerate(zip(texts, statuses), 1)
    )
    settings = ChatSettings(overflow="stop")
    return Conversation("trip-1", "Lisbon trip", when, when, settings, messages)


async def offer_scene(pilot, engine) -> None:
    """The question was sent and refused by the "stop" policy: the offer is up."""
    await staged.loaded_scene(pilot, engine)
    await staged.ask(pilot, QUESTION)
    engine.finish("error", error=REFUSAL, overflow_refused=True)
    await until(pilot, lambda: isinstance(pilot.app.screen, OverflowOfferScreen), what="the offer")


async def summarizing_scene(pilot, engine) -> None:
    await offer_scene(pilot, engine)
    await pilot.press("s")
    await until(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen), what="the summary screen")
    staged.play_answer_start(engine, SUMMARY[:60], 18)
    await until(pilot, lambda: pilot.app.screen.tokens == 18, what="the summary's first text")


async def new_chat_scene(pilot, engine) -> None:
    await summarizing_scene(pilot, engine)
    staged.play_answer_end(engine, SUMMARY, 30)
    await until(pilot, lambda: pilot.app.chat.session.title == "Lisbon trip (continued)", what="the new chat")
    await until(pilot, lambda: pilot.app.chat.busy, what="the kept question sent")
    staged.play_answer_start(engine, "Start with the Gulbenkian.", 6)
    staged.play_answer_end(engine, "Start with the Gulbenkian.", 6)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the answer")


async def continue_offer_scene(pilot, engine) -> None:
    """The stopped last answer was continued (Ctrl+R) and refused by the "stop" policy: the offer is up."""
    await staged.loaded_scene(pilot, engine)
    await pilot.press("ctrl+r")
    engine.finish("error", error=REFUSAL, overflow_refused=True)
    await until(pilot, lambda: isinstance(pilot.app.screen, OverflowOfferScreen), what="the offer")


def snap(snap_compare, staged_app, scene, conversation: Conversation | None = None) -> bool:
    app, engine = staged_app(conversation=conversation or lisbon_trip())

    async def run_before(pilot) -> None:
        await scene(pilot, engine)
        await pilot.pause()

    return snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_offer(snap_compare, staged_app):
    """You should see, over the dimmed "Lisbon trip" chat, a dialog with the refusal ("The conversation is 8330
    tokens; … overflow policy is "stop" …"), then "Your message is kept." and what truncate-middle, rolling-window
    and a summary do, and four full-width buttons: "t  Switch to truncate-middle and send" (focused), "r  Switch to
    rolling-window and send", "s  New chat from a summary, then send" and "Esc  Cancel: keep the message in the
    prompt". The question is not in the conversation behind; it waits in the prompt below the dialog, and the
    status pane says "the conversation no longer fits (overflow: "stop")"."""
    assert snap(snap_compare, staged_app, offer_scene)


def test_the_summary_streaming(snap_compare, staged_app):
    """You should see a tall dialog "Summarizing “Lisbon trip” for a new chat…" with the first two lines of the
    summary in a framed box, "18 tokens written · the conversation stays as it is until the summary is done", and a
    button "Esc  Stop: nothing changes"; the question still waits in the prompt behind."""
    assert snap(snap_compare, staged_app, summarizing_scene)


def test_the_new_chat_from_the_summary(snap_compare, staged_app):
    """You should see the chat titled "Lisbon trip (continued)": first the user message "Summary of “Lisbon trip”
    (history id trip-1). This chat continues that conversation, …", then the assistant's three-line summary, then
    "Which museum first?" and its answer "Start with the Gulbenkian."; the status pane ready."""
    assert snap(snap_compare, staged_app, new_chat_scene)


def test_the_offer_for_a_refused_continue(snap_compare, staged_app):
    """You should see the same dialog over the "Lisbon trip" chat, without "Your message is kept.", ending "… which
    stays as it is. Your last question and the stopped answer go there, and the answer goes on.", and the buttons
    "t  Switch to truncate-middle and continue", "r  Switch to rolling-window and continue", "s  New chat from a
    summary, then continue there" and "Esc  Cancel: leave the conversation as it is". Behind it, the answer "Day 1:
    Alfama and tram 28." is still the stopped answer (its footer offers to continue), and the prompt is empty."""
    assert snap(snap_compare, staged_app, continue_offer_scene, lisbon_trip("stopped"))
