"""Screen updates and UI-thread CPU while a model thinks fast (issue 11): live thinking before and after its frame
budget, and the status pane on its own clock or on the thinking's.

The real app, headless, on the staged engine (tests/staged.py: the engine's API and its real event types, no MLX,
so the thinking arrives exactly as scripted whatever the machine's load). A producer thread posts `ThinkingDelta`
events as the engine's owner thread does (`post_message` from another thread), one per `--batch-ms` (the engine
batches events at ~30 ms) at `--tps` thinking tokens a second (~4 characters a token, a line break every ~80),
for `--seconds`; then ThinkingDone, a short answer and the finish. Counted while the thinking streams, from the
first piece to the last piece on screen:

  screen/s   screen updates a second (`Screen._on_timer_update` with something to draw and no batch holding it)
  layout/s   of them, those with a layout pass
  status/s   of them, paint-only updates that drew only the status pane (its labels: spinner, token count)
  draws/s    redraws of the thinking block (`ThinkingBlock.show_turn`)
  dirty      the widget classes most often dirty in a paint-only screen update (what else draws)
  ui_cpu     the UI thread's CPU time over the window (`time.thread_time` on the event loop's thread), and its
             share of the window's wall time (ui_busy)

Variants, flipped in one process so each round runs each on the same load:
  before  each piece redraws the block at once, and its live lines split the whole thought (as before the frame
          budget: `thinking_arrived` patched to `show_turn`, `live_tail` to the old split)
  budget  the first piece at once, later ones at most one draw per `FrameBudget` interval, and the status pane's
          spinner and token count on its own 10 Hz timer (the block does not tell it of its draws:
          `ThinkingBlock._tell_drawn` patched to do nothing)
  layout  the frame budget and the status pane in the block's draws, but each live draw lays the screen out (as
          61f1825 shipped it: `steady_update` patched to `Static.update`, which asks for a layout)
  after   as shipped: the frame budget, the status pane drawn in the block's draws (its timer gives way), and a
          live draw that keeps the block's size a repaint only (`steady_update`)

    python benchmarks/thinking_frames.py --tps 300 --seconds 8 --rounds 3
    python benchmarks/thinking_frames.py --variants budget,after --tps 60 --seconds 8 --rounds 3
    python benchmarks/thinking_frames.py --variants layout,after --tps 60 --seconds 8 --rounds 4

`before` and `budget` lay out every live draw, as the code they stand for did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from collections import Counter
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import staged  # noqa: E402  (test code: the scripted engine and its scenes)
from textual.screen import Screen  # noqa: E402

from mlxchat.engine import PrefillProgress, Started, TextDelta, ThinkingDelta, ThinkingDone  # noqa: E402
from mlxchat.ui.app import make_app  # noqa: E402
from mlxchat.ui.widgets import thinking as thinking_module  # noqa: E402

ThinkingBlock = thinking_module.ThinkingBlock
THINKING_INFO = replace(staged.TINY_INFO, name="Qwen3-0.6B", thinking="<think> tags", thinking_switch=True)
WORDS = (
    "The user asks how the cache is kept between turns so let me recall what the engine does with the prompt "
    "cache and whether the template changes the prefix when thinking is switched off or on again later"
).split()

state = {"counting": False, "screen": 0, "layout": 0, "status": 0, "draws": 0}
dirty: Counter[str] = Counter()  # widget class -> paint-only screen updates it was dirty in
_screen_update = Screen._on_timer_update
_show_turn = ThinkingBlock.show_turn
_shipped_arrived, _shipped_tail = ThinkingBlock.thinking_arrived, thinking_module.live_tail
_shipped_tell = getattr(ThinkingBlock, "_tell_drawn", None)  # None in a tree before it (a two-tree run)
_shipped_steady = getattr(thinking_module, "steady_update", None)  # likewise


def _counted_screen_update(self) -> None:
    if state["counting"] and not self.app._batch_count and self.is_current:
        if self._layout_required or self._scroll_required:
            state["screen"] += 1
            state["layout"] += 1
        elif self._dirty_widgets or self._repaint_required:
            state["screen"] += 1
            dirty.update({_name(widget) for widget in self._dirty_widgets})
            if self._dirty_widgets and all(_in_status(widget) for widget in self._dirty_widgets):
                state["status"] += 1
    return _screen_update(self)


def _in_status(widget) -> bool:
    return any(node.id == "status" for node in (widget, *widget.ancestors))


def _name(widget) -> str:
    """The widget's class, with its id or first class and its parent's class (which label it is)."""
    name = type(widget).__name__ + (f"#{widget.id}" if widget.id else f".{next(iter(widget.classes))}" if widget.classes else "")
    return f"{type(widget.parent).__name__}>{name}"


def _counted_show_turn(self) -> None:
    if state["counting"]:
        state["draws"] += 1
    return _show_turn(self)


def _old_tail(thinking: str, lines: int = thinking_module.LIVE_LINES) -> str:
    return "\n".join(thinking.rstrip("\n").split("\n")[-lines:])


def use(variant: str) -> None:
    before = variant == "before"
    ThinkingBlock.thinking_arrived = (lambda self, chars: self.show_turn()) if before else _shipped_arrived
    ThinkingBlock._tell_drawn = _shipped_tell if variant in ("layout", "after") else (lambda self, *, whole: None)
    thinking_module.live_tail = _old_tail if before else _shipped_tail
    if _shipped_steady is not None:
        thinking_module.steady_update = _shipped_steady if variant == "after" else _laid_out_update


def _laid_out_update(widget, text: str) -> None:
    widget.update(text)  # Static.update: a layout pass with every draw


def thought(tps: float, seconds: float, batch_s: float, line_chars: int = 80) -> list[tuple[str, int]]:
    """The pieces a model thinking at `tps` sends, one per engine batch: (text, tokens), a line break past
    `line_chars` characters."""
    per_batch, pieces, line, word = tps * batch_s, [], 0, 0
    owed = 0.0
    for _ in range(int(seconds / batch_s)):
        owed += per_batch
        tokens, owed = int(owed), owed - int(owed)
        text = ""
        for _ in range(tokens):  # a word a token, ~4-5 characters with its space
            piece = WORDS[word % len(WORDS)]
            word += 1
            line += len(piece) + 1
            text += piece + ("\n" if line > line_chars else " ")
            line = 0 if line > line_chars else line
        pieces.append((text, tokens))
    return pieces


async def run_once(pieces: list[tuple[str, int]], batch_s: float) -> dict:
    holder: dict[str, staged.StagedEngine] = {}

    def factory(sink):
        holder["engine"] = staged.StagedEngine(sink)
        return holder["engine"]

    app = make_app(engine_factory=factory, animate=True)  # the real clock, and the block's 10 Hz tick
    async with app.run_test(size=(100, 32)) as pilot:
        engine = holder["engine"]
        await staged.loaded_scene(pilot, engine, THINKING_INFO)
        await staged.ask(pilot)
        rid = engine.last_request_id
        engine.emit(Started(rid, 42, 0, "text"))
        engine.emit(PrefillProgress(rid, 42, 42))
        await pilot.pause(0.2)
        produced = threading.Event()

        def produce() -> None:  # the engine's owner thread: a batch every `batch_s`, posted, never waiting
            due = time.perf_counter()
            for text, tokens in pieces:
                due += batch_s
                time.sleep(max(0.0, due - time.perf_counter()))
                engine.emit(ThinkingDelta(rid, text, tokens))
            produced.set()

        whole = "".join(text for text, _ in pieces)
        last = thinking_module.live_tail(whole)
        block = app.chat.conversation.views()[-1].query_one(ThinkingBlock)
        body = block.query_one(".thinking-body")
        state.update(counting=True, screen=0, layout=0, status=0, draws=0)
        dirty.clear()
        cpu, wall = time.thread_time(), time.perf_counter()
        threading.Thread(target=produce, daemon=True).start()
        while not (produced.is_set() and str(body.content) == last):
            await asyncio.sleep(0.01)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        state["counting"] = False
        numbers = {
            "screen_per_s": state["screen"] / wall,
            "layout_per_s": state["layout"] / wall,
            "status_per_s": state["status"] / wall,
            "draws_per_s": state["draws"] / wall,
            "pieces_per_s": len(pieces) / wall,
            "ui_cpu_s": cpu,
            "ui_busy": cpu / wall,
            "wall_s": wall,
            "dirty": ",".join(f"{name}:{count / wall:.1f}/s" for name, count in dirty.most_common(3)),
        }
        tokens = sum(count for _, count in pieces)
        engine.emit(ThinkingDone(rid, tokens, wall))
        engine.emit(TextDelta(rid, "The cache is kept.", 5))
        engine.finish("stop", text="The cache is kept.", reasoning=whole)
        await staged.until(pilot, lambda: not app.chat.busy, what="the finish")
        turn = app.chat.conversation.views()[-1].turn
        numbers["thought_matches"] = turn.thinking == whole and str(body.content) == whole.strip("\n")
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="before,budget,after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tps", type=float, default=300.0, help="thinking tokens a second")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch-ms", type=float, default=30.0, help="the engine's event batching")
    parser.add_argument("--line-chars", type=int, default=80, help="a line break past this many characters (longer "
                        "than the live body is wide, a line wraps: a paragraph)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    Screen._on_timer_update = _counted_screen_update
    ThinkingBlock.show_turn = _counted_show_turn
    batch_s = args.batch_ms / 1000
    pieces = thought(args.tps, args.seconds, batch_s, args.line_chars)
    names, results = args.variants.split(","), {}
    print(f"{len(pieces)} pieces, {sum(t for _, t in pieces)} tokens, {sum(len(p) for p, _ in pieces)} characters; load {os.getloadavg()}", flush=True)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            use(name)
            numbers = asyncio.run(run_once(pieces, batch_s))
            numbers["load"] = os.getloadavg()[0]
            results.setdefault(name, []).append(numbers)
            print(f"round {round_} {name:6} " + " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items()), flush=True)
    for name, runs in results.items():
        keys = [key for key in runs[0] if key not in ("thought_matches", "dirty")]
        print(f"median {name:6} " + " ".join(f"{k} {median(r[k] for r in runs):.3f}" for k in keys), flush=True)
    print("load", os.getloadavg(), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": results, "args": vars(args)}, out, indent=1)


if __name__ == "__main__":
    main()
