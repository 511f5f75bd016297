"""Provides `PtyApp`: the real `mlxchat` process in a pseudo-terminal of a fixed size, read with timestamps.

The benchmark times launch → first painted frame with it, and the stress tests quit or `kill -9` the app with
it. A reader thread keeps every byte the app writes, each chunk with its arrival time, so "when did X first
appear on the terminal" is answered after the fact without polling races. Keys are written to the terminal
as a user's terminal would send them (Ctrl+Q is byte 0x11).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

CTRL_Q = b"\x11"
ENTER = b"\r"
ESCAPE = b"\x1b"
ALT_SCREEN = b"\x1b[?1049h"
_ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)")


def mlxchat_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlxchat", *args]


class PtyApp:
    """Start `command` on a new pseudo-terminal of `columns` × `rows`.

    Use as a context manager; leaving it kills the process if it is still running (by its own pid only).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        columns: int = 100,
        rows: int = 30,
        cwd: Path | None = None,
        controlling_terminal: bool = True,
    ) -> None:
        self.command = list(command)
        self.controlling_terminal = controlling_terminal
        """False: the pty is only the app's stdin/stdout, so closing it sends no SIGHUP (a lost ssh session or a
        terminal that vanished without hanging up)."""
        self.env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows), **(env or {})}
        self.env.pop("TEXTUAL", None)
        self.size = (columns, rows)
        self.cwd = cwd
        self.chunks: list[tuple[float, bytes]] = []
        self._buffer = bytearray()
        self._lock = threading.Condition()
        self._eof = False
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def __enter__(self) -> "PtyApp":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc_info) -> None:
        self.kill()

    def start(self) -> "PtyApp":
        if self.process is not None:
            raise RuntimeError("this PtyApp has already started its process")
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.size[1], self.size[0], 0, 0))
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_take_controlling_terminal if self.controlling_terminal else None,
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        threading.Thread(target=self._read, name="pty-reader", daemon=True).start()
        return self

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError as exc:  # EIO: the last process holding the terminal has gone
                if exc.errno not in (errno.EIO, errno.EBADF):
                    raise
                data = b""
            with self._lock:
                if not data:
                    self._eof = True
                    self._lock.notify_all()
                    return
                self.chunks.append((time.perf_counter(), data))
                self._buffer += data
                self._lock.notify_all()

    # ---- reading ------------------------------------------------------------------------------------------

    @property
    def output(self) -> bytes:
        with self._lock:
            return bytes(self._buffer)

    def text(self) -> str:
        """Everything written so far with escape sequences removed (words survive; layout does not)."""
        return strip_escapes(self.output)

    def wait_for(self, needle: bytes | str, timeout_s: float = 30.0, *, plain: bool = True, after: int = 0) -> float:
        """Wait until `needle` appears (in the text without escapes when `plain`) past byte `after`; return the
        perf_counter time of the chunk that completed it. Raises TimeoutError with the screen's text."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                at = self._find(needle, plain, after)
                if at is not None:
                    return at
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    tail = strip_escapes(bytes(self._buffer))[-1500:]
                    state = "exited" if self._eof else f"not within {timeout_s}s"
                    raise TimeoutError(f"{needle!r} did not appear ({state}); screen text ends: {tail!r}")
                self._lock.wait(min(remaining, 0.1))

    def _find(self, needle: bytes, plain: bool, after: int) -> float | None:
        """The arrival time of the first chunk by which `needle` had appeared (binary search over prefixes)."""

        def contains(end: int) -> bool:
            data = bytes(self._buffer[after:end])
            return needle in (strip_escapes(data).encode() if plain else data)

        if not contains(len(self._buffer)):
            return None
        ends, total = [], 0
        for _, data in self.chunks:
            total += len(data)
            ends.append(total)
        low, high = 0, len(ends) - 1
        while low < high:
            middle = (low + high) // 2
            if contains(ends[middle]):
                high = middle
            else:
                low = middle + 1
        return self.chunks[low][0]

    def mark(self) -> int:
        """The number of bytes received so far: pass it as `after` to look only at what comes next."""
        with self._lock:
            return len(self._buffer)

    # ---- writing and ending -------------------------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        os.write(self._master, data.encode() if isinstance(data, str) else data)

    def type(self, text: str, pause_s: float = 0.0) -> None:
        for character in text:
            self.send(character)
            if pause_s:
                time.sleep(pause_s)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        rc = self.process.wait(timeout_s)
        with self._lock:
            self._lock.wait_for(lambda: self._eof, timeout=5)
        return rc

    def close_terminal(self) -> None:
        """Close the terminal's side of the pty, as a terminal window that goes away does. The app reads EOF or
        EIO from then on (and gets SIGHUP if the pty is its controlling terminal)."""
        try:
            os.close(self._master)
        except OSError:
            pass

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.close(self._master)
        except (OSError, AttributeError):
            pass


def _take_controlling_terminal() -> None:
    """In the child, after `setsid`: make the pty (already its stdin) the controlling terminal, as a terminal
    emulator does, so closing the terminal sends the app SIGHUP like a real one would."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def strip_escapes(data: bytes) -> str:
    return _ESCAPES.sub(b"", data).decode("utf-8", "replace")
