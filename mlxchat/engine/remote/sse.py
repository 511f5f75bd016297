"""Provides the wire format of OpenAI-compatible servers, read without any I/O: server-sent events, the chunks
of a streamed chat completion, error envelopes and the model list.

Kept apart from the HTTP code so every malformed or surprising input can be tested from strings. Servers differ
in small ways this module absorbs:

- an error body is `{"error": {"message", "type", "code"}}` (OpenAI, vLLM, vllm-mlx), `{"error": "text"}`
  (mlx_lm.server), `{"detail": …}` (FastAPI) or plain text;
- a stream may carry an in-band error frame, `data: {"error": {…}}`, after its status line said 200: vllm-mlx
  answers a busy engine that way on streaming requests (`text_generation_busy`), instead of an HTTP 503;
- reasoning arrives as `delta.reasoning` (mlx_lm.server, newer vLLM) or `delta.reasoning_content` (older vLLM);
- usage arrives in a last chunk whose `choices` is empty, when `stream_options.include_usage` was asked for.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

DONE = "[DONE]"
MESSAGE_LIMIT = 300
"""Longest server message quoted in an error: a server may put a whole traceback in its error body."""

BUSY_CODES = frozenset({"text_generation_busy", "overloaded_error", "server_busy"})
"""Error codes (or types) with which servers say "busy, retry shortly" rather than "broken"."""


class MalformedStream(ValueError):
    """The server sent something that is not a chat-completion stream. The message quotes a short excerpt."""


MAX_LINE_CHARS = 1 << 20
"""Longest line of a stream: a chunk is a few hundred bytes, so a line this long is a server gone wrong, and
reading on would hold all of it in memory (an endless line once grew the process by gigabytes)."""
MAX_STREAM_BYTES = 64 << 20
"""Most bytes read for one answer: far beyond any real answer, and a bound on a server that never ends."""


class StreamTooLarge(Exception):
    """The stream broke `MAX_LINE_CHARS` or `MAX_STREAM_BYTES`; `what` is "line" or "stream"."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} over {limit} {'characters' if what == 'line' else 'bytes'}")
        self.what, self.limit = what, limit


def bounded_lines(chunks: Iterable[bytes], max_line_chars: int | None = None, max_total_bytes: int | None = None) -> Iterator[str]:
    """Text lines (without their CR, LF or CRLF) from a stream's raw byte chunks, never holding more than
    `max_line_chars` of one line or reading more than `max_total_bytes` in all: raises `StreamTooLarge`
    instead. Undecodable bytes become U+FFFD (the JSON parser then names the chunk)."""
    max_line_chars = MAX_LINE_CHARS if max_line_chars is None else max_line_chars
    max_total_bytes = MAX_STREAM_BYTES if max_total_bytes is None else max_total_bytes
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending, total, after_cr = "", 0, False
    for chunk in chunks:
        total += len(chunk)
        if total > max_total_bytes:
            raise StreamTooLarge("stream", max_total_bytes)
        text = decoder.decode(chunk)
        if after_cr and text.startswith("\n"):  # the LF of a CRLF split between two chunks
            text, after_cr = text[1:], False
        if text:
            after_cr = text.endswith("\r")
        *lines, pending = _LINE_BREAK.split(pending + text)
        yield from lines
        if len(pending) > max_line_chars:
            raise StreamTooLarge("line", max_line_chars)
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


_LINE_BREAK = re.compile("\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event. `data` is None for a comment line (a keep-alive such as `: ping`)."""

    data: str | None
    event: str = "message"


@dataclass(frozen=True)
class ServerError:
    """What a server said went wrong, from an error body or an in-band error frame."""

    message: str
    code: str | None = None
    type: str | None = None

    @property
    def busy(self) -> bool:
        return bool({self.code, self.type} & BUSY_CODES)


@dataclass(frozen=True)
class ServerUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int | None = None
    """Of `completion_tokens`, those spent thinking (`completion_tokens_details.reasoning_tokens`: OpenAI, vLLM,
    DeepSeek); None when the server does not say."""


@dataclass(frozen=True)
class ChunkUpdate:
    """What one `data:` payload of a chat-completion stream adds."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: ServerUsage | None = None
    error: ServerError | None = None


def iter_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Server-sent events from text lines (line endings already removed), per the WHATWG rules.

    Comment lines are yielded as `SseEvent(None)` the moment they arrive, so a reader can act between
    keep-alives (check a cancel flag). An event still open when the lines end is dispatched: some servers close
    the connection right after `data: [DONE]` without the blank line.
    """
    data: list[str] = []
    event = "message"
    for line in lines:
        if not line:
            if data:
                yield SseEvent("\n".join(data), event)
            data, event = [], "message"
            continue
        if line.startswith(":"):
            yield SseEvent(None)
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value or "message"
        # "id" and "retry" mean nothing to a chat stream; unknown fields are ignored, as the rules say
    if data:
        yield SseEvent("\n".join(data), event)


def parse_chunk(data: str) -> ChunkUpdate:
    """Read one `data:` payload (not `[DONE]`). Raises `MalformedStream` when it is not a completion chunk."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to decode (`json` recurses)
        raise MalformedStream(f"not JSON: {excerpt(data)}") from None
    if not isinstance(payload, dict):
        raise MalformedStream(f"not a JSON object: {excerpt(data)}")
    if "error" in payload:
        return ChunkUpdate(error=server_error_from(payload) or ServerError(excerpt(data)))
    usage = _usage(payload.get("usage"))
    choices = payload.get("choices")
    if choices is None:  # a usage-only chunk, or one this reader has no use for
        return ChunkUpdate(usage=usage)
    if not isinstance(choices, list):
        raise MalformedStream(f"no choices in the chunk: {excerpt(data)}")
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
    if choice is None:
        return ChunkUpdate(usage=usage)
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise MalformedStream(f"delta is not an object: {excerpt(data)}")
    content = delta.get("content") or ""
    reasoning = delta.get("reasoning") or delta.get("reasoning_content") or ""
    finish = choice.get("finish_reason")
    if not isinstance(content, str) or not isinstance(reasoning, str) or not isinstance(finish, (str, type(None))):
        raise MalformedStream(f"unexpected types in the chunk: {excerpt(data)}")
    return ChunkUpdate(content, reasoning, finish, usage)


def _usage(value: Any) -> ServerUsage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = value.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    details = value.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return ServerUsage(
        prompt,
        completion,
        cached if isinstance(cached, int) and cached >= 0 else 0,
        reasoning if isinstance(reasoning, int) and not isinstance(reasoning, bool) and reasoning >= 0 else None,
    )


def server_error_from(payload: Any) -> ServerError | None:
    """The error in a decoded JSON body, whichever of the common shapes it has, or None."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)
        code, kind = error.get("code"), error.get("type")
        return ServerError(
            excerpt(str(message)),
            str(code) if code is not None else None,
            str(kind) if kind is not None else None,
        )
    if isinstance(error, str) and error.strip():
        return ServerError(excerpt(error))
    detail = payload.get("detail")
    if detail:
        return ServerError(excerpt(detail if isinstance(detail, str) else json.dumps(detail)))
    message = payload.get("message")
    if isinstance(message, str) and message.strip():
        return ServerError(excerpt(message))
    return None


def server_error_from_body(body: bytes) -> ServerError | None:
    """The error an HTTP error response's body states (JSON or plain text), or None when it is empty."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return ServerError(excerpt(text))
    return server_error_from(payload) or ServerError(excerpt(text))


def parse_model_list(body: bytes) -> list[tuple[str, str | None]]:
    """(id, owned_by) of each model in a `/v1/models` body. Raises `MalformedStream` when it is not one."""
    try:
        payload = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        raise MalformedStream(f"the model list is not JSON: {excerpt(body.decode('utf-8', 'replace'))}") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise MalformedStream("the model list has no 'data' array")
    models = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            owner = item.get("owned_by")
            models.append((item["id"], owner if isinstance(owner, str) else None))
    return models


def excerpt(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
