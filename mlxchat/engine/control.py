"""Provides the per-request control block shared by the caller's thread and the owner thread.

The caller only ever sets the cancel flag; the owner thread only reads it, between tokens and between prefill
chunks. `threading.Event.is_set()` is a plain attribute read, cheap enough for every token.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .events import Phase


@dataclass
class RequestControl:
    request_id: str
    kind: str
    phase: Phase
    started_at: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = "cancel"
    label: str | None = None
    """What a person knows the request as (a conversation's title, a model's name), for `Busy`."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def enter(self, phase: Phase) -> None:
        """Move to `phase`, unless a cancel already made this request draining (draining is final)."""
        with self._lock:
            if self.phase != "draining":
                self.phase = phase

    def request_cancel(self, reason: str) -> bool:
        """Mark draining and raise the flag. False if it was already cancelled."""
        with self._lock:
            if self.cancel.is_set():
                return False
            self.phase = "draining"
            self.cancel_reason = reason
            self.cancel.set()
            return True

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at


class CancelledByRequest(Exception):
    """Raised on the owner thread at a chunk boundary to unwind out of prefill."""
