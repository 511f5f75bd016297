"""Snapshot of the status pane while a remote server is silent mid-answer (staged from real engine event types,
as in `test_snapshots.py`; the real event flow is tested in `tests/remote/test_silence_notice.py`)."""

from __future__ import annotations

import staged

from conftest import SIZE


def test_waiting_for_a_silent_server(snap_compare, staged_app):
    """You should see the question, half an answer, and the status pane saying "generating" with "24 tokens ·
    waiting for 127.0.0.1:8080 · 4 s" where the tok/s figure was, and "qwen3-8b · ctx 66/8192" on the right (no
    memory figure: the server's is unknown)."""
    app, engine = staged_app()

    async def run_before(pilot) -> None:
        await staged.silent_server_scene(pilot, engine)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
