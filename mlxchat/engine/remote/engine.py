"""Provides `RemoteEngine`: the engine contract over an OpenAI-compatible server (vllm-mlx, mlx_lm.server, vLLM).

It is an `EngineCore` backend like the local `Engine`, so the UI cannot tell them apart: the same requests, the
same events, one `Finished` per accepted request, busy refusal while a request runs, draining after a cancel.

- The owner thread does all the HTTP of requests: `LoadModel` checks `/v1/models` and selects a model, a
  `ChatRequest` streams `/v1/chat/completions` (SSE) through `streaming.decode`, the loop the local routes use,
  so text batching, stats and cancel behave identically. TTFT and tok/s are measured here, on the client; the
  server's token counts replace ours when it sends usage. Only the reading of the answer's bytes happens on a
  helper thread (`stream._EventPump`), so that a silent server cannot hold back text already read: the owner
  thread waits for its events with the batch interval as timeout and emits every event itself.
- Cancel raises the request's flag (`EngineCore.cancel` emits `Draining` at once) and hangs up on the stream.
  The owner thread reads the flag between stream events (tokens and keep-alives) and at least once per batch
  interval while the server is silent, closes the response — which closes the connection, so the server stops
  generating — and only then reports `Finished(cancelled)`.
- Every failure is a `Finished(error)` that names the endpoint and keeps the partial text: HTTP errors (the
  server's own message quoted), a busy server (HTTP 503, or vllm-mlx's in-band `text_generation_busy` frame),
  connection refused, timeouts, a stream cut off before `[DONE]`, malformed SSE. The engine stays usable.
- The conversation's overflow policy applies as on a local model (see `RemoteEngine`): the context size from
  config.toml or the server (`context_size`, asked once per model as it is selected), token counts estimated
  from characters (`token_estimate`), the shared rule (`prompt_fit`), and a `ContextWindow` after `Started`.
  A server's own "prompt too long" for a prompt that fits by its count (vLLM counts max_tokens in) is one retry
  with max_tokens capped by that count; else the typed refusal under "stop", else one retry with a tighter fit.
  Before that, max_tokens is capped by the estimate only once it is calibrated (the first errs long).
- A side endpoint asked for the context size gets `PROBE_TIMEOUT_S` in all, and a cancel hangs up on it.
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
from typing import Callable, Mapping

import httpx

from ..context_window import ContextOverflow, Window, answer_room, describe_overflow
from ..control import RequestControl
from ..core import EngineCore, Sink
from ..errors import OverflowRefused, RequestError
from ..events import (
    ContextWindow,
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
from .context_size import PROBE_TIMEOUT_S, ListedContext, ModelContexts, ServerOverflow, listed_contexts, server_overflow
from .request import Endpoint, RemoteTimeouts, chat_body, redact
from .sse import MalformedStream, parse_model_list, server_error_from_body
from .stream import StreamReader, hang_up, socket_of, transport_failure
from .token_estimate import TokenEstimate
from ..prompt_fit import fit_messages
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
    listed_context: ListedContext | None = None
    """What the server's model list says of the context size (see `context_size.listed_contexts`)."""

    @classmethod
    def from_id(cls, model_id: str, owned_by: str | None = None, listed: ListedContext | None = None) -> "RemoteModel":
        path_like = model_id.startswith(("/", "~", ".")) or "\\" in model_id
        name = model_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if path_like else model_id
        return cls(model_id, name or model_id, owned_by, listed)


class _ServerOverflowed(Exception):
    """The server refused the prompt as longer than its context (raised inside `_stream`, handled in `_chat`).
    `max_tokens` is what the refused request asked for the answer."""

    def __init__(self, overflow: ServerOverflow, max_tokens: int) -> None:
        super().__init__(overflow.message)
        self.overflow = overflow
        self.max_tokens = max_tokens


class RemoteEngine(EngineCore):
    """The engine over an OpenAI-compatible HTTP server. See the module docstring for the contract.

    `model` is used when a `LoadModel` names none; with neither, the server's first listed model is selected
    (or, when the server lists none, requests name no model and the server uses its default).
    `api_key_env` names the environment variable that holds the API key; None sends no key.
    `context_sizes` maps a model id (or "*", any model) to its context size, from `config.toml`; it wins over
    what the server says. Raises `ValueError` for an endpoint URL that cannot be used.

    The overflow policy applies as on a local model (`prompt_fit.fit_messages`, the same rule), with token
    counts estimated from characters (`token_estimate`: the server gives no tokenizer) against the context size
    the config gives or the server tells (`context_size`). Without a size, everything is sent; a server that
    refuses the prompt as too long gets the same outcome as a local model would give: the typed refusal under
    "stop", and otherwise one retry with a tighter fit.
    """

    def __init__(
        self,
        sink: Sink,
        endpoint: str,
        api_key_env: str | None = None,
        model: str | None = None,
        *,
        timeouts: RemoteTimeouts | None = None,
        context_sizes: Mapping[str, int] | None = None,
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
        self._contexts = ModelContexts(context_sizes)
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
        probe = functools.partial(self._probe, control)
        context = self._contexts.size(chosen.id, chosen.name, chosen.listed_context, probe)
        if control.cancelled:
            self._contexts.forget_discovery(chosen.id)  # cut short: what the probes found is not the answer
            return Finished(rid, "cancelled")
        self._selected = chosen
        info = ModelInfo(chosen.name, chosen.id, "remote", "", 0, context or 0, endpoint=self.endpoint.display)
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
        contexts = listed_contexts(response.content)
        return [RemoteModel.from_id(model_id, owner, contexts.get(model_id)) for model_id, owner in listed]

    def _probe(self, control: RequestControl, method: str, path: str, payload: dict | None) -> bytes | None:
        """One short request to a side endpoint under the server's root (the API root less "/v1"); any failure,
        and a cancel, is None. The body is read up to `ERROR_BODY_LIMIT` bytes and for `PROBE_TIMEOUT_S` in all
        (the timeout alone bounds each read: a server trickling its answer would hold the selection forever).
        A cancel hangs up on it at once, as on a stream."""
        if control.cancelled:
            return None
        root = self.endpoint.base_url.removesuffix("/").removesuffix("/v1")
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        try:
            headers = self._auth_headers()
            with self._client.stream(method, root + path, json=payload, headers=headers, timeout=PROBE_TIMEOUT_S) as response:
                self._live_socket = socket_of(response)
                if control.cancelled or response.status_code != 200:
                    return None
                return _read_bounded(response, deadline)
        except (httpx.HTTPError, RequestError):
            return None
        finally:
            self._live_socket = None

    def _chat(self, request: ChatRequest, control: RequestControl) -> Finished:
        selected = self._selected
        if selected is None:
            raise RequestError(f"No model is selected on {self.endpoint}. Choose one with --model, or in the conversation settings (F3).")
        headers = self._auth_headers()
        rid = request.request_id
        estimate = self._contexts.estimate(selected.id)
        context = self._contexts.size(selected.id, selected.name)
        sent, length, window = self._fit(request, estimate, context, selected)
        clock = TurnClock(time.perf_counter(), 0, 0, 0)
        self._emit(Started(rid, 0, 0, "vision" if request.has_images else "text"))
        self._report_window(request, window, length, context)
        # max_tokens is capped by the estimate only once the server's counts calibrated it: the first estimate
        # errs long on purpose, and a cap from it would cut answers short. A server that then refuses prompt +
        # max_tokens (vLLM) is asked again below, capped by its own count.
        try:
            return self._stream(sent, length, context, headers, control, clock, estimate, cap=estimate.calibrated)
        except _ServerOverflowed as refused:
            first = refused
        stop = request.overflow == "stop"
        self._learn_refusal(selected, sent, length, context, first, stop)
        if control.cancelled:
            return Finished(rid, "cancelled")
        context = self._contexts.size(selected.id, selected.name)
        # The server's count of the prompt, else the estimate (longer now, if the refusal showed it short).
        counted = first.overflow.prompt_tokens or estimate.prompt_tokens(sent)
        # The prompt as sent fits by that count: only the answer's room was too large. Send it again with
        # max_tokens capped by the count ("stop" reads everything, so any room will do; the other policies keep
        # the room they leave the answer). Else "stop" refuses, and the others fit again, tighter.
        free = 1 if stop or context is None else answer_room(context, request.sampling.max_tokens)
        if context is not None and counted + free <= context:
            length = counted
        elif stop:
            raise self._stop_refusal(request, first.overflow, counted, context, estimate, selected)
        else:
            sent, length, window = self._fit(request, estimate, context, selected)
            self._report_window(request, window, length, context)
        try:
            return self._stream(sent, length, context, headers, control, clock, estimate, cap=True)
        except _ServerOverflowed as again:
            self._learn_refusal(selected, sent, length, context, again, stop)
            context = self._contexts.size(selected.id, selected.name)
            counted = again.overflow.prompt_tokens or estimate.prompt_tokens(sent)
            if stop and (context is None or counted >= context):
                raise self._stop_refusal(request, again.overflow, counted, context, estimate, selected) from None
            raise RequestError(
                f"{self.endpoint} still finds the conversation too long for {selected.name} after "
                f"{'max_tokens was capped' if stop else 'turns were left out'} to fit (it said: "
                f"“{again.overflow.message}”). Set the model's context size in config.toml (remote_context_size), "
                "or start a new conversation."
            ) from None

    def _learn_refusal(
        self,
        model: RemoteModel,
        sent: ChatRequest,
        length: int,
        context: int | None,
        refused: _ServerOverflowed,
        stop: bool,
    ) -> None:
        """Tell `ModelContexts` the server refused `sent` (estimated `length`, fitted to `context`). The estimate
        was shown short only when the size was not a guess and `sent` with the max_tokens it asked for fit by it
        (a refusal of an uncapped max_tokens over the context is explained by that alone). Without a size, or
        with a guessed one, the refused prompt is kept for the guess, except under "stop", which never guesses
        (a refusal with no size says nothing it could use: the next turn is sent whole again)."""
        guessed = self._contexts.guessing(model.id, model.name)
        known = context is not None and not guessed
        short = known and length + refused.max_tokens <= context
        guess = not known and not stop
        self._contexts.learn_refusal(model.id, sent, refused.overflow, estimate_short=short, guess=guess)

    def _stop_refusal(
        self,
        request: ChatRequest,
        overflow: ServerOverflow,
        needed: int,
        context: int | None,
        estimate: TokenEstimate,
        model: RemoteModel,
    ) -> Exception:
        """The "stop" policy's refusal of a prompt the server found too long (`needed` tokens by its count or the
        estimate, at least the size when one is known), through the same rule as a local model's: a last message
        too long even alone is a plain error (`fit_messages` raises it), with no offer."""
        if context:
            try:
                fit_messages(estimate, request, context, model.name, estimate.prompt_tokens)
            except (OverflowRefused, RequestError) as exc:
                return exc
        return OverflowRefused(self._describe_refusal(overflow, needed, context, model))

    def _fit(
        self, request: ChatRequest, estimate: TokenEstimate, context: int | None, model: RemoteModel
    ) -> tuple[ChatRequest, int, Window | None]:
        """`request` cut to `context` by its overflow policy, its estimated prompt length and the window (None
        with no known size: then everything is sent)."""
        if context is None:
            return request, estimate.prompt_tokens(request), None
        fitted, window, length = fit_messages(estimate, request, context, model.name, estimate.prompt_tokens)
        return fitted, length, window

    def _report_window(self, request: ChatRequest, window: Window | None, length: int, context: int | None) -> None:
        """The window in a `ContextWindow`, after `Started`, as the local engine reports it (the UI marks the turns
        left out "not in the model's view")."""
        if window is not None and context is not None:
            rid = request.request_id
            self._emit(ContextWindow(rid, request.overflow, window.hidden, length, context, context - length))

    def _describe_refusal(self, overflow: ServerOverflow, needed: int, context: int | None, model: RemoteModel) -> str:
        """The "stop" policy's refusal after the server refused the prompt, worded as for a local model."""
        context = overflow.context_size or context
        if context and needed >= context:
            return describe_overflow(ContextOverflow(needed, context - 1, "stop"), model.name, context)
        return (
            f"The conversation is about {needed} tokens, more than {model.name} on {self.endpoint} reads (it said: "
            f"“{overflow.message}”), and this conversation's overflow policy is \"stop\". To go on, switch its "
            "overflow policy to truncate-middle or rolling-window, or start a new conversation from a summary of "
            "this one."
        )

    def _stream(
        self,
        request: ChatRequest,
        length: int,
        context: int | None,
        headers: dict[str, str],
        control: RequestControl,
        clock: TurnClock,
        estimate: TokenEstimate,
        *,
        cap: bool,
    ) -> Finished:
        """Send `request` (already fitted; `length` its prompt tokens, estimated or the server's count) and read
        the answer. With `cap`, max_tokens is at most what `length` leaves of `context`. Raises
        `_ServerOverflowed` when the server refuses the prompt as too long, before any answer text."""
        selected = self._selected
        clock.context_size = context or 0  # the status pane's meter: the server's counts against this size
        body = chat_body(request, selected.id or None)
        # vLLM refuses a prompt plus max_tokens over its context: ask for at most what the context leaves.
        capped = cap and context is not None and body["max_tokens"] > context - length
        if capped:
            body["max_tokens"] = max(1, context - length)
        rid = request.request_id
        reader = StreamReader(self.endpoint, control, self.timeouts, request.sampling.max_tokens)
        text, reasoning, failure, busy = "", "", None, False
        url = self.endpoint.url("/chat/completions")
        try:
            with self._client.stream("POST", url, json=body, headers=headers) as response:
                self._live_socket = socket_of(response)
                if control.cancelled:  # cancelled while the request was being sent
                    self._interrupt(control)
                content_type = response.headers.get("Content-Type", "")
                if response.status_code != 200:
                    error_body = _read_bounded(response)
                    overflow = _overflow_in(error_body)
                    if overflow is not None and not control.cancelled:
                        raise _ServerOverflowed(overflow, body["max_tokens"])
                    failure, busy = self._http_failure(response, "/chat/completions", error_body)
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
        said = reader.server_error
        if said is not None and not reader.pieces and not control.cancelled:  # refused in-band, before any text
            overflow = server_overflow(said.message, said.code or said.type)
            if overflow is not None:
                raise _ServerOverflowed(overflow, body["max_tokens"])
        reader.apply_usage(clock)
        if reader.usage is not None and reader.done:
            estimate.calibrate(request, reader.usage.prompt_tokens)
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
        return Finished(rid, reason, text, usage, stats=stats, reasoning=reasoning, context_full=capped and reason == "length")

    def _interrupt(self, control: RequestControl) -> None:
        """Hang up now, from the caller's thread: shutting the socket down wakes the owner thread's blocked read at
        once (a server that sends nothing while it prefills would otherwise hold the drain until the read
        timeout). The owner thread then leaves the stream and closes the connection as usual."""
        live = self._live_socket
        if live is not None:
            hang_up(live)

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

    def _http_failure(self, response: httpx.Response, path: str, body: bytes | None = None) -> tuple[str, bool]:
        """A person's message for an HTTP error status, quoting what the server said, and whether it is the
        server saying it is busy. `body` is the response's, when already read."""
        body = _read_bounded(response) if body is None else body
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


def _overflow_in(body: bytes) -> ServerOverflow | None:
    """The "prompt too long" an HTTP error body states, or None when it says something else."""
    said = server_error_from_body(body)
    return None if said is None else server_overflow(said.message, said.code or said.type, body)


def _read_bounded(response: httpx.Response, deadline: float | None = None) -> bytes:
    """At most `ERROR_BODY_LIMIT` bytes of a response's body, read until `deadline` (`time.monotonic`) at most;
    a failure to read gives what came."""
    body = bytearray()
    try:
        for piece in response.iter_bytes():
            body += piece
            if len(body) >= ERROR_BODY_LIMIT or (deadline is not None and time.monotonic() > deadline):
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

