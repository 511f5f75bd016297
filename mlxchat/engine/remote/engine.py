"""Provides `RemoteEngine`: the engine contract over an OpenAI-compatible server (vllm-mlx, mlx_lm.server, vLLM).

It is an `EngineCore` backend like the local `Engine`, so the UI cannot tell them apart: the same requests, the
same events, one `Finished` per accepted request, busy refusal while a request runs, draining after a cancel.

- The owner thread does all the HTTP of requests: `LoadModel` checks `/v1/models` and selects a model, a
  `ChatRequest` streams `/v1/chat/completions` (SSE) through `streaming.decode`, the loop the local routes use,
  so text batching, stats and cancel behave identically. TTFT and tok/s are measured here, on the client; the
  server's token counts replace ours when it sends usage.
- Cancel only raises the request's flag (`EngineCore.cancel` emits `Draining` at once). The owner thread reads
  it between stream events (tokens and keep-alives), closes the response — which closes the connection, so the
  server stops generating — and only then reports `Finished(cancelled)`. The read timeout bounds the wait when
  the server goes silent.
- Every failure is a `Finished(error)` that names the endpoint and keeps the partial text: HTTP errors (the
  server's own message quoted), a busy server (HTTP 503, or vllm-mlx's in-band `text_generation_busy` frame),
  connection refused, timeouts, a stream cut off before `[DONE]`, malformed SSE. The engine stays usable.
- The API key is read from the named environment variable for each request and sent only as a header. It is
  never stored on the engine, never put in an event, a message or a log line, and httpx's own exceptions (whose
  request carries the header) are never chained into ours.

This module never imports MLX.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable

import httpx

from ..control import RequestControl
from ..core import EngineCore, Sink
from ..errors import RequestError
from ..events import (
    Finished,
    FinishReason,
    ModelInfo,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    Started,
    Usage,
)
from .request import Endpoint, RemoteTimeouts, chat_body, redact
from .sse import MalformedStream, parse_model_list, server_error_from_body
from .stream import StreamReader, transport_failure
from ..requests import ChatRequest, LoadModel, Request
from ..streaming import TurnClock, decode
from ..thinking import TAGGED_THINKING, ThinkingSplitter

__all__ = ["RemoteEngine", "RemoteError", "RemoteModel", "RemoteTimeouts", "remote_engine_factory"]

log = logging.getLogger(__name__)

ERROR_BODY_LIMIT = 64 * 1024
"""Most bytes of an error response read to find the server's message."""

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


class RemoteError(Exception):
    """A failure of the remote server or the way to it, already worded for a person (it names the endpoint).

    `unlisted` marks a server that answers but does not list its models (no `/v1/models`, or a broken one).
    """

    def __init__(self, message: str, *, unlisted: bool = False) -> None:
        super().__init__(message)
        self.unlisted = unlisted


@dataclass(frozen=True)
class RemoteModel:
    """A model the server offers. `id` is what requests send; `name` is shorter where the id is a path."""

    id: str
    name: str
    owned_by: str | None = None

    @classmethod
    def from_id(cls, model_id: str, owned_by: str | None = None) -> "RemoteModel":
        path_like = model_id.startswith(("/", "~", ".")) or "\\" in model_id
        name = model_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if path_like else model_id
        return cls(model_id, name or model_id, owned_by)


class RemoteEngine(EngineCore):
    """The engine over an OpenAI-compatible HTTP server. See the module docstring for the contract.

    `model` is used when a `LoadModel` names none; with neither, the server's first listed model is selected
    (or, when the server lists none, requests name no model and the server uses its default).
    `api_key_env` names the environment variable that holds the API key; None sends no key.
    Raises `ValueError` for an endpoint URL that cannot be used.
    """

    def __init__(
        self,
        sink: Sink,
        endpoint: str,
        api_key_env: str | None = None,
        model: str | None = None,
        *,
        timeouts: RemoteTimeouts | None = None,
        name: str = "mlxchat-remote-engine",
    ) -> None:
        super().__init__(sink, name=name)
        self.endpoint = Endpoint.parse(endpoint)
        self.api_key_env = api_key_env or None
        self.default_model = model
        self.timeouts = timeouts or RemoteTimeouts()
        # Owner-thread state; never touched from other threads.
        self._client: httpx.Client | None = None
        self._selected: RemoteModel | None = None
        # The socket of the stream being read; `_interrupt` shuts it down from the caller's thread.
        self._live_socket: socket.socket | None = None

    def __repr__(self) -> str:
        return f"RemoteEngine({self.endpoint.display!r}, api_key_env={self.api_key_env!r})"

    # ---- any thread -----------------------------------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        """The models the server lists, for a model picker. Blocks up to `timeouts.models_s`; call it from a
        worker, not the UI's event loop. Uses its own connection, so it is safe while a request streams.
        Raises `RemoteError` (a readable message naming the endpoint)."""
        with self._new_client() as client:
            try:
                return self._fetch_models(client)
            except RemoteError as exc:
                raise RemoteError(self._redact(str(exc)), unlisted=exc.unlisted) from None

    # ---- owner thread ---------------------------------------------------------------------------------------

    def _on_start(self) -> None:
        self._client = self._new_client()

    def _shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _new_client(self) -> httpx.Client:
        t = self.timeouts
        timeout = httpx.Timeout(connect=t.connect_s, read=t.read_s, write=t.write_s, pool=t.connect_s)
        return httpx.Client(timeout=timeout, headers={"User-Agent": "mlxchat"}, follow_redirects=False)

    def _handle(self, request: Request, control: RequestControl) -> Finished:
        if isinstance(request, ChatRequest):
            return self._chat(request, control)
        if isinstance(request, LoadModel):
            return self._load(request, control)
        self._selected = None
        self._model_info = None
        self._emit(ModelUnloaded(request.request_id))
        return Finished(request.request_id, "stop")

    def _load(self, request: LoadModel, control: RequestControl) -> Finished:
        rid = request.request_id
        wanted = request.model or self.default_model
        label = wanted or f"the default model of {self.endpoint}"
        still_loaded = self._selected.name if self._selected is not None else None
        self._emit(ModelLoading(rid, label, f"Asking {self.endpoint} for its models"))
        started = time.perf_counter()
        try:
            chosen = self._choose(wanted)
        except (RemoteError, RequestError) as exc:
            message = self._redact(str(exc))
            self._emit(ModelLoadFailed(rid, label, message, still_loaded))
            return Finished(rid, "error", error=message)
        if control.cancelled:
            return Finished(rid, "cancelled")
        self._selected = chosen
        info = ModelInfo(chosen.name, chosen.id, "remote", "", 0, 0, endpoint=self.endpoint.display)
        self._model_info = info
        self._emit(ModelLoaded(rid, info, time.perf_counter() - started))
        return Finished(rid, "stop")

    def _choose(self, wanted: str | None) -> RemoteModel:
        """The model `wanted` names among those the server lists (any model when it lists none)."""
        try:
            models = self._fetch_models(self._client)
        except RemoteError as exc:
            if not exc.unlisted:
                raise
            log.info("%s; using %s unchecked", self._redact(str(exc)), wanted or "the server's default model")
            return RemoteModel.from_id(wanted) if wanted else RemoteModel("", "server default")
        if not models:
            return RemoteModel.from_id(wanted) if wanted else RemoteModel("", "server default")
        if wanted is None:
            return models[0]
        expanded = os.path.expanduser(wanted)
        for model in models:
            if wanted in (model.id, model.name) or expanded == model.id:
                return model
        names = ", ".join(model.id for model in models[:10]) + (" …" if len(models) > 10 else "")
        raise RemoteError(f"{self.endpoint} does not serve {wanted!r}. It serves: {names}.")

    def _fetch_models(self, client: httpx.Client) -> list[RemoteModel]:
        url = self.endpoint.url("/models")
        try:
            response = client.get(url, headers=self._auth_headers(), timeout=self.timeouts.models_s)
        except httpx.HTTPError as exc:
            raise RemoteError(transport_failure(self.endpoint, exc, self.timeouts)) from None
        if response.status_code in (404, 405, 501):
            raise RemoteError(f"{self.endpoint} does not list its models (HTTP {response.status_code})", unlisted=True)
        if response.status_code != 200:
            raise RemoteError(self._http_failure(response, "/models")[0])
        try:
            listed = parse_model_list(response.content)
        except MalformedStream as exc:
            raise RemoteError(f"{self.endpoint} sent an unusable model list ({exc})", unlisted=True) from None
        return [RemoteModel.from_id(model_id, owner) for model_id, owner in listed]

    def _chat(self, request: ChatRequest, control: RequestControl) -> Finished:
        selected = self._selected
        if selected is None:
            raise RequestError(f"No model is selected on {self.endpoint}. Choose one with --model, or in the conversation settings (F3).")
        headers = self._auth_headers()
        body = chat_body(request, selected.id or None)
        rid = request.request_id
        clock = TurnClock(time.perf_counter(), 0, 0, 0)
        self._emit(Started(rid, 0, 0, "vision" if request.has_images else "text"))
        reader = StreamReader(self.endpoint, control, self.timeouts, request.sampling.max_tokens)
        text, reasoning, failure, busy = "", "", None, False
        url = self.endpoint.url("/chat/completions")
        try:
            with self._client.stream("POST", url, json=body, headers=headers) as response:
                self._live_socket = _socket_of(response)
                if control.cancelled:  # cancelled while the request was being sent
                    self._interrupt(control)
                content_type = response.headers.get("Content-Type", "")
                if response.status_code != 200:
                    failure, busy = self._http_failure(response, "/chat/completions")
                elif "application/json" in content_type:  # the whole answer at once: the server ignored "stream"
                    failure = f"{self.endpoint} answered without streaming ({content_type}); it needs to stream."
                else:
                    _, text, _, reasoning = decode(
                        reader.segments(response),
                        request=request,
                        control=control,
                        clock=clock,
                        emit=self._emit,
                        eos_token_ids=(),
                        on_first_token=lambda: control.enter("generating"),
                        stop_at_max_tokens=False,
                        # Reasoning the server sends apart is thinking as it is; `<think>` tags it leaves in the
                        # answer text are split off here, as the local engine splits a model's own.
                        thinking=ThinkingSplitter(TAGGED_THINKING, trim_start=False),
                    )
        except httpx.HTTPError as exc:  # before the stream began: connect, send, or waiting for the status line
            failure = None if control.cancelled else transport_failure(self.endpoint, exc, self.timeouts)
        finally:
            self._live_socket = None
        reader.apply_usage(clock)
        stats = clock.stats(rid, reader.last_token_at)
        self._emit(stats)
        usage = Usage(clock.prompt_tokens, clock.cached_tokens, clock.generated, clock.reasoning_tokens)
        failure = failure or reader.failure
        if control.cancelled and not (reader.done and failure is None):  # a cancel after [DONE] came too late
            return Finished(rid, "cancelled", text, usage, stats=stats, reasoning=reasoning)
        if failure is None and not reader.done:
            failure = f"The stream from {self.endpoint} ended before it finished (no [DONE]); the answer is incomplete."
        if failure is not None:
            busy = busy or (failure == reader.failure and reader.busy)
            error = self._redact(failure)
            return Finished(rid, "error", text, usage, error=error, stats=stats, reasoning=reasoning, busy=busy)
        reason = _FINISH_REASONS.get(reader.finish_reason or "stop", "stop")
        return Finished(rid, reason, text, usage, stats=stats, reasoning=reasoning)

    def _interrupt(self, control: RequestControl) -> None:
        """Hang up now, from the caller's thread: shutting the socket down wakes the owner thread's blocked read at
        once (a server that sends nothing while it prefills would otherwise hold the drain until the read
        timeout). The owner thread then leaves the stream and closes the connection as usual."""
        live = self._live_socket
        if live is None:
            return
        try:
            live.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def _auth_headers(self) -> dict[str, str]:
        if self.api_key_env is None:
            return {}
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise RequestError(
                f"The environment variable {self.api_key_env} is not set; it should hold the API key for "
                f"{self.endpoint} (named with --api-key-env)."
            )
        return {"Authorization": f"Bearer {key}"}

    def _redact(self, message: str) -> str:
        """`message` without the API key or the URL's password, should a server have quoted one back."""
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        return redact(message, (key, *self.endpoint.credentials))

    def _http_failure(self, response: httpx.Response, path: str) -> tuple[str, bool]:
        """A person's message for an HTTP error status, quoting what the server said, and whether it is the
        server saying it is busy."""
        body = _read_bounded(response)
        said = server_error_from_body(body)
        status = response.status_code
        phrase = f"HTTP {status} {response.reason_phrase}".rstrip()
        quoted = f": “{said.message}”" if said is not None else ""
        if status in (429, 503) or (said is not None and said.busy):
            retry = response.headers.get("Retry-After", "").strip()
            when = f"in {retry} s" if retry.isdigit() else "in a moment"
            return f"Server busy: {self.endpoint} answered {phrase}{quoted}. Try again {when}.", True
        if status in (401, 403):
            if self.api_key_env:
                hint = f"Check the API key in ${self.api_key_env}."
            else:
                hint = "It needs an API key: put it in an environment variable and name it with --api-key-env."
            return f"{self.endpoint} refused the request ({phrase}){quoted}. {hint}", False
        if status == 404:
            return f"{self.endpoint} answered {phrase} for {path}{quoted}. Check the endpoint URL and the model name.", False
        return f"{self.endpoint} answered {phrase} for {path}{quoted}.", False


def _socket_of(response: httpx.Response) -> socket.socket | None:
    """The TCP socket under an HTTP/1.1 response, where httpx exposes it."""
    stream = response.extensions.get("network_stream")
    try:
        live = stream.get_extra_info("socket") if stream is not None else None
    except Exception:
        return None
    return live if isinstance(live, socket.socket) else None


def _read_bounded(response: httpx.Response) -> bytes:
    """At most `ERROR_BODY_LIMIT` bytes of an error response's body; a failure to read gives what came."""
    body = bytearray()
    try:
        for piece in response.iter_bytes():
            body += piece
            if len(body) >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    return bytes(body[:ERROR_BODY_LIMIT])


def remote_engine_factory(
    endpoint: str, api_key_env: str | None = None, model: str | None = None, **options
) -> Callable[[Sink], RemoteEngine]:
    """An engine factory (`sink → engine`) for an app that takes one, as `make_app(engine_factory=…)` does.

    The endpoint is checked now, so a bad URL fails before any window opens.
    """
    Endpoint.parse(endpoint)
    return functools.partial(RemoteEngine, endpoint=endpoint, api_key_env=api_key_env, model=model, **options)

