"""Where the UI thread's CPU goes while an answer streams (issue 11): a profile of that thread alone, by part.

The real app runs headless (`ui_probes.tui_decode_once`, the realistic answer forced through the model). `cProfile`
is enabled on the UI thread (the one running the app's event loop) from the prompt's Enter to the answer's end, so the engine's
owner thread is not in it; it prints the cumulative share of the parts below, then the top functions. A second,
unprofiled run tallies thread CPU per widget class in the styles-cache render, `_render_content` and
`get_content_height` (the profiler inflates Python-heavy parts; the tally does not). Both nest: a container's
height includes its children's, and the parts' shares overlap the same way.

    python benchmarks/ui_profile.py --model /tmp/m/1b --tokens 1500 [--pace 300] [--dump ui.prof]
    python benchmarks/ui_profile.py --tiny                     # the tiny random llama (CPU), built in a temp folder
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from textual._styles_cache import StylesCache
from textual.widget import Widget

from mlxchat.bench import ui_probes
from mlxchat.bench.realistic import REALISTIC_ANSWER, build_bench_model, cpu_spec, paced

PARTS = [  # (label, file name ends with, function name)
    ("screen frames (Screen._on_timer_update)", "screen.py", "_on_timer_update"),
    ("  layout passes (reflow + full repaint)", "screen.py", "_refresh_layout"),
    ("    reflow / arrange", "_compositor.py", "reflow"),
    ("    get_content_height (all widgets)", "widget.py", "get_content_height"),
    ("    MessageView.get_content_height", "message.py", "get_content_height"),
    ("  compositor render (_render_chops)", "_compositor.py", "_render_chops"),
    ("    widgets' styles-cache render", "_styles_cache.py", "render_widget"),
    ("    render_line of CodeStream and FenceCode", "code_stream.py", "render_line"),
    ("    DOMNode.rich_style", "dom.py", "rich_style"),
    ("AnswerStream._update", "code_stream.py", "_update"),
    ("  Markdown.append (parse + block update)", "_markdown.py", "await_append"),
    ("  CodeStream.append_lines", "code_stream.py", "append_lines"),
    ("  CodeStream._highlight_line", "code_stream.py", "_highlight_line"),
    ("engine events (ChatScreen._engine_event)", "chat.py", "_engine_event"),
    ("frame recorder (the benchmark's own)", "frames.py", "_display"),
]


def while_answering(hook_on, hook_off) -> None:
    """Call `hook_on` once the model has loaded in `tui_decode_once` (then the prompt is typed and sent) and
    `hook_off` once the answer has ended: the profile holds the whole turn and nothing of the app's start."""
    until = ui_probes._until

    async def hooked_until(pilot, condition, timeout_s, what):
        if what == "the answer":
            try:
                return await until(pilot, condition, timeout_s, what)
            finally:
                hook_off()
        result = await until(pilot, condition, timeout_s, what)
        if what == "the model load":
            hook_on()
        return result

    ui_probes._until = hooked_until


def parts_table(stats: pstats.Stats) -> list[str]:
    total = stats.total_tt or 1.0
    lines = [f"profiled UI-thread time {total:.2f} s"]
    for label, file_end, function in PARTS:
        cumulative = calls = 0
        for (path, _line, name), (_cc, ncalls, _tt, ct, _callers) in stats.stats.items():
            if path.endswith(file_end) and name == function:
                cumulative, calls = cumulative + ct, calls + ncalls
        lines.append(f"  {label:46} {cumulative:6.2f} s {100 * cumulative / total:5.1f} %  calls {calls}")
    return lines


def tally_run(model: str, config, pace: float | None) -> tuple[dict, dict]:
    """Thread CPU per (what, widget class) over one unprofiled answer."""
    tally: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0.0])
    on = [False]

    def timed(what, method, owner=lambda self, *args: type(self).__name__):
        def wrapper(self, *args, **kwargs):
            if not on[0]:
                return method(self, *args, **kwargs)
            started = time.thread_time()
            try:
                return method(self, *args, **kwargs)
            finally:
                entry = tally[(what, owner(self, *args))]
                entry[0] += 1
                entry[1] += time.thread_time() - started
        return wrapper

    originals = (Widget._render_content, Widget.get_content_height, StylesCache.render_widget)
    Widget._render_content = timed("render content", Widget._render_content)
    Widget.get_content_height = timed("content height", Widget.get_content_height)
    StylesCache.render_widget = timed("styles-cache render", StylesCache.render_widget, lambda self, widget, *a: type(widget).__name__)
    while_answering(lambda: on.__setitem__(0, True), lambda: on.__setitem__(0, False))
    try:
        with paced(pace):
            run = asyncio.run(ui_probes.tui_decode_once(model, config))
    finally:
        Widget._render_content, Widget.get_content_height, StylesCache.render_widget = originals
    return run, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder or name (default: the demo model)")
    parser.add_argument("--tiny", action="store_true", help="the tiny random llama, built in a temp folder")
    parser.add_argument("--tokens", type=int, default=1500)
    parser.add_argument("--pace", type=float, default=None, help="tok/s the engine is held to (default: unpaced)")
    parser.add_argument("--top", type=int, default=30, help="top functions by cumulative time")
    parser.add_argument("--dump", default=None, help="write the profile here (pstats format)")
    args = parser.parse_args()
    from mlxchat.bench.ui_bench import set_app_policies

    set_app_policies(False, False, None)  # the app's collector and switch-interval policies, as shipped
    config = ui_probes.UIBenchConfig(decode_tokens=args.tokens, answer=REALISTIC_ANSWER)
    with tempfile.TemporaryDirectory(prefix="mlxchat-ui-profile-") as tmp:
        model = str(build_bench_model(Path(tmp) / "tiny-llama", cpu_spec())) if args.tiny else args.model
        with paced(args.pace):
            asyncio.run(ui_probes.tui_decode_once(model, config))  # warm-up: imports, first highlight, kernels
        profile = cProfile.Profile()
        until = ui_probes._until
        while_answering(profile.enable, profile.disable)
        with paced(args.pace):
            run = asyncio.run(ui_probes.tui_decode_once(model, config))
        ui_probes._until = until
        print(f"profiled run: {run['frames']} frames, {run['text_events']} text events, UI CPU {run['ui_cpu_s']:.2f} s "
              f"({run['ui_cpu_ms_per_frame']:.1f} ms/frame), rendered {run['rendered_tps']:.0f} tok/s, load {os.getloadavg()[0]:.1f}")
        stats = pstats.Stats(profile)
        if args.dump:
            stats.dump_stats(args.dump)
        print("\n".join(parts_table(stats)))
        stats.sort_stats("cumulative").print_stats(args.top)
        run, tally = tally_run(model, config, args.pace)
        ui_probes._until = until
        print(f"tallied run (no profiler): {run['frames']} frames, UI CPU {run['ui_cpu_s']:.2f} s ({run['ui_cpu_ms_per_frame']:.1f} ms/frame)")
        for (what, owner), (calls, seconds) in sorted(tally.items(), key=lambda item: -item[1][1])[:25]:
            print(f"  {what:20} {owner:28} {calls:6d} calls {seconds * 1000:8.1f} ms")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of MLX (the engine threads of finished apps are gone)


if __name__ == "__main__":
    main()
