"""Provides the reading of one streamed chat completion on the owner thread, and the wording of transport
failures (refused, timed out, cut off) for the remote backend.

`StreamReader.segments` is the step iterator `streaming.decode` consumes, like the token iterators of the local
routes. It never raises into `decode`: a failure mid-stream is noted on the reader and ends the iteration, so the
text received so far survives into `Finished.text`. It reads the cancel flag at every stream event, keep-alive
comments included, and at least once per batch interval while the server is silent.

Why a helper thread reads the socket: a read that blocks until the server speaks again cannot also notice that
the batch interval has passed, and text read just before a silence (a stall, a slow tool, a long think) would wait
in the batch until the stream goes on. A read timeout cannot help (httpx drops the connection when one fires), and
waiting on the socket cannot see what httpx has already buffered. So `_EventPump` reads and parses the stream on
its own thread, touching nothing else, and hands each server-sent event to the owner thread through a queue; the
owner thread waits on the queue with the batch interval as timeout and says `QUIET` to `decode` when it passes.
Every engine event is still emitted on the owner thread, in order, before the request's `Finished`.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from contextlib import closing
from typing import Iterator

import httpx

from ..control import RequestControl
from .request import Endpoint, RemoteTimeouts
from .sse import (
    DONE,
    MalformedStream,
    ServerError,
    ServerUsage,
    StreamTooLarge,
    bounded_lines,
    excerpt,
    SseEvent,
    iter_sse,
    parse_chunk,
)
from ..batching import BATCH_INTERVAL_S
from ..streaming import QUIET, THOUGHT, TurnClock

log = logging.getLogger(__name__)

PUMP_JOIN_S = 5.0
"""Longest wait for the reading thread after hanging up on it (shutting the socket down wakes it at once)."""
PUMP_QUEUE_EVENTS = 1024
"""Most events read ahead of the owner thread: a server flooding tiny events must not grow a backlog of objects
(the stream's byte bound alone would allow millions); when full, the reading thread waits, as one reader would."""
PUMP_PUT_WAIT_S = 0.05
"""How often a reading thread waiting for room in the queue looks whether the owner has stopped reading."""


class StreamReader:
    """Reads one `/v1/chat/completions` stream. After `segments` ends, exactly one of these holds: `done` (the
    server sent `[DONE]`), `failure` (a message naming the endpoint), the request's cancel flag, or none of them
    (the stream ended early without an error: the caller reports it)."""

    def __init__(
        self,
        endpoint: Endpoint,
        control: RequestControl,
        timeouts: RemoteTimeouts,
        max_tokens: int | None = None,
        quiet_after_s: float = BATCH_INTERVAL_S,
    ) -> None:
        self._endpoint = endpoint
        self._quiet_after_s = quiet_after_s
        self._control = control
        self._timeouts = timeouts
        self._max_tokens = max_tokens
        self.pieces = 0  # pieces of text or reasoning received; each is at least one token
        self.busy = False  # the failure is the server saying it is busy (see `Finished.busy`)
        self.done = False
        self.failure: str | None = None
        self.server_error: ServerError | None = None  # an in-band error frame, as the server worded it
        self.finish_reason: str | None = None
        self.usage: ServerUsage | None = None
        self.last_token_at: float | None = None  # when the last text or the finish reason came: decode ends

    def segments(self, response: httpx.Response) -> Iterator[tuple[str, int]]:
        """(text, 0) for each piece of answer text and (text, `THOUGHT`) for each piece of reasoning the server
        sends apart (`delta.reasoning` or `delta.reasoning_content`); the token id is unknown over HTTP and never
        an end token. `("", QUIET)` each time `quiet_after_s` passes with nothing from the server, and for each
        event that carries no text (a keep-alive, a role, usage), so a server that keeps the connection alive
        without answering is still seen to be silent."""
        try:
            with closing(_EventPump(response).events(self._quiet_after_s)) as events:
                yield from self._steps(events)
        except MalformedStream as exc:
            self.failure = f"{self._endpoint} sent a malformed stream event ({exc}); the answer is incomplete."
        except StreamTooLarge as exc:
            if exc.what == "line":
                self.failure = (
                    f"{self._endpoint} sent a stream line of over {exc.limit >> 20} MiB with no end; stopped "
                    "reading, and the answer so far is kept."
                )
            else:
                self.failure = (
                    f"{self._endpoint} sent over {exc.limit >> 20} MiB for one answer; stopped reading, and the "
                    "answer so far is kept."
                )
        except httpx.HTTPError as exc:
            if not self._control.cancelled:
                self.failure = transport_failure(self._endpoint, exc, self._timeouts, streaming=True)

    def _steps(self, events: Iterator[SseEvent | None]) -> Iterator[tuple[str, int]]:
        """`segments` from the stream's events (None: a batch interval of silence); parse errors propagate."""
        idle_since = time.monotonic()
        for event in events:
            if self._control.cancelled:
                return
            if event is None:  # nothing new for a batch interval: what waits in the batch goes out
                yield "", QUIET
                continue
            # Only answer text, reasoning or the finish is progress: keep-alives and empty chunks (a role,
            # nothing else) keep the connection open without answering, and meet the idle timeout.
            if time.monotonic() - idle_since > self._timeouts.idle_s:
                self.failure = (
                    f"{self._endpoint} sent no answer text for over {self._timeouts.idle_s:g} s, only "
                    "keep-alives (idle timeout); stopped waiting."
                )
                return
            if event.data is None:  # a keep-alive: a chance to see the cancel flag, the idle clock and a silence
                yield "", QUIET
                continue
            if event.data.strip() == DONE:
                self.done = True
                return
            update = parse_chunk(event.data)
            if update.error is not None:
                self.server_error = update.error
                self.failure = self._in_band_failure(update.error)
                return
            self.usage = update.usage or self.usage
            self.finish_reason = update.finish_reason or self.finish_reason
            if update.reasoning or update.content or update.finish_reason:
                self.last_token_at = time.perf_counter()
                idle_since = time.monotonic()
            if update.reasoning or update.content:
                self.pieces += 1
                if self._max_tokens is not None and self.pieces > self._max_tokens:
                    self.failure = (
                        f"{self._endpoint} kept sending past max_tokens ({self._max_tokens}); stopped reading "
                        "there, and the answer so far is kept."
                    )
                    return
            if update.reasoning:
                yield update.reasoning, THOUGHT
            if update.content:
                yield update.content, 0
            if not (update.reasoning or update.content):  # a role, usage, a finish: no text, the silence goes on
                yield "", QUIET

    def apply_usage(self, clock: TurnClock) -> None:
        """Put the server's token counts (when it sent them) in place of the ones counted from the stream.

        The thinking count follows: the server's own when it gives one, else the pieces of thinking counted from
        the stream, never more than the server's total (thinking and answer are counted apart, and the answer's
        share is the total less the thinking). A server's 0 is trusted only when no thinking came: one that parses
        no reasoning reports 0 while the model's `<think>` tags sit in its content."""
        if self.usage is None:
            return
        clock.prompt_tokens = self.usage.prompt_tokens
        clock.cached_tokens = min(self.usage.cached_tokens, self.usage.prompt_tokens)
        clock.generated = self.usage.completion_tokens
        reasoning = self.usage.reasoning_tokens
        if reasoning is not None and (reasoning > 0 or clock.reasoning_tokens == 0):
            clock.reasoning_tokens = reasoning
        clock.reasoning_tokens = min(clock.reasoning_tokens, clock.generated)

    def _in_band_failure(self, error: ServerError) -> str:
        label = error.code or error.type
        said = f" ({label})" if label else ""
        if error.busy:
            self.busy = True
            return (
                f"Server busy: {self._endpoint} refused the request{said}: “{error.message}”. "
                "Try again in a moment."
            )
        if not self.pieces:  # vllm-mlx streams its busy answer as a generic 500 frame before any text
            self.busy = True
            return (
                f"Server busy? {self._endpoint} reported an error before answering{said}: “{error.message}”. "
                "It may be busy with another request: try again in a moment."
            )
        return f"{self._endpoint} reported an error{said}: “{error.message}”."


class _EventPump:
    """Reads one response's server-sent events on a thread of its own and hands them to the owner thread.

    The thread only reads and parses: it emits nothing and touches no engine state. What it raises (a transport
    error, a malformed or oversized stream) reaches the owner thread in order, after the events before it. When the
    owner stops reading first ([DONE], a cancel, an error, max_tokens), it hangs up (shuts the socket down, which
    wakes the blocked read at once; not once the thread has read the response to its end) and waits for the
    thread before the response is closed: the response is never used by two threads at once (where httpx exposes
    no socket, the wait is `PUMP_JOIN_S` and that no longer holds; HTTP/1.1 always exposes one).
    """

    _END = object()

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._queue: queue.Queue = queue.Queue(PUMP_QUEUE_EVENTS)
        self._stopping = threading.Event()
        self._read_all = threading.Event()
        """Set when the thread has read the response to its end: httpx has then closed it, and a keep-alive
        connection may already be back in the pool, serving the next request; its socket is not ours to hang up."""
        self._thread = threading.Thread(target=self._read, name="mlxchat-remote-read", daemon=True)

    def events(self, quiet_after_s: float) -> Iterator[SseEvent | None]:
        """The events as they come, and None each time `quiet_after_s` passes without one."""
        self._thread.start()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=quiet_after_s)
                except queue.Empty:
                    yield None
                    continue
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop()

    def _read(self) -> None:
        try:
            for event in iter_sse(bounded_lines(self._response.iter_bytes())):
                if not self._hand_over(event):
                    return
            self._read_all.set()
        except Exception as exc:  # handed to the owner thread, which words it
            self._hand_over(exc)
        finally:
            self._hand_over(self._END)

    def _hand_over(self, item: object) -> bool:
        """Queue `item` once there is room; False when the owner has stopped reading."""
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=PUMP_PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def _stop(self) -> None:
        self._stopping.set()
        if not self._thread.is_alive():
            return
        live = None if self._read_all.is_set() else socket_of(self._response)
        if live is not None:
            hang_up(live)
        self._thread.join(PUMP_JOIN_S)
        if self._thread.is_alive():
            log.warning("the stream's reading thread is still in a read %.0f s after hanging up", PUMP_JOIN_S)


def socket_of(response: httpx.Response) -> socket.socket | None:
    """The TCP socket under an HTTP/1.1 response, where httpx exposes it."""
    stream = response.extensions.get("network_stream")
    try:
        live = stream.get_extra_info("socket") if stream is not None else None
    except Exception:
        return None
    return live if isinstance(live, socket.socket) else None


def hang_up(live: socket.socket) -> None:
    """Shut the connection's socket down from any thread, waking a read blocked on it (it then meets EOF and
    httpx raises its own transport error). Over TLS only the file descriptor is shut: `SSLSocket.shutdown` would
    first drop its TLS object (`self._sslobj = None`, CPython's Lib/ssl.py), and a reader between
    `SSLSocket.read`'s None check and its `self._sslobj.read(...)` would then raise AttributeError (or ValueError
    from `recv`), which httpcore does not turn into an httpx error."""
    try:
        socket.socket.shutdown(live, socket.SHUT_RDWR)  # the base class's: the fd, not the TLS layer
    except OSError:
        pass  # already closed


def transport_failure(
    endpoint: Endpoint, exc: httpx.HTTPError, timeouts: RemoteTimeouts, streaming: bool = False
) -> str:
    """A person's message for an httpx failure: what happened, where, and what it means for the answer."""
    reason = excerpt(str(exc)) or exc.__class__.__name__
    incomplete = "; the answer is incomplete" if streaming else ""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"No connection to {endpoint} within {timeouts.connect_s:g} s (connect timeout). Is it reachable?"
    if isinstance(exc, httpx.ConnectError):
        if "refused" in reason.lower():
            reason = "connection refused"
        return f"Cannot connect to {endpoint} ({reason}). Is the server running?"
    if isinstance(exc, httpx.ReadTimeout):
        return f"{endpoint} sent nothing for {timeouts.read_s:g} s (read timeout); stopped waiting{incomplete}."
    if isinstance(exc, httpx.WriteTimeout):
        return f"Sending the request to {endpoint} took over {timeouts.write_s:g} s (write timeout)."
    if isinstance(exc, httpx.TimeoutException):
        return f"Timed out talking to {endpoint} ({exc.__class__.__name__})."
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        if streaming:
            return f"The stream from {endpoint} was cut off before it finished ({reason}){incomplete}."
        return f"{endpoint} closed the connection without answering ({reason})."
    return f"Talking to {endpoint} failed ({exc.__class__.__name__}: {reason}){incomplete}."
