"""Provides what mlxchat knows of a remote model's context: the size a server offers, its "prompt too long" error,
and `ModelContexts`, which keeps all of it (and the calibrated estimates) per model for the session.

An OpenAI-compatible `/v1/models` has no standard field for the context size, but many servers add one, and
some have a side endpoint that says it:

- vLLM: `max_model_len` in each `/v1/models` entry;
- OpenRouter-style lists: `context_length` (or `top_provider.context_length`);
- LM Studio: `/api/v0/models` entries, `loaded_context_length` (what the model was loaded with), else
  `max_context_length` (also found in some `/v1/models` proxies);
- llama.cpp's llama-server: `/props` → `default_generation_settings.n_ctx` (the size it runs with); its
  `/v1/models` `meta.n_ctx_train` is the size the model was trained for, used only when `/props` says nothing;
- Ollama: `/api/show` → the `num_ctx` of its `parameters` (what it runs with), else `model_info`
  `<architecture>.context_length`. (Ollama cuts an over-long prompt itself rather than refusing it.)

Everything here parses what it is given and trusts nothing: a value that is not a plain whole number in a sane
range is ignored, as is JSON of the wrong shape. The probes are made once per model, with a short timeout, on
the engine's thread; a failure of any of them only means the size stays unknown.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..requests import ChatRequest
from .token_estimate import TokenEstimate

log = logging.getLogger(__name__)

MIN_CONTEXT = 256
MAX_CONTEXT = 100_000_000
PROBE_TIMEOUT_S = 2.0
"""Each side endpoint gets this long: a server that has it answers in milliseconds."""


def valid_context(value: Any) -> int | None:
    """`value` as a context size, or None when it is not a whole number in a believable range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and MIN_CONTEXT <= value <= MAX_CONTEXT:
        return value
    return None


def _json(body: bytes) -> Any:
    """`body` decoded, or None when it is not JSON, or nested too deep to decode (`json` recurses: a hostile
    `[[[[…` well under the size limit raises RecursionError)."""
    try:
        return json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None


def _first(*values: Any) -> int | None:
    for value in values:
        size = valid_context(value)
        if size is not None:
            return size
    return None


@dataclass(frozen=True)
class ListedContext:
    """What one `/v1/models` entry says: the size the server runs with, and (llama.cpp) the training size."""

    served: int | None = None
    trained: int | None = None


def listed_contexts(body: bytes) -> dict[str, ListedContext]:
    """Model id → what its `/v1/models` entry says of the context. Garbage gives an empty mapping."""
    payload = _json(body)
    data = payload.get("data") if isinstance(payload, dict) else None
    found: dict[str, ListedContext] = {}
    for item in data if isinstance(data, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        provider = item.get("top_provider") if isinstance(item.get("top_provider"), dict) else {}
        meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
        served = _first(
            item.get("max_model_len"),
            item.get("loaded_context_length"),
            item.get("context_length"),
            provider.get("context_length"),
            item.get("max_context_length"),
        )
        trained = _first(meta.get("n_ctx_train"))
        if served or trained:
            found[item["id"]] = ListedContext(served, trained)
    return found


def llama_cpp_props(body: bytes) -> int | None:
    """llama-server's `/props`: the context it runs with (per slot)."""
    payload = _json(body)
    if not isinstance(payload, dict):
        return None
    settings = payload.get("default_generation_settings")
    return _first(settings.get("n_ctx") if isinstance(settings, dict) else None, payload.get("n_ctx"))


def lm_studio_models(body: bytes, model_id: str) -> int | None:
    """LM Studio's `/api/v0/models`: the entry for `model_id`, loaded size first."""
    payload = _json(body)
    data = payload.get("data") if isinstance(payload, dict) else None
    for item in data if isinstance(data, list) else ():
        if isinstance(item, dict) and item.get("id") == model_id:
            return _first(item.get("loaded_context_length"), item.get("max_context_length"))
    return None


def ollama_show(body: bytes) -> int | None:
    """Ollama's `/api/show`: the `num_ctx` it runs with, else the model's own context length."""
    payload = _json(body)
    if not isinstance(payload, dict):
        return None
    parameters = payload.get("parameters")
    if isinstance(parameters, str):
        found = re.search(r"(?m)^\s*num_ctx\s+(\d{1,9})\s*$", parameters)
        if found and valid_context(int(found.group(1))):
            return int(found.group(1))
    info = payload.get("model_info")
    if isinstance(info, dict):
        return _first(*(value for key, value in info.items() if isinstance(key, str) and key.endswith(".context_length")))
    return None


Probe = Callable[[str, str, dict | None], bytes | None]
"""(method, path under the server's root, JSON body) → the 200 response body, or None for anything else."""


def probe_context(probe: Probe, model_id: str) -> tuple[int | None, str]:
    """Ask the side endpoints in turn (llama.cpp, LM Studio, Ollama) for `model_id`'s context size: the first
    answer wins. Returns (size, where it came from) or (None, "")."""
    answers: tuple[tuple[str, str, dict | None, Callable[[bytes], int | None]], ...] = (
        ("GET", "/props", None, llama_cpp_props),
        ("GET", "/api/v0/models", None, lambda body: lm_studio_models(body, model_id)),
        ("POST", "/api/show", {"model": model_id}, ollama_show),
    )
    for method, path, payload, parse in answers:
        if method == "POST" and not model_id:
            continue
        body = probe(method, path, payload)
        size = parse(body) if body else None
        if size is not None:
            return size, path
    return None, ""


@dataclass(frozen=True)
class ServerOverflow:
    """A server's "the prompt is longer than my context" error, with the numbers it gave (None where it gave
    none): its context size and the prompt's length in its own tokens."""

    message: str
    context_size: int | None = None
    prompt_tokens: int | None = None


_OVERFLOW_WORDS = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|exceed_context_size|context_length_exceeded"
    r"|too many (input )?tokens|prompt is too long|input is too long|exceeds? the (available )?context",
    re.IGNORECASE,
)
_CONTEXT_NUMBERS = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),  # vLLM, OpenAI
    re.compile(r"context length of only (\d+)", re.IGNORECASE),  # LM Studio
    re.compile(r"context (?:size|window|length) (?:is|of) (\d+)", re.IGNORECASE),
)
_PROMPT_NUMBERS = (
    re.compile(r"\((\d+) in the messages", re.IGNORECASE),  # vLLM: "you requested N tokens (P in the messages, …"
    re.compile(r"(?:requested|resulted in|has|have) (\d+) (?:input )?tokens", re.IGNORECASE),  # vLLM, OpenAI
    re.compile(r"keep the first (\d+) tokens", re.IGNORECASE),  # LM Studio
)


def server_overflow(message: str | None, code: str | None = None, body: bytes = b"") -> ServerOverflow | None:
    """The overflow the server reported, or None when its error (`message`, its `code`/`type`, the raw `body`)
    is about something else."""
    text = " ".join(filter(None, (message, code)))
    if not text or not _OVERFLOW_WORDS.search(text):
        return None
    if "max_tokens" in text and "too large" in text and "input tokens" not in text:
        return None  # vLLM's "max_tokens is too large" alone is about the answer's limit, not the prompt
    context = next((int(m.group(1)) for p in _CONTEXT_NUMBERS if (m := p.search(text))), None)
    prompt = next((int(m.group(1)) for p in _PROMPT_NUMBERS if (m := p.search(text))), None)
    payload = _json(body) if body else None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):  # llama-server puts its numbers beside the message
        context = valid_context(error.get("n_ctx")) or context
        prompt = valid_context(error.get("n_prompt_tokens")) or prompt
    return ServerOverflow(message or code or "", valid_context(context), prompt if prompt and prompt > 0 else None)


class ModelContexts:
    """What the engine knows, for its session, of each model's context: the sizes config.toml gives, what the
    servers say, what their refusals taught, and each model's calibrated `TokenEstimate`. Owner thread only."""

    def __init__(self, configured: Mapping[str, int] | None = None) -> None:
        self.configured = dict(configured or {})
        """Model id or name (or "*", any model) → its size, from config.toml: it wins over what a server says."""
        self._discovered: dict[str, int | None] = {}  # model id → what the server told (asked once per model)
        self._stated: dict[str, int] = {}  # model id → the size a server's overflow error stated
        self._refused: dict[str, ChatRequest] = {}  # model id → a prompt refused as too long, with no size said
        self._estimates: dict[str, TokenEstimate] = {}

    def estimate(self, model_id: str) -> TokenEstimate:
        return self._estimates.setdefault(model_id, TokenEstimate())

    def size(self, model_id: str, name: str, listed: ListedContext | None = None, probe: Probe | None = None) -> int | None:
        """The context size to fit prompts in: what the server's own overflow error stated, else config.toml,
        else what the server tells (`listed`, its model list's entry, then the side endpoints through `probe`,
        once per model), else a guess from a prompt it refused without saying its size, else None (unknown)."""
        if model_id in self._stated:
            return self._stated[model_id]
        configured = self.configured.get(model_id) or self.configured.get(name) or self.configured.get("*")
        if configured:
            return configured
        if model_id not in self._discovered and probe is not None:
            try:
                self._discovered[model_id] = _discover(model_id, listed or ListedContext(), probe)
            except Exception:  # whatever a server answered, selecting the model must not fail for it: size unknown
                log.warning("asking for the context size of %s failed; it stays unknown", model_id, exc_info=True)
                self._discovered[model_id] = None
        if self._discovered.get(model_id):
            return self._discovered[model_id]
        refused = self._refused.get(model_id)
        if refused is not None:
            # A guess: the refused prompt was too long, and one retry must be likely to fit, so prompts fit in half
            # of it. Counted with the current estimate, so the guess follows the calibration.
            return max(self.estimate(model_id).prompt_tokens(refused) // 2, 1)
        return None

    def guessing(self, model_id: str, name: str) -> bool:
        """Whether the size `size` gives now is the guess from a refused prompt (nothing better is known)."""
        return (
            model_id not in self._stated
            and not (self.configured.get(model_id) or self.configured.get(name) or self.configured.get("*"))
            and not self._discovered.get(model_id)
            and model_id in self._refused
        )

    def forget_discovery(self, model_id: str) -> None:
        """Ask the server again at the next selection (the asking was cut short, by a cancel)."""
        self._discovered.pop(model_id, None)

    def learn_refusal(
        self, model_id: str, sent: ChatRequest, overflow: ServerOverflow, *, estimate_short: bool, guess: bool
    ) -> None:
        """The server refused `sent` as too long. Keep the size it stated; count longer when the estimate was
        short (the server said its count, or `estimate_short`: a size not guessed, and the estimate thought
        `sent` and its answer fit); with no size stated, remember `sent` for the guess in `size` (when `guess`).
        `sent` was fitted to any earlier guess, so a guess that was refused again is lowered by it: a guess never
        learns from the estimate (it is the guess, not the count, that is in doubt)."""
        if overflow.prompt_tokens or estimate_short:
            self.estimate(model_id).tighten(sent, overflow.prompt_tokens)
        if overflow.context_size:
            self._stated[model_id] = overflow.context_size
        elif guess:
            self._refused[model_id] = sent


def _discover(model_id: str, listed: ListedContext, probe: Probe) -> int | None:
    if listed.served:
        return listed.served
    size, where = probe_context(probe, model_id)
    if size is not None:
        log.info("the context of %s is %d (from %s)", model_id, size, where)
        return size
    return listed.trained  # llama.cpp's training size, when /props did not say what it runs with
