"""Provides what the remote backend sends: the endpoint's address, its timeouts, and chat-completion bodies
with images as data URLs.

No I/O happens here except reading the attached images, which are checked (`vision_inputs.load_image`) exactly
as the local vision route checks them, so a missing or damaged file gives the same message on both routes.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

from ..documents import message_text
from ..requests import ChatRequest, Message
from ..vision_inputs import load_image

LOSSLESS_SUFFIXES = frozenset({".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
"""Images sent as PNG (screenshots, diagrams: text in them must stay sharp). Everything else goes as JPEG."""

JPEG_QUALITY = 90


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server's API root, always ending in `/v1`.

    `display` is what messages and the UI show: the same address without any `user:password@` part, so a
    credential typed into the URL never reaches an event, a log line or the screen.
    """

    base_url: str
    display: str
    credentials: tuple[str, ...] = ()
    """The secrets in the URL's `user:password@` part, in every form a server could quote back (as typed,
    percent-decoded, and base64 as in the `Authorization: Basic` header httpx builds from them)."""

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        """Accepts `host:port`, `http://host:port`, `…/v1`, `…/v1/` and `…/v1/chat/completions`.

        A missing scheme means `http://`; a path that does not end in `/v1` gets it appended. Raises
        `ValueError` with a readable message for anything else.
        """
        raw = (text or "").strip()
        if not raw:
            raise ValueError("the endpoint URL is empty")
        if "://" not in raw:
            raw = "http://" + raw
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"endpoint {text!r}: only http:// and https:// URLs are supported")
        try:
            host, _port = parts.hostname, parts.port
        except ValueError:
            raise ValueError(f"endpoint {text!r} has an invalid port") from None
        if not host:
            raise ValueError(f"endpoint {text!r} has no host name")
        path = parts.path.rstrip("/")
        for suffix in ("/chat/completions", "/completions", "/models"):
            if path.endswith(suffix):
                path = path[: -len(suffix)]
                break
        if not path.endswith("/v1"):
            path += "/v1"
        userinfo, _, public_netloc = parts.netloc.rpartition("@")
        base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        return cls(base, urlunsplit((parts.scheme, public_netloc, path, "", "")), _credentials(userinfo))

    @property
    def is_plain_http_off_this_machine(self) -> bool:
        """Whether what is sent goes unencrypted over a network: `http://` to a host that is not loopback."""
        if not self.base_url.startswith("http://"):
            return False
        host = urlsplit(self.base_url).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return True  # a host name: it resolves who knows where

    def url(self, path: str) -> str:
        """The full URL of `path` ("/chat/completions", "/models") under this API root."""
        return self.base_url + path

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"Endpoint({self.display!r})"


def _credentials(userinfo: str) -> tuple[str, ...]:
    if not userinfo:
        return ()
    user, _, password = userinfo.partition(":")
    decoded = f"{unquote(user)}:{unquote(password)}"
    basic = base64.b64encode(decoded.encode()).decode("ascii")
    forms = {userinfo, decoded, basic, password, unquote(password)}
    return tuple(sorted((form for form in forms if form and form != ":"), key=len, reverse=True))


def redact(message: str, secrets: Iterable[str]) -> str:
    """`message` with each secret replaced by "[redacted]", should a server have quoted one back.

    Any length is redacted: a short secret only where it stands as a word of its own, so a one-letter key
    does not blank every "a" of the message, while "key ab is invalid" still loses "ab".
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= 8:
            message = message.replace(secret, "[redacted]")
        else:
            message = re.sub(rf"(?<![\w~+/=-]){re.escape(secret)}(?![\w~+/=-])", "[redacted]", message)
    return message


def plain_http_key_warning(endpoint: str, api_key_env: str | None) -> str | None:
    """The warning to give once when an API key or URL password would cross a network unencrypted, or None."""
    parsed = Endpoint.parse(endpoint)
    if not parsed.is_plain_http_off_this_machine or not (api_key_env or parsed.credentials):
        return None
    what = f"the API key from ${api_key_env}" if api_key_env else "the password in the endpoint URL"
    return (
        f"{parsed.display} is plain http:// to another machine: {what} is sent unencrypted and anyone on the "
        "network path can read it. Use https:// (or an SSH tunnel to 127.0.0.1)."
    )


@dataclass(frozen=True)
class RemoteTimeouts:
    """How long the remote backend waits, in seconds.

    `read_s` bounds the silence between two pieces of a stream, so it also bounds how long a cancel can take to
    land when the server sends nothing (servers that send keep-alives while they prefill let it land sooner). It
    must cover the server's prefill of the longest prompt when the server sends nothing meanwhile (vLLM does not).
    """

    connect_s: float = 10.0
    read_s: float = 120.0
    write_s: float = 30.0
    models_s: float = 10.0
    """The whole `/v1/models` call: a listing should be quick, and the model picker waits for it."""
    idle_s: float = 300.0
    """The longest wait for the answer's next piece while the server sends only keep-alives (which reset
    `read_s`): a server that keeps the connection open and never answers is given up on."""


def chat_body(request: ChatRequest, model_id: str | None) -> dict[str, Any]:
    """The JSON body of a streaming `/v1/chat/completions` request for `request`.

    Usage is asked for (`stream_options.include_usage`) so the final stats carry the server's own token counts.
    `continue_last` uses vLLM's `continue_final_message`; servers without it answer a fresh turn instead.
    """
    sampling = request.sampling
    body: dict[str, Any] = {
        "messages": [_message(message) for message in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": sampling.max_tokens,
    }
    # A value the user left unset is not sent: the server applies the model's own (vLLM reads its
    # generation_config.json), as the local engine does.
    for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty"):
        value = getattr(sampling, name)
        if value is not None:
            body[name] = value
    if request.thinking is not None:  # vLLM, vllm-mlx and mlx_lm.server hand these to the chat template
        body["chat_template_kwargs"] = {"enable_thinking": request.thinking}
    if model_id:
        body["model"] = model_id
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if request.continue_last:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return body


def _message(message: Message) -> dict[str, Any]:
    """Plain string content for text (every server reads it); content parts only where images are attached.
    The text holds the message's documents as the local engine's prompt does (`documents.message_text`)."""
    text = message_text(message)
    if not message.images:
        return {"role": message.role, "content": text}
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(path)}} for path in message.images
    ]
    parts.append({"type": "text", "text": text})
    return {"role": message.role, "content": parts}


def image_data_url(path: Path | str) -> str:
    """`data:image/…;base64,…` for the image at `path`, oriented and at most `MAX_IMAGE_EDGE` pixels a side.

    Raises `RequestError` naming the file when it is missing, unreadable or not an image.
    """
    image = load_image(path)
    buffer = io.BytesIO()
    if Path(path).suffix.lower() in LOSSLESS_SUFFIXES:
        image.save(buffer, "PNG")
        mime = "image/png"
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
