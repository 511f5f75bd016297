"""Why each screen update happens while an answer streams (issue 11): screen updates per answer update, by cause.

Each screen update (`Screen._on_timer_update` that drew) is put in one class by what asked for it since the last:
  answer   an answer update ended since the last screen update (the update the answer's clock asks for)
  cascade  only widgets whose size the last layout pass set (Textual's `virtual_size` reactive asks for a layout
           pass again) or scrollbars it resized, maybe with the prompt's blinking cursor
  late     nothing refreshed since the last screen update: a widget refreshed in the last one reached the screen
           after it (the status pane's labels, turned just after the answer's widgets)
  other    the rest: a Markdown block mounted or filled while its update was still under way, a keypress …

Variants, flipped in one process so each round runs each on the same model and load:
  before        the answer update as it was before one-update-one-frame: unbatched, `on_update` at its end
  after         as shipped
  paragraph-layout  after, with the answer's paragraphs laid out at every update as Textual's are (`AnswerParagraph`
                takes streamed text as a repaint while its rows stay the same)
  single-layout after, and a layout pass's own size changes ask for no second pass (`Widget._size_updated` called
                with layout=False, as Textual's scroll-only reflow already does): NOT shipped, a private Textual
                method patched process-wide; it measures what the cascade costs

    python benchmarks/answer_frames.py --model /tmp/m/1b --variants before,after,single-layout --rounds 2 --tokens 2000

`--pace` holds the engine to N tok/s (the tiny CPU model is otherwise as fast as the machine lets it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from statistics import median

from textual.screen import Screen
from textual.widget import Widget
from textual.widgets._markdown import MarkdownParagraph

from mlxchat.bench.realistic import REALISTIC_ANSWER, paced
from mlxchat.bench.ui_probes import UIBenchConfig, tui_decode_once
from mlxchat.ui.widgets.code_stream import AnswerParagraph, AnswerStream

state = {"streaming": False, "updates": 0, "all_updates": 0, "in_frame": False}
asked: list[tuple[str, bool]] = []  # (what asked for a refresh, asked while a screen update ran)
frames: list[dict] = []


def _asker() -> str:
    frame, names = sys._getframe(2), []
    while frame is not None and len(names) < 3:
        if os.sep + "textual" + os.sep in frame.f_code.co_filename:
            names.append(frame.f_code.co_name)
        frame = frame.f_back
    return ">".join(names)


_refresh, _refresh_scroll = Widget.refresh, Widget._refresh_scroll


def _counting_refresh(self, *regions, **kwargs):
    if state["streaming"]:
        asked.append((f"{type(self).__name__}:{_asker()}", state["in_frame"]))
    return _refresh(self, *regions, **kwargs)


def _counting_refresh_scroll(self):
    if state["streaming"]:
        asked.append((f"{type(self).__name__}:{_asker()}", state["in_frame"]))
    return _refresh_scroll(self)


_screen_update = Screen._on_timer_update


def _timed_screen_update(self) -> None:
    if not state["streaming"] or self.app._batch_count or not self.is_current:
        return _screen_update(self)  # a batch holds the screen: this call draws nothing
    kind = "layout" if self._layout_required else "scroll" if self._scroll_required else "paint"
    since, updates = list(asked), state["updates"]
    asked.clear()
    state["updates"], state["in_frame"] = 0, True
    started = time.thread_time()
    try:
        _screen_update(self)
    finally:
        state["in_frame"] = False
        frames.append({"kind": kind, "cpu_s": time.thread_time() - started, "cause": _cause(updates, since)})


def _cause(updates: int, since: list[tuple[str, bool]]) -> str:
    if updates:
        return "answer"
    if not since:
        return "late"
    sized = ("_size_updated", "_scroll_update", "_refresh_scrollbars")
    if all((during and any(name in what for name in sized)) or what.startswith("PromptInput") for what, during in since):
        return "cascade"
    return "other"


_shipped_update = AnswerStream._update
_variant_update = [_shipped_update]


async def _counted_update(self, *, final: bool) -> None:
    state["streaming"] = True
    try:
        await _variant_update[0](self, final=final)
    finally:
        state["updates"] += 1
        state["all_updates"] += 1


async def _before_update(self, *, final: bool) -> None:
    """`AnswerStream._update` before one-update-one-frame (commit bfe4b6c's parent), for the A/B."""
    self._new_text.clear()
    if self._pending:
        self.fences.feed("".join(self._pending))
        self._pending.clear()
    fences, text = self.fences, self.fences.text
    fence = fences.open
    if self._showing is not None and (final or fence is None or fence.start != self._showing.start):
        if not await self._block_ready(final):
            self._draw_closed_block()
            _before_updated(self)
            return
        self._showing, self._highlight = None, None
        self._code_shown_upto = 0
        with self.markdown.app.batch_update():
            await self._to_markdown_upto(len(text) if final else fences.safe_end())
            self.code.clear()
    end = len(text) if final else fences.safe_end()
    await self._to_markdown_upto(end)
    if fence is not None and not final:
        if self._showing is None:
            self._showing = fence
            self.code.begin(fence.language)
        complete_end = len(text) - len(fences.partial_line)
        shown = max(self._code_shown_upto, fence.body_start)
        new_lines = text[shown:complete_end].split("\n")[:-1] if complete_end > shown else []
        self._code_shown_upto = max(shown, complete_end)
        self.code.append_lines(new_lines, fences.partial_line)
        self.shown_chars = len(text)
    else:
        self.shown_chars = self._to_markdown
    _before_updated(self)


def _before_updated(self) -> None:
    if self.on_update is not None:
        self.on_update()


_size_updated = Widget._size_updated


def _size_updated_once(self, size, virtual_size, container_size, layout: bool = True) -> bool:
    return _size_updated(self, size, virtual_size, container_size, layout=False)


_steady_paragraph = AnswerParagraph._update_from_block


def use(variant: str) -> None:
    _variant_update[0] = _before_update if variant == "before" else _shipped_update
    laid_out = variant == "paragraph-layout"
    AnswerParagraph._update_from_block = MarkdownParagraph._update_from_block if laid_out else _steady_paragraph
    Widget._size_updated = _size_updated_once if variant == "single-layout" else _size_updated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--variants", default="before,after,single-layout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=1500)
    parser.add_argument("--pace", type=float, default=None, help="tok/s the engine is held to (default: unpaced)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    Widget.refresh, Widget._refresh_scroll = _counting_refresh, _counting_refresh_scroll
    Screen._on_timer_update = _timed_screen_update
    AnswerStream._update = _counted_update
    names, results = args.variants.split(","), {}
    config = UIBenchConfig(decode_tokens=args.tokens, answer=REALISTIC_ANSWER)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            use(name)
            frames.clear(), asked.clear()
            state.update(streaming=False, updates=0, all_updates=0)
            with paced(args.pace):
                run = asyncio.run(tui_decode_once(args.model, config))
            state["streaming"] = False
            updates = state["all_updates"] or 1
            by_cause = Counter(frame["cause"] for frame in frames)
            cpu = {cause: sum(f["cpu_s"] for f in frames if f["cause"] == cause) * 1000 for cause in by_cause}
            numbers = {
                "screen_updates_per_answer_update": len(frames) / updates,
                "answer_updates": updates,
                "screen_updates": len(frames),
                "layout_passes": sum(1 for frame in frames if frame["kind"] == "layout"),
                "screen_update_cpu_ms": sum(cpu.values()),
                "ui_cpu_s": run["ui_cpu_s"],
                "rendered_tps": run["rendered_tps"],
                **{f"{cause}_screen_updates": count for cause, count in by_cause.items()},
                **{f"{cause}_cpu_ms": value for cause, value in cpu.items()},
                "load": os.getloadavg()[0],
            }
            results.setdefault(name, []).append(numbers)
            print(f"round {round_} {name:13} " + " ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items()), flush=True)
    for name, runs in results.items():
        keys = sorted({key for run in runs for key in run})
        print(f"median {name:13} " + " ".join(f"{k} {median(r.get(k, 0) for r in runs):.2f}" for k in keys), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": results, "args": vars(args)}, out, indent=1)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of MLX (the engine threads of finished apps are gone)


if __name__ == "__main__":
    main()
