"""The step that closes the thinking and starts the answer (a server's chunk "…</think>\n\nHi", read by the remote
engine's `ThinkingSplitter`) is counted as thinking, and its count must go out with the thinking, before
`ThinkingDone`: sent after it (and after the answer's first text) as an empty `ThinkingDelta`, the status pane went
back from "generating" to "thinking" while the answer was written (5fe5378's phase undone), and the collapsed
block counted one thinking token more than `ThinkingDone` said.

The events are the real `decode` loop's, over a real splitter; the staged engine only carries them to the app
(no server or model is needed to produce them)."""

from __future__ import annotations

import time
from dataclasses import replace

import staged
from mlxchat.engine import ChatRequest, Message, ThinkingDelta, ThinkingDone
from mlxchat.engine.control import RequestControl
from mlxchat.engine.streaming import TurnClock, decode
from mlxchat.engine.thinking import TAGGED_THINKING, ThinkingSplitter
from mlxchat.ui.widgets.thinking import ThinkingBlock

from conftest import SIZE, until

QWEN_INFO = staged.THINKING_INFO


def decoded(steps: list[tuple[str, int]]) -> list:
    """The events `decode` sends for `steps` of a tagged-thinking stream, as the remote engine reads it."""
    events: list = []
    request = ChatRequest((Message("user", "q"),))
    decode(
        steps,
        request=request,
        control=RequestControl(request.request_id, "chat", "decode"),
        clock=TurnClock(start=time.perf_counter(), prompt_tokens=5, cached_tokens=0, context_size=100),
        emit=events.append,
        eos_token_ids=[0],
        thinking=ThinkingSplitter(TAGGED_THINKING, trim_start=False),
        batch_interval_s=60.0,
    )
    return events


STEPS = [("<think>", 1), ("Let me see", 2), (", yes.", 3), ("</think>\n\nHi", 4)]


def test_the_closing_steps_count_goes_out_with_the_thinking_before_thinking_done():
    events = decoded(STEPS)
    done = next(i for i, event in enumerate(events) if isinstance(event, ThinkingDone))
    after = [event for event in events[done + 1 :] if isinstance(event, ThinkingDelta)]
    assert after == [], f"thinking counted after ThinkingDone: {after}"
    assert sum(event.tokens for event in events if isinstance(event, ThinkingDelta)) == events[done].tokens


async def test_the_status_stays_generating_and_the_block_keeps_thinking_dones_count(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        rid = await staged.prefilled_scene(pilot, engine, QWEN_INFO)
        events = decoded(STEPS)
        for event in events:
            engine.emit(replace(event, request_id=rid))
        turn = app.chat.conversation.views()[-1].turn
        await until(pilot, lambda: turn.text == "Hi", what="the answer's first text")
        for _ in range(5):
            await pilot.pause()
        thought = next(event for event in events if isinstance(event, ThinkingDone)).tokens
        assert app.chat.status.phase == "generating", app.chat.status_bar.phase_text()
        assert turn.thinking_tokens == thought
        header = app.chat.conversation.views()[-1].query_one(ThinkingBlock).query_one(".thinking-header")
        assert f"· {thought} tokens" in str(header.content), str(header.content)
