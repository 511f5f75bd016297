"""The long soak (`--soak` or MLXCHAT_SOAK=1): a chat session of hundreds of random turns on the real engine, and
many more `kill -9`s of a chat that saves as it answers.

The session sends, stops mid-answer, continues, retries, sends while draining, attaches good and bad images and
switches nothing else; after every step the screen must reach a settled state by itself, and every finished
answer on screen must be exactly the engine's text. Memory may grow with the conversation's widgets, not without
bound: the process's resident memory at the end is compared with its size after the warm-up.
"""

from __future__ import annotations

import random
import time

import pytest
from stress_app import SIZE, RealApps, idle, loaded, send, until
from test_stress_durability import check_kill_9_of_a_saving_chat

from mlxchat.engine import Finished

pytestmark = pytest.mark.slow

STEPS = 250


def resident_bytes() -> int:
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def new_conversation(chat) -> None:
    """The screen's own action where it has one (history), else a fresh in-memory session."""
    if hasattr(chat, "action_new_conversation"):
        await chat.action_new_conversation()
        return
    from mlxchat.ui.chat_model import ChatSession

    chat.session = ChatSession(settings=chat.session.settings)
    await chat.conversation.clear_turns()


@pytest.fixture
def apps():
    factory = RealApps()
    yield factory
    factory.close()


@pytest.mark.timeout(1800)
async def test_soak_a_long_random_chat_session(apps, tiny_vlm, bad_files):
    rng = random.Random(6)
    app = apps(tiny_vlm, max_tokens=120)
    chat = app.chat
    step_seconds: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        warm = 0
        for step in range(STEPS):
            if step == 20:
                warm = resident_bytes()
            started = time.perf_counter()
            action = rng.choice(["send", "send", "stop", "continue", "retry", "attach_good", "attach_bad", "busy"])
            print(f"step {step}: {action}", flush=True)  # shown by pytest when the soak fails
            chat.prompt.clear()
            if step % 8 == 7:  # the tiny models read 8192 tokens: start over before a conversation outgrows that
                await new_conversation(chat)
            if action == "attach_good":
                await send(pilot, f"/attach {bad_files['good']}")
                assert chat.attachments
                action = "send"
            elif action == "attach_bad":
                await send(pilot, f"/attach {bad_files[rng.choice(['zero_byte', 'truncated_png', 'not_an_image'])]}")
                assert "Cannot attach" in chat.notice_text()
                continue
            if action == "send":
                await send(pilot, f"question {step}")
            elif action in ("stop", "busy"):
                await send(pilot, f"long question {step}")
                await until(pilot, lambda: chat.busy is False or chat.status.phase == "generating", 30, "generating")
                await pilot.press("escape")
                if action == "busy":
                    await send(pilot, "sent while draining")
            elif action == "continue":
                await pilot.press("ctrl+r")
            elif action == "retry":
                await pilot.press("f5")
            await idle(pilot, 60)
            step_seconds.append(time.perf_counter() - started)
            finished = [e for e in apps.events if isinstance(e, Finished) and e.request_id.startswith("chat")]
            answer = chat.session.last_assistant()
            if finished and answer is not None and answer.status == "complete" and answer.text:
                assert answer.text.endswith(finished[-1].text), f"step {step}: the screen lost part of the answer"
        grown = resident_bytes() - warm
    assert grown < 300 * 2**20, f"resident memory grew {grown / 2**20:.0f} MiB over {STEPS - 20} steps"
    early, late = sum(step_seconds[:30]) / 30, sum(step_seconds[-30:]) / 30
    assert late < max(3 * early, 1.0), f"steps slowed down from {early:.2f}s to {late:.2f}s"


@pytest.mark.timeout(1800)
def test_soak_kill_9_of_a_chat_that_saves_as_it_answers(tiny_model, tmp_path):
    for seed in range(3, 23):
        check_kill_9_of_a_saving_chat(tiny_model, tmp_path / f"seed-{seed}", seed)


LONG_BLOCK_BUG = (
    "slow: every streamed batch re-parses and re-renders the whole last Markdown block (Textual's Markdown.append "
    "updates the last block from its first line), so while a code block streams, each append costs more: measured "
    "here at ~100 tok/s (a line per 100 ms), keypress → repaint grows from ~2 ms at 40 lines to 100-250 ms at "
    "200-240 lines. MessageView should coalesce appends by their measured cost (or stream an open code fence "
    "into a plain widget and highlight it when it closes)"
)


@pytest.mark.xfail(strict=False, reason=LONG_BLOCK_BUG)
@pytest.mark.timeout(600)
async def test_soak_keys_stay_responsive_while_a_long_code_block_streams():
    """A staged engine (no MLX) streams a 300-line code block at one line per 100 ms; every keypress must be
    drawn within 50 ms (timed by the benchmark's frame recorder)."""
    import asyncio
    import threading

    from textual import events

    from mlxchat.bench.frames import FrameRecorder
    from mlxchat.bench.pty_app import strip_escapes
    from mlxchat.engine import TextDelta
    from mlxchat.ui.app import make_app
    from staged import TINY_INFO, StagedEngine, loaded_scene

    holder = {}

    def factory(sink):
        holder["engine"] = StagedEngine(sink)
        return holder["engine"]

    app = make_app(engine_factory=factory)
    latencies = []
    async with app.run_test(size=SIZE) as pilot:
        engine = holder["engine"]
        await loaded_scene(pilot, engine, TINY_INFO)
        await send(pilot, "write the code")
        request_id = engine.last_request_id
        stop = threading.Event()

        def feed() -> None:
            engine.emit(TextDelta(request_id, "```python\n", 1))
            line = 0
            while not stop.is_set() and line < 300:
                engine.emit(TextDelta(request_id, f"    value_{line} = compute(items[{line}], scale=0.5)  # {line}\n", 10))
                line += 1
                time.sleep(0.1)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        recorder = FrameRecorder(app)
        typed = ""
        keys = random.Random(11)
        while feeder.is_alive():
            await asyncio.sleep(1.0)
            typed += keys.choice("zqxjkv")
            seen, pressed = asyncio.Event(), [time.perf_counter()]

            def drawn(at, frame, expected=typed, seen=seen, pressed=pressed) -> bool:
                if not seen.is_set() and chat_text(app) == expected and expected[-4:] in strip_escapes(frame.encode()):
                    latencies.append(at - pressed[0])
                    seen.set()
                return seen.is_set()

            recorder.watch(drawn)
            pressed[0] = time.perf_counter()
            app._driver.send_message(events.Key(typed[-1], typed[-1]))
            try:
                await asyncio.wait_for(seen.wait(), 10)
            except TimeoutError:
                latencies.append(float("inf"))
                seen.set()
        stop.set()
    slow = [round(seconds * 1000) for seconds in latencies if seconds > 0.05]
    assert not slow, f"{len(slow)} of {len(latencies)} keypresses took over 50 ms to draw: {slow} ms"


def chat_text(app) -> str:
    return app.chat.prompt.text
