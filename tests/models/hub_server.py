"""A loopback HTTP server that speaks the part of the Hugging Face Hub's API that `huggingface_hub` calls.

Tests point `HF_ENDPOINT` at it, so the real library talks to it: `GET /api/models/{repo}/revision/{rev}`
(the listing, with sizes), `HEAD`/`GET /{repo}/resolve/{rev}/{file}` with `ETag`, `X-Repo-Commit`,
`Content-Length`, and `Range` for resuming. Errors use the Hub's own headers (`X-Error-Code: RepoNotFound` /
`GatedRepo`), because that is what the library reads to choose its exception.

Knobs a test can turn: a per-chunk delay (a slow line), dropping the connection once partway through a file,
and a token that gated or private repos require. Every request is recorded for assertions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    private: bool = False
    gated: bool = False
    commit: str = ""
    _etags: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.commit:
            listing = b"".join(name.encode() + hashlib.sha256(data).digest() for name, data in sorted(self.files.items()))
            self.commit = hashlib.sha1(listing).hexdigest()

    def etag(self, path: str) -> str:
        """The file's sha256, as the Hub's ETag for LFS files (computed once: benchmarks serve big files)."""
        if path not in self._etags:
            self._etags[path] = hashlib.sha256(self.files[path]).hexdigest()
        return self._etags[path]


@dataclass
class Recorded:
    method: str
    path: str
    range: str | None
    authorization: bool = False


@dataclass
class HubServer:
    """Start with `start()`, stop with `stop()`; `endpoint` is what HF_ENDPOINT should be."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    token: str = "hf_test_token"
    chunk_bytes: int = 64 * 1024
    chunk_delay_s: float = 0.0
    drop_once_at: dict[str, int] = field(default_factory=dict)
    """file name -> byte offset where the first GET of that file hangs up."""
    cdn: bool = False
    """Serve *.safetensors as the Hub serves LFS files: a 302 from /resolve/ to a signed URL on another host
    (`localhost` instead of `127.0.0.1`), with the file's ETag and size in X-Linked-Etag / X-Linked-Size."""
    requests: list[Recorded] = field(default_factory=list)

    def start(self) -> "HubServer":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def gets_of(self, file: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + file)]

    # -- request handling -------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(urlsplit(request.path).path)
        self.requests.append(
            Recorded("HEAD" if head else "GET", path, request.headers.get("Range"), "Authorization" in request.headers)
        )
        parts = path.strip("/").split("/")
        if parts[0] == "cdn" and len(parts) == 4:
            return self._cdn(request, "/".join(parts[1:3]), parts[3], head=head)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(parts[2:4])
            return self._model_info(request, repo_id)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, revision, file = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            return self._resolve(request, repo_id, revision, file, head=head)
        self._error(request, 404, "EntryNotFound")

    def _authorised(self, request: BaseHTTPRequestHandler) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _model_info(self, request: BaseHTTPRequestHandler, repo_id: str) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(request, 404, "RepoNotFound")
        if repo.private and not self._authorised(request):
            return self._error(request, 401, "RepoNotFound")  # the Hub hides private repos this way
        body = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": repo.commit,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "siblings": [
                {"rfilename": name, "size": len(data), "blobId": repo.etag(name)} for name, data in repo.files.items()
            ],
        }
        self._send(request, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, request: BaseHTTPRequestHandler, repo_id: str, revision: str, file: str, *, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(request, 404, "RepoNotFound")
        if (repo.private or repo.gated) and not self._authorised(request):
            return self._error(request, 403 if repo.gated else 401, "GatedRepo" if repo.gated else "RepoNotFound")
        if revision not in ("main", repo.commit):
            return self._error(request, 404, "RevisionNotFound")
        if file not in repo.files:
            return self._error(request, 404, "EntryNotFound")
        data = repo.files[file]
        if self.cdn and file.endswith(".safetensors"):
            port = self._server.server_address[1]
            location = f"http://localhost:{port}/cdn/{repo_id}/{repo.etag(file)}?signature=test"
            return self._send(
                request,
                302,
                b"",
                {
                    "Location": location,
                    "X-Linked-Etag": f'"{repo.etag(file)}"',
                    "X-Linked-Size": str(len(data)),
                    "X-Repo-Commit": repo.commit,
                },
            )
        headers = {"ETag": f'"{repo.etag(file)}"', "X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        start = 0
        byte_range = request.headers.get("Range")
        if byte_range and not head and byte_range.startswith("bytes="):
            start = int(byte_range.removeprefix("bytes=").split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if head:
            headers["Content-Length"] = str(len(data))
            request.send_response(200)
            for key, value in headers.items():
                request.send_header(key, value)
            request.end_headers()
            return
        drop_at = self.drop_once_at.pop(file, None)
        self._stream(request, 206 if start else 200, data[start:], headers, drop_after=drop_at)

    def _cdn(self, request: BaseHTTPRequestHandler, repo_id: str, etag: str, *, head: bool) -> None:
        """The CDN: signed URLs need no token, and a Hub token sent here would be a leak (tests check it is not)."""
        repo = self.repos.get(repo_id)
        name = next((n for n in (repo.files if repo else {}) if repo.etag(n) == etag), None)
        if name is None:
            return self._error(request, 404, "EntryNotFound")
        data, start = repo.files[name], 0
        headers = {"ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        byte_range = request.headers.get("Range")
        if byte_range and byte_range.startswith("bytes="):
            start = int(byte_range.removeprefix("bytes=").split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if head:
            return self._send(request, 200, b"", {**headers, "Content-Length": str(len(data))})
        self._stream(request, 206 if start else 200, data[start:], headers, drop_after=self.drop_once_at.pop(name, None))

    def _stream(self, request, status: int, body: bytes, headers: dict, *, drop_after: int | None) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        sent = 0
        try:
            while sent < len(body):
                end = min(sent + self.chunk_bytes, len(body))
                if drop_after is not None and end > drop_after:
                    request.wfile.write(body[sent:drop_after])
                    request.wfile.flush()
                    request.close_connection = True
                    request.connection.shutdown(2)
                    return
                request.wfile.write(body[sent:end])
                sent = end
                if self.chunk_delay_s:
                    time.sleep(self.chunk_delay_s)  # the slow line being simulated, not synchronisation
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True

    def _error(self, request: BaseHTTPRequestHandler, status: int, code: str) -> None:
        self._send(request, status, json.dumps({"error": code}).encode(), {"X-Error-Code": code})

    def _send(self, request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        if "Content-Length" not in headers:
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)


def main() -> None:
    """`python tests/models/hub_server.py REPO_ID SIZE_MB…`: serve one repo of random files until stdin closes.

    Benchmarks run the server in its own process, so the downloader measured does not share its interpreter.
    """
    import os
    import sys

    repo_id, sizes = sys.argv[1], [int(mb) for mb in sys.argv[2:]]
    files = {"config.json": b'{"model_type": "llama"}'}
    for index, megabytes in enumerate(sizes, start=1):
        files[f"model-{index:05d}-of-{len(sizes):05d}.safetensors"] = os.urandom(megabytes * 1_000_000)
    server = HubServer(repos={repo_id: FakeRepo(files)}, chunk_bytes=1 << 20).start()
    print(server.endpoint, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
