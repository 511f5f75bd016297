"""What the answer warm-up (issue 11, `mlxchat/ui/warmup.py`) buys and costs, each side alternating run by run.

    python benchmarks/lexer_warmup.py send --rounds 8
    python benchmarks/lexer_warmup.py fence --rounds 8
    python benchmarks/lexer_warmup.py launch --rounds 8 --model /tmp/tiny before=/tmp/before after=.
    python benchmarks/lexer_warmup.py answer --rounds 8 --model /tmp/tiny

`send`: a fresh interpreter per run runs the real app on the staged engine (tests/staged.py) with the history
store imported first (as `run_tui` does) and, once the model has loaded and the warm-up is done (or with it switched
off), sends the first message; prints the UI thread's CPU from the start to the end of `ChatScreen.send` (what else
the event loop ran during its awaits included) and the modules the send imported, for each side.

`fence`: a fresh interpreter per run runs the real app (the staged engine from tests/staged.py: a random-weight
model writes no code fence) and, once the model has loaded and the warm-up is done (or with it switched off), streams an answer whose first
fence is Python; prints the UI thread's CPU in the code view's first append (the first line's highlight), and in
its second, for each side.

`answer`: the worst case for the warm-up's own cost: the real app and engine, the prompt sent the moment the model
has loaded (so the warm-up runs beside the answer's start); the time from the load (as the app saw it) to the answer's
first text and to its end (`--tokens`), warm-up on and off; the warm-up's thread CPU, and when it began and ended.

`launch`: launch -> first frame and launch -> model ready of two source trees (`python -m mlxchat --model M` in a
pseudo-terminal, bytecode cached, empty config and data folders), alternating launch by launch after one untimed
launch per side; Ctrl+Q once the model is ready (and so the warm-up has started: it follows the load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"

STAGED_RUN = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from staged import app_on_staged_engine, ask, loaded_scene, play_answer_end, play_answer_start, until
    from mlxchat.ui.warmup import AnswerWarmup

    if sys.argv[2] != "on":  # the warm-up switched off: it only says it is done
        AnswerWarmup.start = lambda self: self.done.set()
    """
)
"""The start of a run on the staged engine (`python -c SCRIPT TESTS on|off`)."""

FENCE_RUN = STAGED_RUN + textwrap.dedent(
    """
    from mlxchat.engine import TextDelta
    from mlxchat.ui.widgets.code_stream import CodeStream

    appends = []
    original = CodeStream.append_lines

    def timed(self, lines, partial):
        started = time.thread_time()
        original(self, lines, partial)
        appends.append((time.thread_time() - started) * 1000)

    CodeStream.append_lines = timed
    app, engine = app_on_staged_engine()
    LINES = ["def add(a, b):", "    return a + b", "", "print(add(1, 2))"]

    async def user(pilot):
        await loaded_scene(pilot, engine)
        await until(pilot, app.answer_warmup.done.is_set, 60, "the warm-up")
        await ask(pilot)
        text = "Here it is:\\n\\n```python\\n" + LINES[0] + "\\n"
        play_answer_start(engine, text, 10)
        await until(pilot, lambda: len(appends) >= 1, 30, "the first append")
        for line in LINES[1:]:
            text += line + "\\n"
            engine.emit(TextDelta(engine.last_request_id, line + "\\n", 1))
        await until(pilot, lambda: len(appends) >= 2, 30, "the second append")
        play_answer_end(engine, text, 20)
        await until(pilot, lambda: not app.chat.busy, 30, "the answer's end")
        app.exit(0)

    app.run(headless=True, auto_pilot=user, size=(100, 30))
    print("RESULT " + json.dumps(appends[:2]), flush=True)
    """
)


SEND_RUN = STAGED_RUN + textwrap.dedent(
    """
    import mlxchat.store  # as `run_tui` does before the app starts (it opens the history)
    from mlxchat.ui.screens.chat import ChatScreen

    sends = []
    original = ChatScreen.send

    async def timed(self, text):
        started = time.thread_time()
        sent = await original(self, text)
        sends.append((time.thread_time() - started) * 1000)
        return sent

    ChatScreen.send = timed
    app, engine = app_on_staged_engine()
    result = {}

    async def user(pilot):
        await loaded_scene(pilot, engine)
        await until(pilot, app.answer_warmup.done.is_set, 60, "the warm-up")
        modules = set(sys.modules)
        await ask(pilot)
        result["imported"] = len(set(sys.modules) - modules)
        play_answer_start(engine, "Hi.", 2)
        play_answer_end(engine, "Hi.", 2)
        await until(pilot, lambda: not app.chat.busy, 30, "the answer's end")
        app.exit(0)

    app.run(headless=True, auto_pilot=user, size=(100, 30))
    result["send_ms"] = sends[0]
    print("RESULT " + json.dumps(result), flush=True)
    """
)


ANSWER_RUN = textwrap.dedent(
    """
    import json, sys, time
    from mlxchat.engine import Engine, Finished, TextDelta
    from mlxchat.settings import ChatSettings
    from mlxchat.ui.app import make_app
    from mlxchat.ui.warmup import AnswerWarmup

    model, warm, tokens = sys.argv[1], sys.argv[2] == "on", int(sys.argv[3])
    cpu = []
    original = AnswerWarmup._run

    def timed(self):
        started, began = time.thread_time(), time.perf_counter()
        original(self)
        cpu.append(((time.thread_time() - started) * 1000, began, time.perf_counter()))

    AnswerWarmup._run = timed
    if not warm:
        AnswerWarmup.start = lambda self: self.done.set()
    events = []  # (time, event) on the engine's thread, as it emits them

    def factory(sink):
        def tee(event):
            events.append((time.perf_counter(), event))
            sink(event)

        return Engine(tee)

    settings = ChatSettings(temperature=0.0, max_tokens=tokens, model=model)
    app = make_app(model=model, engine_factory=factory, chat_settings=settings, animate=False)
    result = {}

    async def until(pilot, condition, timeout_s=120.0):
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await pilot.pause(0.002)

    async def user(pilot):
        await until(pilot, lambda: app.chat.model is not None and not app.chat.busy)
        loaded = time.perf_counter()
        count = len(events)
        await pilot.press(*"code", "enter")
        await until(pilot, lambda: any(isinstance(event, Finished) for _, event in events[count:]))
        await until(pilot, app.answer_warmup.done.is_set)
        if cpu:
            result["warm_cpu_ms"] = cpu[0][0]
            result["warm_start_ms"], result["warm_end_ms"] = ((at - loaded) * 1000 for at in cpu[0][1:])
        mine = events[count:]
        first = next(at for at, event in mine if isinstance(event, TextDelta))
        end = next(at for at, event in mine if isinstance(event, Finished))
        result["first_text_ms"] = (first - loaded) * 1000
        result["answer_ms"] = (end - loaded) * 1000
        app.exit(0)

    app.run(headless=True, auto_pilot=user, size=(100, 30))
    print("RESULT " + json.dumps(result), flush=True)
    """
)


def alternating(rounds: int, script: str, first: str, *rest: str) -> dict[str, list]:
    """Each side's RESULTs of `python -c script first on|off *rest`, a fresh interpreter per run, warm-up off and
    on alternating which goes first."""
    numbers: dict[str, list] = {"off": [], "on": []}
    for index in range(rounds):
        for side in ("off", "on") if index % 2 == 0 else ("on", "off"):
            command = [sys.executable, "-c", script, first, side, *rest]
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if result.returncode != 0 or "RESULT " not in result.stdout:
                raise SystemExit(result.stdout[-2000:] + result.stderr[-3000:])
            numbers[side].append(json.loads(result.stdout.split("RESULT ", 1)[1]))
    return numbers


def answer(rounds: int, model: str, tokens: int) -> None:
    numbers = alternating(rounds, ANSWER_RUN, model, str(tokens))
    for side, runs in numbers.items():
        line = f"warm-up {side}, n={len(runs)}:"
        for key in ("first_text_ms", "answer_ms") + (("warm_cpu_ms", "warm_start_ms", "warm_end_ms") if side == "on" else ()):
            values = [run[key] for run in runs]
            line += f" {key} median {statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}];"
        print(line)


def send(rounds: int) -> None:
    numbers = alternating(rounds, SEND_RUN, str(TESTS))
    for side, runs in numbers.items():
        sends = [run["send_ms"] for run in runs]
        print(f"warm-up {side}: the first send's UI CPU median {statistics.median(sends):.1f} ms "
              f"[{min(sends):.1f}-{max(sends):.1f}], modules it imported {sorted({run['imported'] for run in runs})}, "
              f"n={len(runs)}: {' '.join(f'{v:.1f}' for v in sends)}")


def fence(rounds: int) -> None:
    numbers = alternating(rounds, FENCE_RUN, str(TESTS))
    for side, runs in numbers.items():
        first, second = [run[0] for run in runs], [run[1] for run in runs]
        print(f"warm-up {side}: first append (first line) median {statistics.median(first):.2f} ms "
              f"[{min(first):.2f}-{max(first):.2f}], second median {statistics.median(second):.2f} ms, "
              f"n={len(runs)}: {' '.join(f'{v:.1f}' for v in first)}")


def launch(rounds: int, model: str, sides: dict[str, str]) -> None:
    from mlxchat.bench.pty_app import CTRL_Q, PtyApp, mlxchat_command
    from mlxchat.bench.ui_probes import WELCOME_TEXT

    first: dict[str, list[float]] = {name: [] for name in sides}
    ready: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="mlxchat-warmup-") as tmp:
        for round_index in range(-1, rounds):
            for name in list(sides) if round_index % 2 == 0 else list(reversed(sides)):
                env = {
                    "PYTHONPATH": os.pathsep.join([str(Path(sides[name]).resolve()), os.environ.get("PYTHONPATH", "")]),
                    "MLXCHAT_CONFIG_DIR": f"{tmp}/config-{name}-{round_index}",
                    "MLXCHAT_DATA_DIR": f"{tmp}/data-{name}-{round_index}",
                    "PYTHONDONTWRITEBYTECODE": "",
                    "PYTHONPYCACHEPREFIX": f"{tmp}/bytecode",
                }
                with PtyApp(mlxchat_command("--model", model), env=env, columns=100, rows=32, cwd=Path(tmp)) as app:
                    first_s = app.wait_for(WELCOME_TEXT, 60) - app.started_at
                    ready_s = app.wait_for("● ready", 300) - app.started_at
                    app.send(CTRL_Q)
                    app.wait(60)
                if round_index >= 0:
                    first[name].append(first_s * 1000)
                    ready[name].append(ready_s * 1000)
    for label, values in (("first frame", first), ("model ready", ready)):
        for name, times in values.items():
            print(f"{name} launch -> {label}: median {statistics.median(times):.0f} ms, min {min(times):.0f}, "
                  f"max {max(times):.0f}, n={len(times)}: {' '.join(f'{v:.0f}' for v in times)}")
        a, b = values
        print(f"  {b} / {a} (medians): {statistics.median(values[b]) / statistics.median(values[a]):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("send", "fence", "answer", "launch"))
    parser.add_argument("sides", nargs="*", metavar="NAME=FOLDER", help="launch: two source trees to compare")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--model", help="launch, answer: the model to load")
    parser.add_argument("--tokens", type=int, default=300, help="answer: the answer's length in tokens")
    args = parser.parse_intermixed_args()
    if args.mode == "send":
        send(args.rounds)
    elif args.mode == "fence":
        fence(args.rounds)
    elif args.mode == "answer":
        if not args.model:
            parser.error("answer takes --model")
        answer(args.rounds, args.model, args.tokens)
    else:
        if len(args.sides) != 2 or not args.model:
            parser.error("launch takes --model and two NAME=FOLDER sides")
        launch(args.rounds, args.model, dict(side.split("=", 1) for side in args.sides))


if __name__ == "__main__":
    main()
