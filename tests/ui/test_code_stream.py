"""An answer streamed through `AnswerStream`: open code fences are drawn line by line by a `CodeStream` and handed
to the Markdown when they close, and the finished answer renders exactly like plain Markdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence

import mlxchat.ui.widgets.code_stream as code_stream
from mlxchat.bench.frames import FrameRecorder
from mlxchat.bench.ui_probes import frame_rows
from mlxchat.ui.widgets.code_stream import (
    AnswerFence,
    AnswerMarkdown,
    AnswerStream,
    CodeStream,
    FenceTracker,
)
from mlxchat.ui.widgets.frame_budget import ArrivalRate, FrameBudget

SIZE = (80, 60)
BEFORE = "Here is the function you asked for, with a short test.\n\n"
CODE = "def add(a, b):\n    return a + b\n\n\nclass Box:\n    size = 3\n"
AFTER = "\nRun it with `python add.py`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
ANSWER = f"{BEFORE}```python\n{CODE}```\n{AFTER}"


# ---- the fence tracker, without Textual -------------------------------------------------------------------


def fed(text: str, step: int = 1) -> FenceTracker:
    tracker = FenceTracker()
    for start in range(0, len(text), step):
        tracker.feed(text[start : start + step])
    return tracker


def test_an_open_fence_is_found_whatever_the_chunking():
    text = f"{BEFORE}```python\ndef add(a, b):\n    ret"
    for step in (1, 3, 7, len(text)):
        tracker = fed(text, step)
        assert tracker.open is not None
        assert tracker.open.start == len(BEFORE)
        assert tracker.open.language == "python"
        assert text[tracker.open.body_start :].startswith("def add")
        assert tracker.safe_end() == len(BEFORE)
        assert tracker.partial_line == "    ret"


def test_a_closing_line_of_the_same_marker_closes_the_fence():
    assert fed(f"{BEFORE}```python\n{CODE}```\n").open is None
    assert fed("~~~~\ncode\n~~~\n").open is not None  # shorter than the opening: still code
    assert fed("~~~\ncode\n```\n").open is not None  # another marker: still code
    assert fed("```\ncode\n```  \nafter\n").open is None


def test_a_line_that_may_still_become_a_fence_is_held_back():
    tracker = fed("Intro.\n``")
    assert tracker.safe_end() == len("Intro.\n")
    tracker = fed("Intro.\n`code` is inline")
    assert tracker.safe_end() == len(tracker.text)


def test_a_last_line_that_is_only_a_number_so_far_is_held_back():
    """`2` may still become `2. ` (a numbered item's marker): held back until the line says more."""
    for partial in ("2", "10", "   3"):
        tracker = fed(f"1. First\n\n{partial}")
        assert tracker.safe_end() == len("1. First\n\n"), partial
    for partial in ("2.", "2 apples", "x2", ""):
        tracker = fed(f"1. First\n\n{partial}")
        assert tracker.safe_end() == len(tracker.text), partial


def test_indented_and_inline_backticks_are_not_fences():
    assert fed("1. step\n   ```python\n   x = 1\n").open is None
    assert fed("Use ```a`` ` b``` here\n").open is None


# ---- the widgets ------------------------------------------------------------------------------------------


class AnswerApp(App):
    """A Markdown with its code view below it, as a message view holds them; `text` is shown from the start."""

    def __init__(self, text: str = "", markdown_class: type[Markdown] = Markdown) -> None:
        super().__init__()
        self.text = text
        self.markdown_class = markdown_class

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield self.markdown_class(self.text)
            yield CodeStream()


async def settle(pilot, stream: AnswerStream, chars: int, timeout_s: float = 5.0) -> None:
    """Wait until the widgets hold the first `chars` characters written."""
    deadline = time.monotonic() + timeout_s
    while stream.shown_chars < chars:
        assert time.monotonic() < deadline, f"only {stream.shown_chars} of {chars} characters shown"
        await pilot.pause()
    await pilot.pause()


async def test_an_open_fence_streams_into_the_code_view_line_by_line():
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        partial = f"{BEFORE}```python\n{CODE}    ret"
        for start in range(0, len(partial), 5):
            await stream.write(partial[start : start + 5])
        await settle(pilot, stream, len(partial))

        assert markdown.source == BEFORE  # the Markdown never sees the open fence
        assert not markdown.query(MarkdownFence)
        assert code.display
        assert [line.plain for line in code.lines] == CODE.rstrip("\n").split("\n")
        assert code.partial.plain == "    ret"
        assert code.size.height == len(code.lines) + 1  # every line and the partial one
        assert code.lines[0].spans, "the code is highlighted"
        drawn = "".join(segment.text for segment in code.render_line(0))
        assert drawn.startswith("def add(a, b):")
        await stream.stop()


async def test_the_closing_fence_hands_the_block_to_markdown():
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        upto_close = f"{BEFORE}```python\n{CODE}```\n"
        await stream.write(upto_close[:-8])
        await settle(pilot, stream, len(upto_close) - 8)
        assert code.line_count > 0
        await stream.write(upto_close[-8:] + "More")
        await settle(pilot, stream, len(upto_close) + 4)

        assert markdown.source == upto_close + "More"
        fences = markdown.query(MarkdownFence)
        assert len(fences) == 1 and fences[0].code == CODE.rstrip("\n")
        assert code.line_count == 0 and not code.display
        await stream.stop()


async def test_a_closed_block_is_highlighted_off_the_ui_thread_and_waits_for_the_next_block(monkeypatch):
    """The closed block is highlighted once, on a worker thread, and reaches the Markdown only once the next block
    has begun (so `Markdown.append` never parses it again as its last block); the fence takes that highlight."""
    highlighted: list[tuple[str, bool]] = []
    original = MarkdownFence.highlight.__func__

    def recording(cls, code, language, ansi=False, dark=False):
        if "\n" in code:  # a whole block (the code view highlights single lines)
            highlighted.append((code, threading.current_thread() is threading.main_thread()))
        return original(cls, code, language, ansi, dark)

    monkeypatch.setattr(MarkdownFence, "highlight", classmethod(recording))
    monkeypatch.setattr(code_stream, "_HIGHLIGHTED", code_stream.OrderedDict())  # not made by an earlier test
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        upto_close = f"{BEFORE}```python\n{CODE}```\n\n"
        await stream.write(upto_close[:-10])
        await settle(pilot, stream, len(upto_close) - 10)  # the fence is open, in the code view
        await stream.write(upto_close[-10:])
        deadline = time.monotonic() + 5
        while not highlighted:
            assert time.monotonic() < deadline
            await pilot.pause()
        await pilot.pause(0.1)
        assert markdown.source == BEFORE and code.display  # nothing after the fence yet: the code view stays
        await stream.write("More")
        await settle(pilot, stream, len(upto_close) + 4)
        assert markdown.source == upto_close + "More" and not code.display
        await stream.write(" text.\n\nAnd more.")
        await stream.stop()
        await pilot.pause()
        fence = markdown.query_one(MarkdownFence)
        assert fence._highlighted_code is AnswerFence.highlight(fence.code, fence.lexer, False, True)
    assert highlighted == [(CODE.rstrip("\n"), False)]


async def test_an_answer_that_ends_inside_a_fence_is_handed_to_markdown_on_stop():
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        text = f"{BEFORE}```python\n{CODE}"
        await stream.write(text)
        await settle(pilot, stream, len(text))
        await stream.stop()
        await pilot.pause()
        assert markdown.source == text
        assert markdown.query(MarkdownFence)
        assert not code.display


async def test_text_is_applied_at_the_frame_budget():
    """Many small writes inside one frame interval become one update."""
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=60)
        for word in ANSWER.split(" "):
            await stream.write(word + " ")
        await pilot.pause()
        assert stream.updates == 1  # the first write drew at once; the rest wait for the next frame
        await stream.stop()
        assert stream.updates == 2
        assert markdown.source == ANSWER + " "


class TypingApp(AnswerApp):
    """The answer's widgets and a line standing for the prompt, which a typed key repaints."""

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Static("", id="typed")


async def test_a_typed_key_is_drawn_in_a_frame_of_its_own_before_the_next_update():
    """`give_way`: the update that follows a key waits until the screen has drawn the key, so the key's frame
    repaints the prompt alone instead of the answer's update as well."""
    app = TypingApp()
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        first, second = "First paragraph.\n\n", "Second paragraph."
        await stream.write(first)
        await settle(pilot, stream, len(first))
        frames: list[str] = []
        recorder = FrameRecorder(app)
        recorder.watch(lambda _at, frame: frames.append(" ".join(frame_rows(frame).values())) and False)

        stream.give_way()  # as the chat screen does when a key reaches the prompt
        assert stream.key_frame_left_s() > 0
        app.query_one("#typed", Static).update("typed-key")
        await stream.write(second)
        await settle(pilot, stream, len(first) + len(second))
        recorder.close()
        await stream.stop()

    assert stream.key_frame_left_s() == 0
    keyed = next(index for index, frame in enumerate(frames) if "typed-key" in frame)
    assert "Second paragraph" not in frames[keyed], "the update was drawn in the key's frame"
    assert any("Second paragraph" in frame for frame in frames[keyed + 1 :])


async def test_a_held_key_delays_each_update_by_one_give_way_at_most():
    """A key held down repeats faster than the screen's frames; each update still waits `key_frame_s` at most."""
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        stream.key_frame_s = 0.05
        typing = True

        async def hold_a_key() -> None:
            while typing:
                stream.give_way()
                await asyncio.sleep(0.005)

        repeating = asyncio.create_task(hold_a_key())
        words = [f"word{index} " for index in range(8)]
        started = time.monotonic()
        for word in words:
            await stream.write(word)
            await settle(pilot, stream, sum(map(len, words[: words.index(word) + 1])))
        elapsed = time.monotonic() - started
        typing = False
        await repeating
        await stream.stop()
    assert stream.updates >= len(words)
    assert elapsed < 5.0, f"{len(words)} updates took {elapsed:.2f} s under a held key"  # starved: settle times out


@pytest.mark.parametrize("markdown_class", [Markdown, AnswerMarkdown])
async def test_the_finished_answer_renders_exactly_like_plain_markdown(markdown_class):
    """Streamed into Textual's Markdown or the answer's own (`AnswerMarkdown`), the finished answer is drawn as
    Textual's Markdown draws the whole text."""
    streamed = AnswerApp(markdown_class=markdown_class)
    async with streamed.run_test(size=SIZE) as pilot:
        stream = AnswerStream(streamed.query_one(Markdown), streamed.query_one(CodeStream), frame_interval_s=0)
        for start in range(0, len(ANSWER), 3):
            await stream.write(ANSWER[start : start + 3])
            if start % 30 == 0:
                await pilot.pause()
        await stream.stop()
        await pilot.pause()
        streamed_screen = streamed.export_screenshot()
    plain = AnswerApp(ANSWER)
    async with plain.run_test(size=SIZE) as pilot:
        await pilot.pause()
        plain_screen = plain.export_screenshot()
    assert streamed_screen == plain_screen


async def test_a_loose_numbered_list_streamed_to_each_number_stays_one_list():
    """A loose numbered list (a blank line between items: common in answers) with updates that end right after
    each item's number, as a model sending `2` and `.` as two tokens does. Handed to the Markdown there, `2` was a
    paragraph after the list and `Markdown.append` re-parsed from it on: `2. Second` and every item after it
    became a list of its own, a blank row between each, to the end of the answer (it fails with the number's
    hold-back removed from `FenceTracker.safe_end`). Every screen, and the finished one, is Textual's Markdown of
    the same text."""
    text = "1. **First**\n\n   text\n\n2. **Second**\n\n   more\n\n3. **Third**\n\n   end\n"
    cuts = [text.index(f"\n\n{n}") + 3 for n in (2, 3)] + [len(text)]
    streamed = AnswerApp(markdown_class=AnswerMarkdown)
    screens = []
    async with streamed.run_test(size=SIZE) as pilot:
        stream = AnswerStream(streamed.query_one(Markdown), streamed.query_one(CodeStream), frame_interval_s=0)
        done = 0
        for cut in cuts:
            await stream.write(text[done:cut])
            done = cut
            await settle(pilot, stream, cut - 1 if cut < len(text) else cut)
            screens.append((stream.shown_chars, streamed.export_screenshot()))
        await stream.stop()
        await pilot.pause()
        finished = streamed.export_screenshot()
    for shown, screen in screens:
        plain = AnswerApp(text[:shown])
        async with plain.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert screen == plain.export_screenshot(), f"at {shown} characters"
    plain = AnswerApp(text)
    async with plain.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert finished == plain.export_screenshot()


@pytest.mark.parametrize("width, tab", [(100, False), (50, False), (100, True)])
async def test_a_long_fence_is_drawn_as_textual_draws_it(width, tab):
    """The answer's fence draws its code a line at a time (`FenceCode`); the screen is Textual's own, whether its
    lines fit (100 columns), some are wider than the window (50), or one holds tabs that widen it past the window
    (where it is measured and drawn as a `Label` is)."""
    from mlxchat.bench.realistic import realistic_answer

    text = realistic_answer(120)
    if tab:  # a line inside the block, 15 lines in, that a tab widens to 96 cells
        at = text.index("```python\n")
        for _ in range(15):
            at = text.index("\n", at) + 1
        text = text[:at] + "\t" * 12 + "x = 1\n" + text[at:]
    screens = []
    for markdown_class in (Markdown, AnswerMarkdown):
        app = AnswerApp(text, markdown_class=markdown_class)
        async with app.run_test(size=(width, 40)) as pilot:
            await pilot.pause()
            for offset in (30, 90):
                app.query_one(VerticalScroll).scroll_to(y=offset, animate=False)
                await pilot.pause()
                screens.append(app.export_screenshot())
    assert screens[:2] == screens[2:]


def test_the_frame_interval_stretches_while_the_ui_thread_is_busy():
    """Twice the UI thread's CPU time since the last update, between the frame interval and its cap."""
    budget = FrameBudget(frame_interval_s=0.04)
    budget._cpu_mark = time.thread_time()
    assert budget.interval_s() == 0.04  # idle: the plain budget
    budget._cpu_mark = time.thread_time() - 0.05
    assert 0.1 <= budget.interval_s() < 0.11  # 50 ms busy: 100 ms until the next update
    budget._cpu_mark = time.thread_time() - 1.0
    assert budget.interval_s() == budget.max_interval_s


async def test_the_code_view_grows_in_steps_and_asks_for_a_layout_only_per_step():
    """Lines that fit the reserved room repaint the code view alone; a layout pass rearranges the whole screen."""
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        code = app.query_one(CodeStream)
        code.begin("python")
        layouts: list[bool] = []
        refresh = code.refresh
        code.refresh = lambda *regions, layout=False, **kwargs: layouts.append(layout) or refresh(*regions, layout=layout, **kwargs)
        heights, asked = [], []
        for n in range(20):
            layouts.clear()
            code.append_lines([f"x{n} = {n}"], "")
            asked.append(any(layouts))
            await pilot.pause()
            heights.append(code.size.height)
        assert heights == [1, 2, 3, 4, 5, 6, 7, 8] + [16] * 8 + [24] * 4  # a short block takes its exact height
        assert asked == [n < 9 or n == 16 for n in range(20)]
        assert [line.plain for line in code.lines] == [f"x{n} = {n}" for n in range(20)]


async def test_an_append_within_the_reserved_room_repaints_only_the_rows_it_changed():
    """The rows above the old partial line keep their rendered lines (a whole repaint re-rendered every visible
    row each frame), and the screen is the one a whole repaint draws."""
    app = AnswerApp()
    async with app.run_test(size=SIZE) as pilot:
        code = app.query_one(CodeStream)
        code.begin("python")
        code.append_lines([f"x{n} = {n}" for n in range(10)], "y = ")
        await pilot.pause()
        asked: list[tuple[tuple, bool]] = []
        refresh = code.refresh
        code.refresh = lambda *regions, layout=False, **kwargs: asked.append((regions, layout)) or refresh(*regions, layout=layout, **kwargs)
        code.append_lines(["y = 1"], "z")
        await pilot.pause()
        assert asked == [((Region(0, 10, code.size.width, 2),), False)]  # the old partial row and the new one
        drawn = app.export_screenshot()
        refresh()
        await pilot.pause()
        assert app.export_screenshot() == drawn


def test_arrival_rate_is_the_characters_of_the_last_second():
    rate = ArrivalRate()
    assert rate.chars_per_s(0.0) == 0.0
    rate.note(100, 0.0)
    assert rate.chars_per_s(0.1) == 0.0  # too short a span to say
    for step in range(1, 21):
        rate.note(100, step * 0.1)  # 1 000 characters a second for 2 s
    assert 990 <= rate.chars_per_s(2.0) <= 1100
    rate.note(10, 4.0)  # then a pause: the old burst leaves the window
    assert rate.chars_per_s(4.0) < 100


def test_the_frame_interval_follows_reading_speed():
    """25 updates a second while text arrives at about reading speed, 10 once it outpaces any reader."""
    budget = AnswerStream(None, None).budget  # the live thinking block's budget is the same `FrameBudget`
    now = time.perf_counter()
    for step in range(10):
        budget.arrivals.note(20, now - 1 + step * 0.1)  # 200 characters a second, about 50 tok/s
    budget._cpu_mark = time.thread_time()
    assert budget.interval_s() == budget.frame_interval_s == 0.04
    for step in range(10):
        budget.arrivals.note(400, now - 1 + step * 0.1)  # now 4 000 a second
    budget._cpu_mark = time.thread_time()
    assert budget.interval_s() == budget.fast_interval_s == 0.1


async def test_the_lines_that_come_with_the_closing_fence_are_drawn_while_the_block_waits():
    """The closing fence came with the rest of the last line, and nothing after it yet: the code view shows the
    block complete ("return x", not "ret") until the Markdown takes it; stopped there, the answer is complete."""
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        await stream.write("```python\nx = 1\nret")
        await settle(pilot, stream, len("```python\nx = 1\nret"))
        assert code.partial.plain == "ret"
        await stream.write("urn x\n```\n")
        deadline = time.monotonic() + 5
        while stream._highlight is None or not stream._highlight.done():
            assert time.monotonic() < deadline, "the closed block's highlight"
            await pilot.pause()
        await pilot.pause(0.1)
        assert markdown.source == "" and code.display, "no text after the fence yet: the code view stays"
        assert [line.plain for line in code.lines] == ["x = 1", "return x"] and code.partial.plain == ""
        await stream.stop()
        await pilot.pause()
        assert markdown.source == "```python\nx = 1\nreturn x\n```\n"
        assert markdown.query_one(MarkdownFence).code == "x = 1\nreturn x" and not code.display


async def test_a_block_highlighted_already_is_not_highlighted_again(monkeypatch):
    """The same block twice (a retry, a repeated snippet): the second takes the kept highlight, no worker."""
    calls: list[str] = []
    original = code_stream.highlight_block

    def counting(code, *rest):
        calls.append(code)
        return original(code, *rest)

    monkeypatch.setattr(code_stream, "_HIGHLIGHTED", code_stream.OrderedDict())
    monkeypatch.setattr(code_stream, "highlight_block", counting)
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        opened, closed = f"```python\n{CODE}", "```\n\nThen:\n\n"  # open at an update: the code view shows it
        written = ""
        for piece in (opened, closed, opened, closed + "Done."):
            await stream.write(piece)
            written += piece
            await settle(pilot, stream, len(written))
        await stream.stop()
    assert calls == [CODE.rstrip("\n")]


def test_a_kept_highlights_lines_leave_with_it(monkeypatch):
    """Kept again under one key, then pushed out by others: no old highlight's lines stay behind."""
    import gc
    import weakref

    from textual.content import Content

    class Lines(list):  # a list that can be watched with a weak reference
        pass

    monkeypatch.setattr(code_stream, "_HIGHLIGHTED", code_stream.OrderedDict())
    watched = []
    keys = [("same", "python", False, True)] * 5 + [(f"other {n}", "python", False, True) for n in range(10)]
    for key in keys:
        content = Content(key[0])
        lines = Lines([content])
        watched.append(weakref.ref(lines))
        code_stream.keep_highlight(key, content, lines)
        assert code_stream.split_lines(content) is lines
    del content, lines
    gc.collect()
    alive = [ref for ref in watched if ref() is not None]
    assert len(alive) == code_stream._HIGHLIGHTS_KEPT == len(code_stream._HIGHLIGHTED)


@pytest.mark.parametrize("opening", ["``` python", "```python ", "```python title=add.py"])
async def test_a_fence_keeps_its_colours_when_it_closes_whatever_follows_its_language(opening):
    """The language is the info string's first word (CommonMark), as the code view streams it: a fence opened
    "``` python" or "```python title=add.py" is coloured while it streams, and stays coloured once the Markdown
    takes it (Textual's fence looked the whole info string up, found no lexer, and drew it plain)."""
    app = AnswerApp(markdown_class=AnswerMarkdown)
    async with app.run_test(size=SIZE) as pilot:
        markdown, code = app.query_one(Markdown), app.query_one(CodeStream)
        stream = AnswerStream(markdown, code, frame_interval_s=0)
        await stream.write(f"{opening}\n{CODE}")
        await settle(pilot, stream, len(f"{opening}\n{CODE}"))
        streamed = [line.spans for line in code.lines]
        assert streamed[0], "coloured while it streams"
        await stream.write("```\n\nDone.\n")
        await stream.stop()
        await pilot.pause()
        fence = markdown.query_one(MarkdownFence)
        closed = fence._highlighted_code.split("\n")
        assert [line.spans for line in closed[: len(streamed)]] == streamed, "coloured as it streamed"
