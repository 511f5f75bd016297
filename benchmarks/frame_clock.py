"""Alternating A/B of the status pane's frame clock (issue 11): where the UI thread's time goes per second of streaming.

Variants flip class attributes in one process, so each round runs every variant on the same model and load:
  before     the status reactive repaints the bar on every text event; the spinner turns on its own 10 Hz timer
  norepaint  the bar is no longer repainted by a status that changes no label; the spinner still has its own timer
  after      as shipped: no repaint, and the spinner (with the token count) turns with the answer's updates

Each run is `ui_probes.tui_decode_once` (the real app, headless, the realistic answer forced through the model);
the UI thread's CPU time is split by Textual's screen-update step: a frame that needed a layout pass, or a
paint-only one. `--long N` puts N finished realistic answers above the one that streams.

    python benchmarks/frame_clock.py --model /tmp/m/1b --tokens 3000 --rounds 2 --json out.json

Not yet run on the GPU (issue 11; round 5 spent its device time on the decode ratio, the switch interval and
kv_bits first): on the H200, with the 1B bench model,
    timeout 115 python3 benchmarks/frame_clock.py --model /tmp/m/1b --variants before,after --rounds 2 --tokens 2000 --json OUT.json
takes ~100 s and says whether the ~40 frames a second of the 1B's answer fall to ~10 there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from statistics import median

from textual.screen import Screen

from mlxchat.bench.realistic import REALISTIC_ANSWER, paced
from mlxchat.bench.ui_probes import RawMlxLm, UIBenchConfig, tui_decode_once
from mlxchat.ui.widgets import status as status_module

StatusBar = status_module.StatusBar
steps: dict[str, list] = defaultdict(lambda: [0, 0.0])  # kind -> [frames, UI CPU seconds]
_original_update = Screen._on_timer_update


def _timed_update(self) -> None:
    kind = "layout" if (self._layout_required or self._scroll_required) else "paint" if (self._dirty_widgets or self._repaint_required) else "none"
    started = time.thread_time()
    try:
        _original_update(self)
    finally:
        step = steps[kind]
        step[0] += 1
        step[1] += time.thread_time() - started


Screen._on_timer_update = _timed_update
_NEW_TICK, _NEW_DRAWN = StatusBar.tick, StatusBar.answer_drawn


def _old_tick(self) -> None:
    if self.status.phase in status_module._ANIMATED:
        self.frame += 1


VARIANTS = {
    "before": dict(repaint=True, tick=_old_tick, drawn=lambda self, **_: None),
    "norepaint": dict(repaint=False, tick=_old_tick, drawn=lambda self, **_: None),
    "after": dict(repaint=False, tick=_NEW_TICK, drawn=_NEW_DRAWN),
}


def use(name: str) -> None:
    variant = VARIANTS[name]
    StatusBar.status._repaint = StatusBar.frame._repaint = variant["repaint"]
    StatusBar.tick, StatusBar.answer_drawn = variant["tick"], variant["drawn"]


def with_long_conversation(count: int) -> None:
    """Show `count` finished realistic answers in the chat before the measured one streams."""
    import mlxchat.bench.ui_probes as probes
    from mlxchat.ui.chat_model import Turn

    loaded = probes._loaded

    async def _loaded(pilot, timeout_s):
        await loaded(pilot, timeout_s)
        turns = [turn for _ in range(count) for turn in (Turn("user", "Tell me more."), Turn("assistant", REALISTIC_ANSWER))]
        await pilot.app.chat.conversation.show_turns(turns, assistant_label="assistant")
        await pilot.pause(0.5)

    probes._loaded = _loaded


def summary(run: dict, raw_tps: float) -> dict:
    span = run["render_span_s"]
    layout, paint = steps.get("layout", [0, 0.0]), steps.get("paint", [0, 0.0])
    return {
        "raw_tps": raw_tps,
        "tui_tps": run["rendered_tps"],
        "ratio": run["rendered_tps"] / raw_tps if raw_tps else float("nan"),
        "ui_busy": run["ui_busy_fraction"],
        "ui_cpu_s": run["ui_cpu_s"],
        "ms_per_frame": run["ui_cpu_ms_per_frame"],
        "ms_per_text_event": run["ui_cpu_ms_per_text_event"],
        "text_events_per_s": run["text_events"] / span,
        "layout_frames_per_s": layout[0] / span,
        "paint_frames_per_s": paint[0] / span,
        "layout_ms": layout[1] * 1000 / max(1, layout[0]),
        "paint_ms": paint[1] * 1000 / max(1, paint[0]),
        "frame_cpu_share": (layout[1] + paint[1]) / max(1e-9, run["ui_cpu_s"]),
        "text_matches": run["shown_text_matches"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--variants", default="before,after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2500)
    parser.add_argument("--pace", type=float, default=None, help="tok/s the engine is held to (default: unpaced)")
    parser.add_argument("--warm-up", action="store_true", help="one untimed round first")
    parser.add_argument("--long", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.long:
        with_long_conversation(args.long)
    names = args.variants.split(",")
    config = UIBenchConfig(decode_tokens=args.tokens, answer=REALISTIC_ANSWER)
    raw = RawMlxLm(args.model, REALISTIC_ANSWER) if args.pace is None else None
    results: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(args.rounds + (1 if args.warm_up else 0)):
        for name in names if round_ % 2 == 0 else names[::-1]:
            raw_tps = raw.decode_tps(args.tokens) if raw is not None else args.pace
            use(name)
            steps.clear()
            with paced(args.pace):
                run = asyncio.run(tui_decode_once(args.model, config))
            numbers = summary(run, raw_tps)
            if round_ or not args.warm_up:
                results[name].append(numbers)
            print(f"round {round_} {name:9} " + " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items()), flush=True)
            if args.json:  # after every run: a time limit must not lose what was measured
                with open(args.json, "w") as out:
                    json.dump({"runs": results, "args": vars(args), "load": os.getloadavg()}, out, indent=1)
    medians = {name: {key: median(r[key] for r in runs) for key in runs[0] if key != "text_matches"} for name, runs in results.items() if runs}
    for name, numbers in medians.items():
        print(f"median {name:9} " + " ".join(f"{k} {v:.3f}" for k, v in numbers.items()), flush=True)
    print("load", os.getloadavg(), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": results, "medians": medians, "args": vars(args), "load": os.getloadavg()}, out, indent=1)
    sys.stdout.flush()
    os._exit(0)  # the engine threads of finished apps are gone; skip interpreter teardown of MLX


if __name__ == "__main__":
    main()
