"""The status pane tells the truth after a switch and about the wait: the context figure belongs to the
conversation on screen, and "loaded in" is the whole wait the person saw, not only the engine's part."""

from __future__ import annotations

from staged import TINY_INFO, answered_scene

from mlxchat.engine import ModelLoaded
from mlxchat.ui.engine_status import AnswerKeys, Awaited, EngineStatus, after_event, conversation_shown, load_requested

from conftest import SIZE, until

KEYS = AnswerKeys("ctrl+r", "f5")


def test_loaded_in_counts_from_the_request_not_from_the_engine_s_own_start():
    status = load_requested(EngineStatus(), "demo model", now=10.0)
    status = after_event(status, ModelLoaded("load-1", TINY_INFO, 0.6), Awaited("load-1", "load"), now=13.2, keys=KEYS)
    assert status.detail == "SmolLM2-135M-Instruct loaded in 3.2s"


def test_the_engine_s_figure_stands_when_no_request_time_is_known():
    status = after_event(EngineStatus(), ModelLoaded("load-1", TINY_INFO, 0.6), None, now=13.2, keys=KEYS)
    assert status.detail == "SmolLM2-135M-Instruct loaded in 0.6s"


def test_a_shown_conversation_brings_its_own_context_figure():
    status = EngineStatus(context_used=900, context_size=8192)
    assert conversation_shown(status, None).context_used is None
    assert conversation_shown(status, 120).context_used == 120


async def test_the_context_figure_follows_the_conversation_on_screen(staged_app):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await answered_scene(pilot, engine)
        answered = app.chat.status_bar.model_text()
        assert "ctx 103/8192" in answered, answered
        await pilot.press("ctrl+n")
        await until(pilot, lambda: not app.chat.session.turns, what="the new chat")
        assert "ctx 0/8192" in app.chat.status_bar.model_text()


async def test_at_80_columns_the_status_keeps_the_speed_and_the_whole_error(staged_app):
    from staged import stats_for, streaming_scene

    app, engine = staged_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await streaming_scene(pilot, engine)
        engine.emit(stats_for(engine.last_request_id, 24))
        await pilot.pause()
        detail = app.chat.status_bar.query_one("#status-detail")
        assert "48.2 tok/s" in str(detail.content) and detail.region.width >= len(str(detail.content))
        error = "http://gpu-box:8000/v1 answered HTTP 500 Internal Server Error for /chat/completions: “CUDA out of memory”."
        engine.finish("error", error=error)
        await until(pilot, lambda: app.chat.status.phase == "error", what="the error")
        await pilot.pause()
        detail = app.chat.status_bar.query_one("#status-detail")
        assert detail.region.width * detail.region.height >= len(error) + 1, detail.region


async def narrow_error_scene(pilot, engine) -> None:
    from staged import stats_for, streaming_scene

    await streaming_scene(pilot, engine)
    engine.emit(stats_for(engine.last_request_id, 24))
    engine.finish("error", error="http://gpu-box:8000/v1 answered HTTP 500 Internal Server Error: “CUDA out of memory”.")
    await until(pilot, lambda: pilot.app.chat.status.phase == "error", what="the error")
    await pilot.pause()


def test_snapshot_of_an_error_at_80_columns(snap_compare, staged_app):
    """You should see, at 80 columns, the status pane grown to two lines so the whole error shows ("✖ error
    http://gpu-box:8000/v1 answered HTTP 500 … “CUDA out of memory”."), with the model facts left out to make
    room, and the failed answer above it."""
    app, engine = staged_app()

    async def run_before(pilot) -> None:
        await narrow_error_scene(pilot, engine)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_a_server_s_error_with_control_sequences_is_shown_not_obeyed(staged_app):
    from staged import streaming_scene

    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await streaming_scene(pilot, engine)
        engine.finish("error", error="bad \x1b]52;c;cHduZWQ=\x07 request")
        await until(pilot, lambda: app.chat.status.phase == "error", what="the error")
        await pilot.pause()
        shown = [str(app.chat.status_bar.query_one("#status-detail").content), app.chat.conversation.views()[-1].footer]
    assert all("\x1b" not in text and "\x07" not in text for text in shown), shown
    assert all("␛]52;c;cHduZWQ=␇" in text for text in shown), shown
