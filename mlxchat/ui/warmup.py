"""Provides `AnswerWarmup`: what the first message and the first code fence need, prepared on a thread of its own.

Two one-time costs used to land on the UI thread at the worst moments, once per process:

- **the first message.** The message view's module (Textual's Markdown, markdown-it and its rules, the answer's
  code and table views) is imported when the first message is shown, which keeps it out of launch → first frame;
  the send then froze the prompt for the import: the first send took 76.6 ms of UI-thread CPU on the 2-core CI
  machine, 21.9 ms with the warm-up (BENCHMARKS.md, round 10). (The history store's modules are imported by
  `run_tui` before the app starts.)
- **the first code fence of a language**: Pygments builds the lexer's token table (`lexer_setup.py`), 23–33 ms.

The warm-up imports those modules first and then builds the commonest lexers, once the model has loaded: the
engine is idle then and the user is still to press Enter (a prompt sent during the load is refused), so it delays
neither the first frame nor the load. Importing on another thread is safe: the import system's per-module locks
make a thread that needs a module another is importing wait for it and get the one module object, and these
modules' import-time code only defines classes and constants. Lexer builds are serialised by `prepare_lexer`.
"""

from __future__ import annotations

import importlib
import threading

from .lexer_setup import WARM_LANGUAGES, prepare_lexer

FIRST_MESSAGE_MODULES = ("mlxchat.ui.widgets.message",)
"""What showing the first message imports (checked: tests/ui/test_answer_warmup.py)."""


class AnswerWarmup:
    """A thread that imports `modules`, then prepares the lexers of `languages`; started once (the app starts it
    when a model loads).

    While an answer is being written (`hold` until `release`; the app holds at `Started`, releases at `Finished`)
    it builds no lexer: sent the instant the model had loaded, a first answer's start shared the two cores with the
    builds (its first text 345 → 572 ms after the load on the CI machine, BENCHMARKS.md round 10). The imports go on
    while held: the first message needs them anyway. A fence in a language not built yet builds it where it is
    drawn, as before the warm-up existed.

    `close` asks it to stop after the step it is in and waits for it, so quitting at once leaves no thread behind
    (at most one import or lexer build, tens of ms, is waited for); a `start` after `close` starts nothing."""

    join_timeout_s = 2.0
    thread_name = "mlxchat-answer-warmup"

    def __init__(
        self, modules: tuple[str, ...] = FIRST_MESSAGE_MODULES, languages: tuple[str, ...] = WARM_LANGUAGES
    ) -> None:
        self.modules = modules
        self.languages = languages
        self.done = threading.Event()
        """Set when every module is imported and every language prepared (or the warm-up stopped or failed)."""
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._free = threading.Event()  # clear while an answer is being written (`hold`)
        self._free.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None or self._stopping.is_set():
            return
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """True from `start` until the thread has ended."""
        return self._thread is not None and self._thread.is_alive()

    def hold(self) -> None:
        """Build no more lexers until `release` (an answer is being written). Safe from any thread."""
        self._free.clear()

    def release(self) -> None:
        self._free.set()

    def _run(self) -> None:
        try:
            for name in self.modules:  # imported even while an answer is written: its first message needs them
                if self._stopping.is_set():
                    return
                importlib.import_module(name)
            for language in self.languages:
                self._free.wait()
                if self._stopping.is_set():
                    return
                prepare_lexer(language)
        except Exception as exc:  # a broken install shows where the module or lexer is used, as it did before
            self.error = exc
        finally:
            self.done.set()

    def close(self) -> None:
        self._stopping.set()
        self._free.set()  # a held warm-up wakes to stop
        if self._thread is not None:
            self._thread.join(self.join_timeout_s)
