"""A cancel can race a stream read to its end: the reading thread has finished, httpx has put the keep-alive
connection back in its pool, and the engine's `_interrupt` still holds that socket and hangs up on it (review of
80fb8d5). The next request must not fail on that connection: httpcore sees a pooled connection that has become
readable (EOF) as closed by the server and opens a new one. Over plain http and over TLS (the base-class shutdown
of `stream.hang_up`), on loopback servers that keep connections alive."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from mlxchat.engine.remote.stream import hang_up, socket_of

TLS_DIR = Path(__file__).parent / "tls"
CERT, KEY = TLS_DIR / "localhost-cert.pem", TLS_DIR / "localhost-key.pem"
BODY = b"data: hi\n\ndata: [DONE]\n\n"


@pytest.fixture(params=["http", "https"])
def server(request):
    """A keep-alive server answering every GET with a short event stream; `peers` records each connection."""
    peers: list[tuple[str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            peers.append(self.client_address)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if request.param == "https":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(CERT, KEY)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    url = f"{request.param}://127.0.0.1:{httpd.server_address[1]}/"
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(CERT)) if request.param == "https" else True)
    yield client, url, peers
    client.close()
    httpd.shutdown()
    httpd.server_close()


def test_a_late_hang_up_of_a_pooled_connection_costs_a_connection_not_a_request(server):
    client, url, peers = server
    with client.stream("GET", url) as response:
        live = socket_of(response)
        assert live is not None
        assert b"".join(response.iter_bytes()) == BODY  # read to its end: the connection is back in the pool
        hang_up(live)  # a cancel that came just too late
    answers = [client.get(url) for _ in range(3)]
    assert [(a.status_code, a.content) for a in answers] == [(200, BODY)] * 3
    assert len(set(peers)) == 2  # one new connection, then kept alive
