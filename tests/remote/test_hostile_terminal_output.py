"""`mlxchat ask` against a hostile server: text meant for the terminal (OSC 52 clipboard, window title, clear
screen) is shown, never obeyed, when stdout or stderr is a terminal; a pipe gets the server's bytes unchanged."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from remote_fakes import error_response, stream

HOSTILE = "\x1b]52;c;cHduZWQ=\x07\x1b]0;pwned\x07\x1b[2J\x9b31m"


def run_ask_on_a_terminal(url: str, *, stdout_terminal: bool) -> tuple[int, bytes, bytes]:
    """Run `mlxchat ask` with stdout (or stderr) on a pseudo-terminal; returns (rc, stdout bytes, stderr bytes)."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "mlxchat", "ask", "Hi", "--endpoint", url]
    pipe = subprocess.PIPE
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=follower if stdout_terminal else pipe,
        stderr=pipe if stdout_terminal else follower,
    )
    os.close(follower)
    from_terminal = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        readable, _, _ = select.select([leader], [], [], 0.1)
        if readable:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the process has closed its side
                break
            if not data:
                break
            from_terminal += data
        elif process.poll() is not None:
            break
    piped = (process.stderr if stdout_terminal else process.stdout).read()
    rc = process.wait(timeout=30)
    os.close(leader)
    return (rc, bytes(from_terminal), piped) if stdout_terminal else (rc, piped, bytes(from_terminal))


def test_answer_text_on_a_terminal_cannot_set_the_clipboard_title_or_clear_the_screen(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLXCHAT_CONFIG_DIR", str(tmp_path))
    fake_server.chat = stream("Hello ", HOSTILE, " world")
    rc, out, err = run_ask_on_a_terminal(fake_server.url, stdout_terminal=True)
    assert rc == 0, err
    assert b"\x1b" not in out and b"\x07" not in out and "\x9b".encode() not in out, out
    assert out.decode().startswith("Hello ␛]52;c;cHduZWQ=␇␛]0;pwned␇␛[2J\ufffd31m world"), out


def test_answer_text_in_a_pipe_passes_unchanged(fake_server, tmp_path):
    fake_server.chat = stream("Hello ", HOSTILE, " world")
    result = subprocess.run(
        [sys.executable, "-m", "mlxchat", "ask", "Hi", "--endpoint", fake_server.url],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "MLXCHAT_CONFIG_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Hello {HOSTILE} world\n".encode()


def test_a_server_error_message_on_a_terminal_stderr_is_shown_not_obeyed(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLXCHAT_CONFIG_DIR", str(tmp_path))
    fake_server.chat = error_response(400, {"error": {"message": f"bad {HOSTILE} request"}})
    rc, out, err = run_ask_on_a_terminal(fake_server.url, stdout_terminal=False)
    assert rc == 1, err
    err = err.replace(b"\r\x1b[2K", b"")  # mlxchat's own progress line, cleared
    assert b"\x1b" not in err and b"\x07" not in err, err
    assert "␛]52;c;" in err.decode(), err
