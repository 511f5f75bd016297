"""Snapshots of every visible state, at a fixed size.

States are staged from real engine event types (`mlxchat.ui.staged`) with fixed numbers, a fixed clock and
animation off, so no timing, elapsed time or memory figure varies between runs. The real event flow behind
each state is tested in `test_chat_real_engine.py`.
"""

from __future__ import annotations

import pytest
from textual import events

from mlxchat.ui.staged import ANSWER, VISION_INFO, half_of, play_answer_end, play_answer_start, play_loading
from mlxchat.ui.widgets.status import StatusBar

from conftest import SIZE, staged_loaded, until

QUESTION = "What is the capital of France?"


async def ask(pilot, engine, text: str = QUESTION) -> None:
    await pilot.press(*text, "enter")
    await until(pilot, lambda: pilot.app.chat.busy and pilot.app.chat.active.kind == "chat", what="the send")


async def streaming(pilot, engine) -> None:
    await staged_loaded(pilot, engine)
    await ask(pilot, engine)
    play_answer_start(engine, half_of(ANSWER), 24)
    await until(pilot, lambda: pilot.app.chat.status.phase == "generating", what="generating")


async def draining(pilot, engine) -> None:
    await streaming(pilot, engine)
    await pilot.press("escape")
    pilot.app.test_clock[0] += 1.2  # 1.2 s after the key, the drain still runs
    pilot.app.chat.set_status(pilot.app.chat.status)


async def stopped(pilot, engine) -> None:
    await draining(pilot, engine)
    play_answer_end(engine, half_of(ANSWER), 24, reason="cancelled")
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


async def answered(pilot, engine) -> None:
    await staged_loaded(pilot, engine)
    await ask(pilot, engine)
    play_answer_start(engine, ANSWER, 61)
    play_answer_end(engine, ANSWER, 61)
    await until(pilot, lambda: not pilot.app.chat.busy, what="the finish")


def snap(snap_compare, staged_app, scene, **options) -> bool:
    app, engine = staged_app(**options)

    async def run_before(pilot) -> None:
        await scene(pilot, engine)
        await pilot.pause()

    return snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_model_loading(snap_compare, staged_app):
    """You should see an empty conversation with the welcome text and a status pane saying "loading 40%" with a
    progress bar and the step "Reading weights of SmolLM2-135M-Instruct"."""

    async def scene(pilot, engine):
        await until(pilot, lambda: bool(engine.submitted), what="the load request")
        play_loading(engine)
        await until(pilot, lambda: pilot.app.chat.status.progress == 0.4, what="the progress")

    assert snap(snap_compare, staged_app, scene)


def test_idle_with_a_loaded_model(snap_compare, staged_app):
    """You should see the welcome text, an empty prompt, and "● ready" with the model name, its size and
    ctx 0/8192 in the status pane."""
    assert snap(snap_compare, staged_app, staged_loaded)


def test_streaming(snap_compare, staged_app):
    """You should see the question, half an answer (prose and the start of a Python code block) and a
    "generating" status with 24 tokens and 48.2 tok/s."""
    assert snap(snap_compare, staged_app, streaming)


def test_draining(snap_compare, staged_app):
    """You should see the half answer and the status pane in the warning colour: "draining 1.2s" with
    "stopping the answer … after the current step…"."""
    assert snap(snap_compare, staged_app, draining)


def test_stopped(snap_compare, staged_app):
    """You should see the half answer with a warning-coloured edge and the footer "■ stopped after 24 tokens —
    ctrl+r continues · f5 retries", and "■ stopped" in the status pane."""
    assert snap(snap_compare, staged_app, stopped)


def test_busy_refusal(snap_compare, staged_app):
    """You should see the draining status and, above the prompt, the engine's busy answer ("Engine busy:
    answering chat-… (draining, 1.4s) …Your prompt is kept."), with "And Italy?" still in the prompt."""

    async def scene(pilot, engine):
        await draining(pilot, engine)
        await pilot.press(*"And Italy?", "enter")

    assert snap(snap_compare, staged_app, scene)


def test_finished_answer_with_stats(snap_compare, staged_app):
    """You should see the whole answer, its code block highlighted, and the stats footer "TTFT 0.31s · 48.2
    tok/s · 61 tokens · prompt 42"; the status is ready with ctx 103/8192."""
    assert snap(snap_compare, staged_app, answered)


def test_two_attachments(snap_compare, staged_app, images):
    """You should see the attachment pane with two half-block previews (an orange sunset, a blue-white-red
    flag), their names, pixel sizes and file sizes, above a prompt that says "compare these"."""

    async def scene(pilot, engine):
        await staged_loaded(pilot, engine, VISION_INFO)
        pilot.app.post_message(events.Paste(f"{images['sunset']} {images['flag']} compare these"))
        await until(pilot, lambda: len(pilot.app.chat.attachments) == 2, what="two attachments")

    assert snap(snap_compare, staged_app, scene)


def test_attachment_error(snap_compare, staged_app, images, monkeypatch):
    """You should see, above the prompt, the error "Cannot attach broken.png: the image is damaged and cannot be
    decoded (…)" and the pasted path "./broken.png" left in the prompt for the user to fix."""
    monkeypatch.chdir(images["corrupt"].parent)  # a relative path keeps the temporary folder out of the picture

    async def scene(pilot, engine):
        await staged_loaded(pilot, engine, VISION_INFO)
        pilot.app.post_message(events.Paste("./broken.png"))
        await until(pilot, lambda: bool(pilot.app.chat.notice_text()), what="the error")

    assert snap(snap_compare, staged_app, scene)


def test_help_screen(snap_compare, staged_app):
    """You should see the help modal listing every action grouped as "In the prompt", "Conversation" and
    "Anywhere", each with its keys."""

    async def scene(pilot, engine):
        await staged_loaded(pilot, engine)
        await pilot.press("f1")

    assert snap(snap_compare, staged_app, scene)


@pytest.mark.parametrize("theme", ["mlxchat", "mlxchat-paper", "mlxchat-phosphor", "mlxchat-ember"])
def test_each_bundled_theme(snap_compare, staged_app, theme):
    """You should see a finished answer with stats drawn in the named theme's colours."""
    assert snap(snap_compare, staged_app, answered, theme=theme)


async def test_draining_is_a_distinct_style(staged_app):
    """Not a snapshot: the draining class is what gives the status pane its own colour."""
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await draining(pilot, engine)
        bar = app.chat.query_one(StatusBar)
        assert bar.has_class("-draining") and not bar.has_class("-generating")
