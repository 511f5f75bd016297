"""An event sink for tests: a thread-safe queue plus bounded waits on the events we need."""

from __future__ import annotations

import queue
import time
from typing import Callable, TypeVar

from mlxchat.engine import Event, Finished, TextDelta

E = TypeVar("E", bound=Event)


class EventLog:
    def __init__(self) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.queue.put(event)

    def drain(self) -> list[Event]:
        while True:
            try:
                self.events.append(self.queue.get_nowait())
            except queue.Empty:
                return self.events

    def wait_for(self, kind: type[E], request_id: str | None = None, timeout_s: float = 60.0) -> E:
        """The first event of `kind` (for `request_id`), already seen or arriving within `timeout_s`."""
        return self.wait_until(
            lambda e: isinstance(e, kind) and (request_id is None or e.request_id == request_id),
            timeout_s,
            f"{kind.__name__} for {request_id}",
        )

    def wait_until(self, predicate: Callable[[Event], bool], timeout_s: float = 60.0, what: str = "event") -> Event:
        """The first event, already seen or arriving within `timeout_s`, for which `predicate` holds."""
        for event in self.drain():
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout_s}s; last events: {self.events[-5:]}")
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.events.append(event)
            if predicate(event):
                return event

    def first_text(self, request_id: str, timeout_s: float = 60.0) -> TextDelta:
        """The first TextDelta of `request_id` that carries text. A delta may carry only a token count (a token
        that decodes to nothing yet, flushed by time), so a test that needs words said must wait for this one."""
        return self.wait_until(
            lambda e: isinstance(e, TextDelta) and e.request_id == request_id and bool(e.text),
            timeout_s,
            f"text for {request_id}",
        )

    def finished(self, request_id: str, timeout_s: float = 60.0) -> Finished:
        return self.wait_for(Finished, request_id, timeout_s)

    def of(self, request_id: str) -> list[Event]:
        return [e for e in self.drain() if e.request_id == request_id]

    def terminal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.drain():
            if isinstance(event, Finished):
                counts[event.request_id] = counts.get(event.request_id, 0) + 1
        return counts
