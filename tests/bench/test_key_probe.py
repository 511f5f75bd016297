"""The UI benchmark's keypress probe (mlxchat/bench/ui_probes.py): keys sent the terminal driver's way, each timed
until a frame that shows it has been serialised for the terminal. On the real app; no model is loaded."""

from __future__ import annotations

import asyncio

from mlxchat.bench.frames import FrameRecorder
from mlxchat.bench.realistic import REALISTIC_ANSWER, code_fence_lines
from mlxchat.bench.ui_probes import KeyProbe, answer_place, frame_rows
from mlxchat.ui.app import make_app


def test_frame_rows_files_text_under_the_cursor_move_before_it():
    frame = "\x1b[3;5Hab\x1b[1mcd\x1b[0m\x1b[4;1Hxyz\x1b[3;40Hef"
    assert frame_rows(frame) == {2: "abcdef", 3: "xyz"}


def test_a_press_is_placed_before_in_or_after_the_answers_fence():
    opened = REALISTIC_ANSWER.index("```")
    closed = REALISTIC_ANSWER.index("```", opened + 3) + 4
    places = [answer_place(text, code_fence_lines(text)) for text in (
        REALISTIC_ANSWER[:100],
        REALISTIC_ANSWER[: opened + 200],
        REALISTIC_ANSWER[: closed + 10],
    )]
    assert places[0] == "before the fence, 100 chars"
    assert places[1].startswith("fence at ") and places[1].endswith(" lines") and places[1] != "fence at 0 lines"
    assert places[2] == f"after the fence, {closed + 10} chars"


async def test_each_key_is_timed_to_the_first_frame_that_shows_the_typed_line():
    app = make_app(load_model=False, animate=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        recorder = FrameRecorder(app)
        probe = KeyProbe(app, recorder)
        shown: list[str] = []

        def keep_rows(_at: float, frame: str) -> bool:
            shown.extend(frame_rows(frame).values())
            return False  # keep watching

        recorder.watch(keep_rows)
        latencies = [await probe.press(letter) for letter in "probe"]
        recorder.close()
        assert app.chat.prompt.text == "probe"
    assert all(latency is not None and 0 < latency < 5 for latency in latencies), latencies
    assert any("probe" in row for row in shown)


async def test_a_key_the_prompt_never_shows_is_not_counted():
    app = make_app(load_model=False, animate=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        app.chat.prompt.disabled = True  # keys reach the app but no longer the prompt
        await pilot.pause()
        recorder = FrameRecorder(app)
        probe = KeyProbe(app, recorder, timeout_s=0.5)
        latency = await probe.press("q")
        await asyncio.sleep(0)
        recorder.close()
        assert app.chat.prompt.text == ""
    assert latency is None
