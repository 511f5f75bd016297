"""Provides the one way an mlxchat process ends: close the engine, flush stdio, then `os._exit(rc)`.

Why not a normal interpreter exit: a process whose MLX generation thread has run often dies at exit with
`terminate called without an active exception` (SIGABRT, rc 134), from C++ destructors that run during
interpreter teardown. `os._exit` skips that teardown. It also skips Python's own flushing, so this helper
flushes stdout, stderr and logging first; the engine is closed (cancel, drain, unload, park its thread) before.

Exit codes, shared by every command:
    0    success
    1    the command failed while running (generation error, history or file error, internal error)
    2    bad input: usage error, a missing or damaged image, unknown model, a model that cannot be loaded or imported
    129  the chat screen's terminal was closed or lost (SIGHUP, or end of input on the terminal): drained, saved
    130  interrupted with Ctrl+C (SIGINT): the engine was drained first, partial output kept
    141  the reader of stdout went away (`mlxchat ask … | head -1`): generation was stopped and drained
    143  asked to stop (SIGTERM): drained, the partial answer saved as stopped
The signal codes follow the shell's 128 + signal number.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn, Protocol

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143

CLOSE_TIMEOUT_S = 15.0


class Closable(Protocol):
    def close(self, timeout_s: float = ...) -> bool: ...


def exit_process(rc: int, engine: Closable | None = None, *, close_timeout_s: float = CLOSE_TIMEOUT_S) -> NoReturn:
    """Close `engine` (if any; waits up to `close_timeout_s` for it to drain), flush stdio, `os._exit(rc)`."""
    if engine is not None:
        try:
            engine.close(timeout_s=close_timeout_s)
        except Exception as exc:  # ending must never turn into a traceback
            _say(f"mlxchat: warning: the engine did not close cleanly ({exc})")
    try:
        logging.shutdown()
    except Exception:
        pass
    flush_stdio()
    os._exit(rc)


def flush_stdio() -> None:
    """Flush stdout and stderr, ignoring a closed pipe (`mlxchat ask … | head`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass
