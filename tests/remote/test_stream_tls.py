"""Hanging up on a stream over https (review risk R3): a cancel during a server's silence ends the answer at once,
the reading thread meets nothing but an httpx transport error, and the engine's connection pool stays usable.

Over TLS the socket is an `ssl.SSLSocket`, whose own `shutdown` drops its TLS object before shutting the file
descriptor; a reader between `SSLSocket.read`'s None check and its `self._sslobj.read(...)` then raised
AttributeError inside httpcore instead of meeting EOF. `test_a_hang_up_mid_read_over_tls_is_a_transport_error`
holds the reading thread in exactly that place (a trace hook, since a race cannot be won on demand) and failed
before the fix.

The server is the scripted loopback server of `remote_fakes` behind a real TLS layer (a real server cannot be
made to stall on demand). The client is the engine's own httpx client, trusting the test certificate the way
the product trusts a private CA: httpx reads `SSL_CERT_FILE` when the client is built.

The certificate under `tls/` is test data, valid for 100 years, made once with:
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36525 -subj "/CN=localhost"
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:TRUE"
    -addext "keyUsage=critical,digitalSignature,keyCertSign" -addext "extendedKeyUsage=serverAuth"
    -keyout localhost-key.pem -out localhost-cert.pem
Its private key protects nothing but these tests.
"""

from __future__ import annotations

import linecache
import ssl
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from remote_fakes import DONE, FakeHandler, FakeServer, chunk, stream, usage_chunk
from remote_turns import ask, select

from mlxchat.engine import ChatRequest, Draining, Finished, Message, TextDelta
from mlxchat.engine.remote import stream as remote_stream

TLS_DIR = Path(__file__).parent / "tls"
CERT = TLS_DIR / "localhost-cert.pem"
KEY = TLS_DIR / "localhost-key.pem"
SILENCE_S = 20.0
"""How long the server stays silent at most: far longer than any test waits for it."""


class TlsFakeServer(FakeServer):
    """The scripted fake server, over https with the test certificate."""

    def start(self) -> "TlsFakeServer":
        server = self

        class Handler(FakeHandler):
            fake = server

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(CERT, KEY)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-tls-server", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return super().url.replace("http://", "https://", 1)


class TextThenSilence:
    """Sends `before`, then (once `nudge` is set) one keep-alive comment, and is otherwise silent until the
    client hangs up; writes to a hung-up client end the scenario quietly."""

    def __init__(self, *before: str) -> None:
        self.before = before
        self.nudge = threading.Event()
        self.hung_up = threading.Event()

    def __call__(self, handler: FakeHandler) -> None:
        try:
            handler.start_stream()
            handler.write(chunk(role="assistant") + "".join(chunk(piece) for piece in self.before))
            if self.nudge.wait(SILENCE_S):
                handler.write(": keep-alive\n\n")
            self.hung_up.wait(SILENCE_S)  # the silence is the scenario; the test ends it by hanging up
        except OSError:
            pass


@pytest.fixture
def tls_server(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))  # read by httpx when the engine builds its client
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server = TlsFakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def reader_met(monkeypatch) -> list[BaseException]:
    """Every exception the stream's reading thread meets (what `_EventPump._read` hands over, or would hand over
    once the owner has stopped reading)."""
    met: list[BaseException] = []
    hand_over = remote_stream._EventPump._hand_over

    def recording(self, item) -> bool:
        if isinstance(item, BaseException):
            met.append(item)
        return hand_over(self, item)

    monkeypatch.setattr(remote_stream._EventPump, "_hand_over", recording)
    return met


def said(event_log, request_id: str) -> str:
    return "".join(e.text for e in event_log.of(request_id) if isinstance(e, TextDelta))


def cancel_during_silence(engine, event_log, expected: str, before_cancel=lambda: None, after_cancel=lambda: None):
    """Ask, wait for `expected` on screen, run `before_cancel`, cancel, run `after_cancel`; the cancelled
    `Finished` and how long it took from the cancel."""
    request = ChatRequest((Message("user", "A story"),))
    assert engine.submit(request) is None
    event_log.wait_until(lambda e: said(event_log, request.request_id) == expected, timeout_s=10, what=expected)
    before_cancel()
    cancelled_at = time.monotonic()
    assert engine.cancel(request.request_id)
    after_cancel()
    finished = event_log.finished(request.request_id, timeout_s=10)
    return request, finished, time.monotonic() - cancelled_at


def assert_nothing_after_finished(event_log, request_id: str) -> None:
    kinds = [type(e).__name__ for e in event_log.of(request_id)]
    assert kinds.index(Draining.__name__) < kinds.index(Finished.__name__) == len(kinds) - 1, kinds


def test_a_normal_stream_over_tls_ends_with_done(tls_server, remote_engines, event_log, reader_met):
    tls_server.chat = stream("Hello", " over", " TLS", usage=(9, 3))
    engine = remote_engines(tls_server.url)
    select(engine, event_log, "model-b")
    finished = ask(engine, event_log, "Hi", timeout_s=10)
    assert (finished.reason, finished.text, finished.error) == ("stop", "Hello over TLS", None)
    assert reader_met == []


def test_a_cancel_during_a_silence_over_tls_lands_at_once_and_the_pool_stays_usable(
    tls_server, remote_engines, event_log, reader_met
):
    scenario = TextThenSilence("Once", " upon")
    tls_server.chat = scenario
    engine = remote_engines(tls_server.url)
    select(engine, event_log, "model-b")
    request, finished, took_s = cancel_during_silence(engine, event_log, "Once upon")
    scenario.hung_up.set()
    assert took_s < 1.0, f"the cancel took {took_s:.2f} s to land"
    assert (finished.reason, finished.text) == ("cancelled", "Once upon")
    assert all(isinstance(exc, httpx.TransportError) for exc in reader_met), reader_met

    tls_server.chat = stream("Again", usage=(9, 1))
    again = ask(engine, event_log, "Once more", timeout_s=10)  # the same engine, its same client and pool
    assert (again.reason, again.text, again.error) == ("stop", "Again", None)
    assert_nothing_after_finished(event_log, request.request_id)  # the second answer came after: nothing strayed


def test_a_hang_up_mid_read_over_tls_is_a_transport_error(tls_server, remote_engines, event_log, reader_met):
    """The reading thread is held inside `SSLSocket.read`, past its None check and before `self._sslobj.read`,
    until the cancel has hung up (from the cancelling thread; the owner thread hangs up again as it stops).
    Before the fix it then met `AttributeError: 'NoneType' object has no attribute 'read'`."""
    scenario = TextThenSilence("Once", " upon")
    tls_server.chat = scenario
    engine = remote_engines(tls_server.url)
    select(engine, event_log, "model-b")
    gate = ReadGate()

    def hold_the_next_read() -> None:
        gate.armed.set()
        scenario.nudge.set()  # the keep-alive wakes the reader, which comes back for more and is held
        assert gate.holding.wait(10), "the reading thread never came back to read"

    threading.settrace(gate.trace)
    try:
        request, finished, took_s = cancel_during_silence(
            engine, event_log, "Once upon", before_cancel=hold_the_next_read, after_cancel=gate.release.set
        )
    finally:
        threading.settrace(None)
        gate.release.set()
        scenario.hung_up.set()
    assert not gate.released_by_timeout
    assert (finished.reason, finished.text) == ("cancelled", "Once upon")
    assert took_s < 1.0, f"the cancel took {took_s:.2f} s to land"
    assert reader_met and all(isinstance(exc, httpx.TransportError) for exc in reader_met), reader_met

    tls_server.chat = stream("Again", usage=(9, 1))
    again = ask(engine, event_log, "Once more", timeout_s=10)
    assert (again.reason, again.text, again.error) == ("stop", "Again", None)
    assert_nothing_after_finished(event_log, request.request_id)


class ReadGate:
    """A trace hook for threads started after `threading.settrace(gate.trace)`: once `armed`, the stream's reading
    thread stops at `return self._sslobj.read(...)` in `ssl.SSLSocket.read` (past the None check) until
    `release` is set (the test sets it once `cancel` has returned: the cancel hangs up before it returns)."""

    HOLD_S = 5.0

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.released_by_timeout = False

    def trace(self, frame, event, arg):
        if frame.f_code is not ssl.SSLSocket.read.__code__:
            return None
        if threading.current_thread().name != "mlxchat-remote-read":
            return None
        return self._line

    def _line(self, frame, event, arg):
        if event != "line" or not self.armed.is_set() or self.holding.is_set():
            return self._line
        source = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if source.startswith("return self._sslobj.read("):
            self.holding.set()
            self.released_by_timeout = not self.release.wait(self.HOLD_S)
        return self._line
