"""The first message's imports and Pygments' lexer setup are paid on a thread of its own once the model has loaded
(`AnswerWarmup`), so sending the first message imports nothing on the UI thread and the first code block of an
answer builds no lexer there; quitting at once stops the warm-up cleanly.

Each test runs a fresh interpreter: lexer classes and modules are built once per process, so in this one an earlier
test may have built them already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

FIRST_FENCE = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, sys.argv[1])
    from pygments.lexer import RegexLexerMeta

    builds = []  # (lexer class, thread) for each first build of a lexer class's token table
    original = RegexLexerMeta.__call__

    def recording(cls, *args, **kwargs):
        if "_tokens" not in cls.__dict__:
            builds.append((cls.__name__, threading.current_thread().name))
        return original(cls, *args, **kwargs)

    RegexLexerMeta.__call__ = recording

    from staged import app_on_staged_engine, ask, loaded_scene, play_answer_end, play_answer_start, until
    import mlxchat.store  # as `run_tui` does before the app starts (it opens the history)

    TEXT = "Here it is:\\n\\n```python\\ndef add(a, b):\\n    return a + b\\n"
    app, engine = app_on_staged_engine()
    result = {}

    async def user(pilot):
        await until(pilot, lambda: bool(engine.submitted), 30, "the load request")
        result["lexers_before_the_load"] = "pygments.lexers" in sys.modules
        await loaded_scene(pilot, engine)
        warmup = getattr(app, "answer_warmup", None)
        if warmup is not None:
            await until(pilot, warmup.done.is_set, 120, "the warm-up")
        modules = set(sys.modules)
        await ask(pilot)
        result["modules_at_the_first_send"] = sorted(set(sys.modules) - modules)
        modules, built = set(sys.modules), len(builds)
        play_answer_start(engine, TEXT, 20)
        from mlxchat.ui.widgets.code_stream import CodeStream

        await until(pilot, lambda: any(code.line_count >= 2 for code in app.screen.query(CodeStream)), 30, "the fence")
        result["new_pygments_modules"] = sorted(m for m in set(sys.modules) - modules if m.startswith("pygments"))
        result["builds_at_the_fence"] = builds[built:]
        result["builds"] = builds
        play_answer_end(engine, TEXT, 20)
        await until(pilot, lambda: not app.chat.busy, 30, "the answer's end")
        app.exit(0)

    app.run(headless=True, auto_pilot=user, size=(100, 30))
    print("RESULT " + json.dumps(result), flush=True)
    """
)


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=180)


def test_after_the_warm_up_the_first_send_imports_nothing_and_the_first_fence_builds_no_lexer():
    """The engine is the staged one (a random-weight model writes no code fence); the app and its code view are
    real. Sending the first message imports no module on the UI thread (without the warm-up: the message view's,
    Textual's Markdown and markdown-it); the fence's Python lexer was built by the warm-up thread, and the fence
    imports no Pygments module."""
    result = run_script(FIRST_FENCE, str(TESTS))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert found["modules_at_the_first_send"] == []
    assert found["lexers_before_the_load"] is False  # the warm-up waits for the model: the load goes first
    assert found["new_pygments_modules"] == []
    assert found["builds_at_the_fence"] == []
    assert ["PythonLexer", "mlxchat-answer-warmup"] in found["builds"]
    assert not [build for build in found["builds"] if build[1] == "MainThread"]


QUIT_AT_ONCE = textwrap.dedent(
    """
    import sys, threading, time
    from mlxchat.settings import ChatSettings
    from mlxchat.ui import warmup as answer_warmup
    from mlxchat.ui.app import make_app

    prepare = answer_warmup.prepare_lexer

    def slow_prepare(language):  # each language 0.1 s longer (GIL released), so the quit surely lands mid-warm-up
        time.sleep(0.1)
        prepare(language)

    answer_warmup.prepare_lexer = slow_prepare
    model = sys.argv[1]
    app = make_app(model=model, chat_settings=ChatSettings(temperature=0.0, max_tokens=100, model=model))
    warmup = app.answer_warmup
    running_at_quit = []

    async def user(pilot):
        deadline = time.monotonic() + 150  # a model load in a fresh interpreter, on a loaded machine
        while not (warmup.running or warmup.done.is_set()):
            assert time.monotonic() < deadline, "the warm-up never started"
            await pilot.pause(0.005)
        running_at_quit.append(warmup.running and not warmup.done.is_set())
        await pilot.press("ctrl+q")

    code = app.run(headless=True, auto_pilot=user, size=(100, 30))
    left = [thread.name for thread in threading.enumerate() if thread.name == "mlxchat-answer-warmup"]
    print("exit", code, "running at quit", running_at_quit, "left", left, "error", warmup.error, flush=True)
    sys.exit(code or 0)
    """
)


def test_quitting_at_once_stops_the_warm_up_and_leaves_no_thread(tiny_model):
    """The real app and engine: Ctrl+Q as soon as the warm-up has started (the model just loaded). The app exits 0,
    the warm-up thread has ended by then, and nothing is printed to stderr."""
    result = run_script(QUIT_AT_ONCE, str(tiny_model))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "exit 0 running at quit [True] left [] error None" in result.stdout
    assert result.stderr == ""


ONE_BUILD = textwrap.dedent(
    """
    import threading, time
    from pygments.lexer import RegexLexerMeta
    from mlxchat.ui.lexer_setup import highlight_guarded, prepare_lexer

    starts = []
    original = RegexLexerMeta.__call__

    def slow_first_build(cls, *args, **kwargs):
        if "_tokens" not in cls.__dict__:
            starts.append(cls.__name__)
            time.sleep(0.05)  # widen the window in which a second thread could start the same build
        return original(cls, *args, **kwargs)

    RegexLexerMeta.__call__ = slow_first_build
    threads = [threading.Thread(target=prepare_lexer, args=("rust",)) for _ in range(3)]
    threads.append(threading.Thread(target=highlight_guarded, args=("fn main() {}", "rust", False, True)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    print("builds", starts.count("RustLexer"), flush=True)
    """
)


def test_a_lexer_class_is_built_once_when_threads_ask_for_it_together():
    """The warm-up thread, the UI thread and the block highlighter's worker may want the same language at once;
    its token table is built by one of them (two builds at once can leave a wrong table: lexer_setup's docstring)."""
    result = run_script(ONE_BUILD)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "builds 1" in result.stdout


def test_while_an_answer_is_written_the_warm_up_imports_but_builds_no_lexer(monkeypatch):
    """Held (the app holds it from an answer's `Started` to its `Finished`), the warm-up does the imports the first
    message needs and waits before the lexers; released, it builds them; closed while held, it ends at once."""
    import threading
    import time

    from mlxchat.ui import warmup as answer_warmup

    built: list[str] = []
    monkeypatch.setattr(answer_warmup, "prepare_lexer", built.append)
    imported: list[str] = []
    monkeypatch.setattr(answer_warmup.importlib, "import_module", imported.append)

    held = answer_warmup.AnswerWarmup(modules=("some.module",), languages=("python", "rust"))
    held.hold()
    held.start()
    deadline = time.monotonic() + 10
    while not imported:
        assert time.monotonic() < deadline, "the import never ran"
        time.sleep(0.01)
    time.sleep(0.2)
    assert imported == ["some.module"] and built == [] and not held.done.is_set()
    held.release()
    assert held.done.wait(10) and built == ["python", "rust"] and held.error is None

    closed = answer_warmup.AnswerWarmup(modules=(), languages=("go",))
    closed.hold()
    closed.start()
    started = time.monotonic()
    closed.close()
    assert time.monotonic() - started < 1.0 and not closed.running and built == ["python", "rust"]
    assert not [t for t in threading.enumerate() if t.name == answer_warmup.AnswerWarmup.thread_name]
