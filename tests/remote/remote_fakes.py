"""A tiny OpenAI-compatible server on 127.0.0.1 (stdlib only) whose answers each test scripts.

It stands in for the cases a real server cannot be made to produce on demand: a busy engine, a stream cut off
mid-way, malformed SSE, a wrong key, a server gone silent. A scenario is a function that writes the whole
response for one chat request through the handler; the helpers below build the common ones.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Scenario = Callable[["FakeHandler"], None]


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None


@dataclass
class FakeServer:
    """Serves `/v1/models` from `models` (or `models_status` with no list) and answers chat with `chat`."""

    chat: Scenario = field(default_factory=lambda: stream("Hello", " world"))
    models: list[str] = field(default_factory=lambda: ["fake/model-a", "/srv/models/model-b"])
    models_status: int = 200
    model_extras: dict[str, dict] = field(default_factory=dict)
    """Model id → extra fields of its `/v1/models` entry (vLLM's `max_model_len`, llama.cpp's `meta`…)."""
    models_payload: object = None
    """When set, `/v1/models` answers exactly this (JSON, or bytes as they are): a hostile or broken list."""
    routes: dict[str, tuple[int, object] | Scenario] = field(default_factory=dict)
    """Other paths (as requested, e.g. "/props") → (status, JSON or bytes), or a scenario that writes the whole
    response: a server's side endpoints."""
    seen: list[SeenRequest] = field(default_factory=list)
    client_closed: threading.Event = field(default_factory=threading.Event)
    nudge: threading.Event = field(default_factory=threading.Event)
    """Set it to make a stalled stream send one keep-alive (the test decides when the server next speaks)."""
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> "FakeServer":
        server = self

        class Handler(FakeHandler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-openai-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chats(self) -> list[SeenRequest]:
        return [request for request in self.seen if request.path.endswith("/chat/completions")]


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeServer

    def log_message(self, format, *args) -> None:  # keep pytest's output clean
        pass

    def _record(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.fake.seen.append(SeenRequest(self.command, self.path, dict(self.headers.items()), body))
        return body

    def _route(self) -> None:
        route = self.fake.routes[self.path]
        if callable(route):
            self.close_connection = True
            return route(self)
        return self.send_json(*route)

    def do_GET(self) -> None:
        self._record()
        if self.path in self.fake.routes:
            return self._route()
        if self.path.endswith("/models") and self.fake.models_payload is not None:
            return self.send_json(200, self.fake.models_payload)
        if not self.path.endswith("/models"):
            return self.send_json(404, {"error": {"message": "Not Found", "type": "not_found"}})
        if self.fake.models_status != 200:
            return self.send_json(self.fake.models_status, {"error": {"message": "no model list here"}})
        entries = [{"id": m, "object": "model", **self.fake.model_extras.get(m, {})} for m in self.fake.models]
        self.send_json(200, {"object": "list", "data": entries})

    def do_POST(self) -> None:
        self._record()
        if self.path in self.fake.routes:
            return self._route()
        if not self.path.endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": "Not Found"}})
        try:
            self.fake.chat(self)
        except (BrokenPipeError, ConnectionResetError):
            self.fake.client_closed.set()
        self.close_connection = True

    # ---- building blocks for scenarios ----------------------------------------------------------------------

    def send_json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.command == "POST":  # the connection closes after a chat (see do_POST): say so, as servers do
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, chunked: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")  # the body ends when the connection does
        self.end_headers()
        self.chunked = chunked

    def write(self, text: str) -> None:
        data = text.encode()
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.wfile.write(data)
        self.wfile.flush()

    def end_stream(self) -> None:
        if self.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def cut(self) -> None:
        """Drop the connection at once, mid-body."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def wait_for_client_close(self, timeout_s: float, keepalive_s: float | None) -> None:
        """Block until the client closes the connection (sending `: keep-alive` comments meanwhile, if asked)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], keepalive_s or 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.fake.client_closed.set()
                return
            if keepalive_s or self.fake.nudge.is_set():
                self.fake.nudge.clear()
                self.write(": keep-alive\n\n")


def free_port() -> int:
    """A port nothing listens on right now (also how a test gets a "connection refused" address)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chunk(content: str | None = None, finish: str | None = None, **delta) -> str:
    if content is not None:
        delta["content"] = content
    payload = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n"


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> str:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return f"data: {json.dumps({'object': 'chat.completion', 'choices': [], 'usage': usage})}\n\n"


DONE = "data: [DONE]\n\n"


def stream(*pieces: str, finish: str = "stop", usage: tuple[int, int] | None = None, delay_s: float = 0.0) -> Scenario:
    """A well-formed stream: the pieces, a finish chunk, usage (if given), [DONE]."""

    def play(handler: FakeHandler) -> None:
        handler.start_stream()
        handler.write(chunk(role="assistant"))
        for piece in pieces:
            time.sleep(delay_s)
            handler.write(chunk(piece))
        handler.write(chunk(finish=finish))
        if usage:
            handler.write(usage_chunk(*usage))
        handler.write(DONE)
        handler.end_stream()

    return play


def raw_events(*events: str, chunked: bool = True, then: str = "end") -> Scenario:
    """Exactly `events` (already framed), then "end" (a proper end of body) or "cut" (the connection dropped)."""

    def play(handler: FakeHandler) -> None:
        handler.start_stream(chunked=chunked)
        for event in events:
            handler.write(event)
        handler.cut() if then == "cut" else handler.end_stream()

    return play


def error_response(status: int, payload, headers: dict[str, str] | None = None) -> Scenario:
    return lambda handler: handler.send_json(status, payload, headers)


def stall(*pieces: str, keepalive_s: float | None = 0.05, timeout_s: float = 20.0) -> Scenario:
    """Send the pieces, then nothing but keep-alives (or nothing at all) until the client hangs up."""

    def play(handler: FakeHandler) -> None:
        handler.start_stream()
        for piece in pieces:
            handler.write(chunk(piece))
        handler.wait_for_client_close(timeout_s, keepalive_s)

    return play


def silent_before_headers(timeout_s: float = 20.0) -> Scenario:
    """Accept the request and say nothing, not even a status line, until the client hangs up."""
    return lambda handler: handler.wait_for_client_close(timeout_s, keepalive_s=None)


def trickle(every_s: float = 0.05, timeout_s: float = 60.0) -> Scenario:
    """A 200 whose JSON body comes a space at a time and never ends, until `timeout_s` or the client hangs up:
    each read gets a byte well within any read timeout."""

    def play(handler: FakeHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "10000000")
        handler.end_headers()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(every_s)
        except OSError:
            handler.fake.client_closed.set()

    return play
