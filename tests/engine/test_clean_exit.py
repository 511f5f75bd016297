"""Real process exits after MLX generation on the engine thread: no abort, no traceback, many times over.

On this platform a process whose MLX generation thread has finished often dies at exit with
"terminate called without an active exception" (SIGABRT). The engine's owner thread parks instead of returning;
these subprocesses prove the process then exits cleanly, both after a finished answer and when closed mid-answer.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import queue, sys
    from mlxchat.engine import ChatRequest, Engine, Finished, LoadModel, Message, SamplingParams, TextDelta

    events = queue.SimpleQueue()
    engine = Engine(events.put).start()

    def until(kind, request_id):
        while True:
            event = events.get(timeout=60)
            if isinstance(event, kind) and event.request_id == request_id:
                return event

    load = LoadModel(sys.argv[1])
    engine.submit(load)
    assert until(Finished, load.request_id).reason == "stop"
    done = ChatRequest((Message("user", "Hello"),), sampling=SamplingParams(temperature=0, max_tokens=30))
    engine.submit(done)
    assert until(Finished, done.request_id).reason == "length"
    endless = ChatRequest((Message("user", "Go on"),), sampling=SamplingParams(temperature=0, max_tokens=10**6))
    engine.submit(endless)
    until(TextDelta, endless.request_id)
    if sys.argv[2] == "cancel-then-close":
        engine.cancel(endless.request_id)
        assert until(Finished, endless.request_id).reason == "cancelled"
    assert engine.close(timeout_s=30)
    print("clean", flush=True)
    """
)


@pytest.mark.parametrize("ending", ["cancel-then-close", "close-mid-answer"])
def test_process_exits_cleanly_after_engine_generation(tiny_model, ending):
    for attempt in range(5):
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tiny_model), ending],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "terminate called" not in result.stderr, f"attempt {attempt}: {result.stderr}"
        assert "Traceback" not in result.stderr, f"attempt {attempt}: {result.stderr}"
        assert result.returncode == 0, f"attempt {attempt}: rc {result.returncode}\n{result.stderr}"
        assert result.stdout.strip() == "clean"
