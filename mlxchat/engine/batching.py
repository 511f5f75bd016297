"""Provides time-based batching of streamed text.

A fast model can produce hundreds of tokens a second; a UI repaints well at ~30 Hz. The owner thread collects
text here and hands it on at most once per interval, so the consumer's work grows with time, not with tokens.
"""

from __future__ import annotations

import time
from typing import Callable


class TextBatcher:
    """Collects text and flushes it when `interval_s` has passed since the last flush.

    The first text goes out at once: the time to the first visible token is what a person notices most (a remote
    server with a cached prompt answers well within one interval); batching starts after it.
    """

    def __init__(self, flush: Callable[[str, int], None], interval_s: float = 0.03) -> None:
        self._flush = flush
        self._interval_s = interval_s
        self._pending: list[str] = []
        self._pending_tokens = 0
        self._last_flush = time.perf_counter()
        self._text_sent = False

    def add(self, text: str, tokens: int = 1) -> None:
        if text:
            self._pending.append(text)
        self._pending_tokens += tokens
        if (text and not self._text_sent) or time.perf_counter() - self._last_flush >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        """Hand on whatever is pending. Tokens that made no text yet (half a UTF-8 character) still count."""
        self._last_flush = time.perf_counter()
        if not self._pending and not self._pending_tokens:
            return
        text = "".join(self._pending)
        tokens = self._pending_tokens
        self._text_sent = self._text_sent or bool(text)
        self._pending.clear()
        self._pending_tokens = 0
        self._flush(text, tokens)
