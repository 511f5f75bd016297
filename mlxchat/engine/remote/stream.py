"""Provides the reading of one streamed chat completion on the owner thread, and the wording of transport
failures (refused, timed out, cut off) for the remote backend.

`StreamReader.segments` is the step iterator `streaming.decode` consumes, like the token iterators of the local
routes. It never raises into `decode`: a failure mid-stream is noted on the reader and ends the iteration, so the
text received so far survives into `Finished.text`. It reads the cancel flag at every stream event, keep-alive
comments included, so a cancel lands at the next thing the server sends.
"""

from __future__ import annotations

import time
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
    iter_sse,
    parse_chunk,
)
from ..streaming import THOUGHT, TurnClock


class StreamReader:
    """Reads one `/v1/chat/completions` stream. After `segments` ends, exactly one of these holds: `done` (the
    server sent `[DONE]`), `failure` (a message naming the endpoint), the request's cancel flag, or none of them
    (the stream ended early without an error: the caller reports it)."""

    def __init__(
        self, endpoint: Endpoint, control: RequestControl, timeouts: RemoteTimeouts, max_tokens: int | None = None
    ) -> None:
        self._endpoint = endpoint
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
        an end token."""
        idle_since = time.monotonic()
        try:
            for event in iter_sse(bounded_lines(response.iter_bytes())):
                if self._control.cancelled:
                    return
                # Only answer text, reasoning or the finish is progress: keep-alives and empty chunks (a role,
                # nothing else) keep the connection open without answering, and meet the idle timeout.
                if time.monotonic() - idle_since > self._timeouts.idle_s:
                    self.failure = (
                        f"{self._endpoint} sent no answer text for over {self._timeouts.idle_s:g} s, only "
                        "keep-alives (idle timeout); stopped waiting."
                    )
                    return
                if event.data is None:  # a keep-alive: a chance to see the cancel flag and the idle clock
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
