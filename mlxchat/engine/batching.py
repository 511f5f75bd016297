"""Provides time-based batching of streamed text.

A fast model can produce hundreds of tokens a second; a UI repaints well at ~30 Hz. The owner thread collects
text here and hands it on at most once per interval, so the consumer's work grows with time, not with tokens.
"""

from __future__ import annotations

import time
from typing import Callable

BATCH_INTERVAL_S = 0.03
"""How often streamed text goes out at most: ~30 events a second, what a terminal repaints well."""


class TextBatcher:
    """Collects text and flushes it when `interval_s` has passed since the last flush.

    The first text goes out at once: the time to the first visible token is what a person notices most (a remote
    server with a cached prompt answers well within one interval); batching starts after it.

    Text added is held until the next `add` after the interval, so a producer that can go quiet (a server that
    stalls) must call `flush_if_due` while it waits: else the last piece before the silence stays unseen.
    """

    def __init__(self, flush: Callable[[str, int], None], interval_s: float = BATCH_INTERVAL_S) -> None:
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

    def flush_if_due(self) -> None:
        """Hand on what is pending if the interval has passed since the last flush; for a producer that found
        nothing new (the rate cap holds: it flushes no sooner than `add` would have)."""
        if (self._pending or self._pending_tokens) and time.perf_counter() - self._last_flush >= self._interval_s:
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
