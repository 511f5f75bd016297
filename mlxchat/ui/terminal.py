"""Provides `TerminalDriver`: Textual's Linux/macOS driver, plus the two ways a chat ends without a key press.

- **Signals.** SIGINT, SIGTERM and SIGHUP become a `QuitRequested` message with the exit code the README
  documents (130, 143, 129), so the app ends them the way it ends Ctrl+Q: drain the engine, save the partial
  answer as stopped, restore the terminal. Without this SIGTERM and SIGHUP killed the process on the spot (the
  answer lost, the terminal left in alternate-screen and mouse mode) and SIGINT exited 0.
- **A lost terminal.** When the terminal goes away without a SIGHUP (a pty whose other side closed, a dropped
  ssh session), reads give end-of-file and writes fail with EIO: Textual's input thread then spins on the EOF
  and its writer thread dies, until the event loop blocks on the writer's full queue, and the finished answer is
  never saved. A thread waits (in `poll`, costing nothing) for the terminal's hang-up; then the terminal's file
  descriptors are pointed at /dev/null, so nothing writes to or reads from the dead terminal again, the input
  thread is stopped, and the app is asked to quit (129), saving as it does.

Only a real terminal uses this driver (`driver_for`); tests with Textual's headless driver are untouched.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
from typing import Type

from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

from mlxchat.exit import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED

SIGNAL_EXIT_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED, signal.SIGHUP: EXIT_HANGUP}
_HANG_UP = select.POLLHUP | select.POLLERR | select.POLLNVAL


class QuitRequested(Message):
    """Something outside the app asks it to end: quit as Ctrl+Q does (drain, save), then exit with `exit_code`."""

    def __init__(self, exit_code: int, reason: str) -> None:
        super().__init__()
        self.exit_code = exit_code
        self.reason = reason
        """What happened, in words: "SIGTERM", "the terminal was lost"."""


class TerminalDriver(LinuxDriver):
    """`LinuxDriver` that turns signals and a lost terminal into `QuitRequested` (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.terminal_lost = False
        self._watching = threading.Event()
        self._signals: list[int] = []

    def start_application_mode(self) -> None:
        super().start_application_mode()
        loop = asyncio.get_running_loop()
        for signum in SIGNAL_EXIT_CODES:
            loop.add_signal_handler(signum, self._signalled, signum)
            self._signals.append(signum)
        self._watching.set()
        threading.Thread(target=self._watch_for_hang_up, name="terminal-watch", daemon=True).start()

    def stop_application_mode(self) -> None:
        self._watching.clear()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for signum in self._signals:
            if loop is not None:
                loop.remove_signal_handler(signum)
        self._signals.clear()
        super().stop_application_mode()

    def write(self, data: str) -> None:
        if not self.terminal_lost:  # a dead terminal takes nothing; its writer thread may be gone
            super().write(data)

    def close(self) -> None:
        writer = self._writer_thread
        if self.terminal_lost and writer is not None and not writer.is_alive():
            return  # it died on EIO: stopping it would wait on its queue for good
        super().close()

    def _signalled(self, signum: int) -> None:
        """On the event loop (asyncio's signal handling), so posting is all it takes."""
        self._app.post_message(QuitRequested(SIGNAL_EXIT_CODES[signum], signal.Signals(signum).name))

    def _watch_for_hang_up(self) -> None:
        poller = select.poll()
        descriptors = {self.fileno, self._file.fileno()} | ({1} if os.isatty(1) else set())
        for descriptor in descriptors:
            poller.register(descriptor, 0)  # no events asked for: only hang-up and errors wake the poll
        while self._watching.is_set():
            if any(mask & _HANG_UP for _, mask in poller.poll(500)):
                self._lose_terminal(descriptors)
                return

    def _lose_terminal(self, descriptors: set[int]) -> None:
        self.terminal_lost = True
        null = os.open(os.devnull, os.O_RDWR)
        for descriptor in descriptors:
            os.dup2(null, descriptor)
        os.close(null)
        self.exit_event.set()  # the input thread ends instead of reading end-of-file in a loop
        self._app.post_message(QuitRequested(EXIT_HANGUP, "the terminal was lost"))


def driver_for(default: Type[Driver]) -> Type[Driver]:
    """The driver to run the chat with: `TerminalDriver` where Textual would use its Linux/macOS driver."""
    return TerminalDriver if default is LinuxDriver else default
