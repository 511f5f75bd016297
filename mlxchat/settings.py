"""Provides mlxchat's settings: per-conversation `ChatSettings` and the user's `AppConfig` from `config.toml`.

Precedence is always **flag > config file > built-in default**, per field (for sampling values the model's own
`generation_config.json` comes between the file and mlxchat's default: see `resolve_sampling`): `load_config()` lays the file's
`[chat]` table over `ChatSettings()`, and `ChatSettings.merged(...)` lays command-line flags (those given, i.e.
not None) over that. A conversation stores its own `ChatSettings` (see `mlxchat.store`); a new conversation starts
from `AppConfig.chat`.

The file lives at `<config_dir>/config.toml` (`mlxchat.paths.config_dir()`), is never created by mlxchat, and
looks like this::

    theme = "textual-dark"
    endpoint = "http://gpu-box:8000/v1"   # chat through this server instead of a local model
    api_key_env = "MY_SERVER_KEY"          # the environment variable holding its API key
    prompt_cache_mb = 4096                 # disk for saved prompt caches (resume a long chat at once); 0: off
    engine = "process"                     # where the local model runs: its own process, or "thread" in the app's
    remote_context_size = 32768            # the server's context, where it does not say (or per model, below)

    [chat]
    system_prompt = "You are a concise assistant."
    temperature = 0.7          # leave a sampling value out for the model's own (its generation_config.json)
    top_p = 1.0
    top_k = 0                  # 0: off
    min_p = 0.0                # 0: off
    repetition_penalty = 1.0   # 1: off
    thinking = true            # reasoning models think first; false: they answer at once
    thinking_budget = 2048     # at most this many tokens of thinking; leave out for no cap
    max_tokens = 1024
    seed = 42                  # leave out for a random seed
    model = "~/models/Qwen2.5-0.5B-Instruct-4bit"
    overflow = "truncate-middle"  # or "rolling-window", "stop": when a chat outgrows the context
    kv_bits = 8                # quantize the KV cache (4 or 8); leave out for full precision

    [remote_context_size]      # instead of the line above: per model id on the server, "*" for the others
    "mlx-community/Qwen3-8B-4bit" = 40960
    "*" = 32768

    [keymap]                   # binding id = keys, as Textual's App.set_keymap takes them
    send = "ctrl+j"
    new_conversation = "ctrl+n,f2"

A file that is not valid TOML, or a value of the wrong type, never stops mlxchat: `AppConfig.problems` carries one
readable line per problem (naming the file, line and column for a syntax error) and the defaults are used for
what could not be read. Loading reads one small file and imports nothing heavy.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from mlxchat import paths

CONFIG_FILE_NAME = "config.toml"


@dataclass(frozen=True)
class ChatSettings:
    """How one conversation is answered. Stored with each conversation; defaults come from `config.toml`."""

    system_prompt: str = ""
    """Sent as the system message before the conversation. Empty: no system message (the model's own default)."""

    temperature: float | None = None
    """Sampling temperature, 0 or more. 0 is greedy: the same prompt and model give the same answer. None (here and
    in the other sampling values): the model's own value, else mlxchat's (`SAMPLING_DEFAULTS`)."""

    top_p: float | None = None
    """Nucleus sampling: only the most likely tokens whose probabilities add up to `top_p` are kept (0 < p <= 1).
    1.0 keeps them all."""

    max_tokens: int = 1024
    """The most tokens one answer may have; a longer answer stops with finish reason `length`."""

    seed: int | None = None
    """Random seed for sampling. None: a fresh seed each answer. With a fixed seed, answers are reproducible."""

    model: str | None = None
    """The model to answer with: a folder, a cached Hugging Face repo id or an imported model's name. None: the
    bundled demo model."""

    overflow: str = "truncate-middle"
    """What happens when the conversation outgrows the model's context: "truncate-middle" keeps the system prompt,
    the first exchange and the most recent turns; "rolling-window" keeps the system prompt and the most recent
    turns; "stop" refuses, as older versions did. Turns left out stay in history."""

    kv_bits: int | None = None
    """Store the conversation's KV cache quantized to 4 or 8 bits: less memory at long contexts, slightly slower
    decoding. None: full precision."""

    top_k: int | None = None
    """Keep only the `top_k` most likely tokens; 0 keeps them all."""

    min_p: float | None = None
    """Drop tokens less likely than `min_p` times the most likely one (0–1); 0 keeps them all."""

    repetition_penalty: float | None = None
    """Above 1 makes tokens the answer already used less likely; 1 switches it off."""

    thinking: bool | None = None
    """A reasoning model thinks before answering (True), or answers at once (False). None: the model's default."""

    thinking_budget: int | None = None
    """The most tokens a reasoning model may think; then mlxchat ends its thinking and it answers. None: no cap."""

    def __post_init__(self) -> None:
        for name in _CHAT_FIELDS:
            why = _check_chat_value(name, getattr(self, name))
            if why:
                raise ValueError(why)

    def merged(self, **overrides: Any) -> "ChatSettings":
        """These settings with every override that is not None laid over them (how flags beat the config).

        Unknown names raise `TypeError`, so a typo in a caller cannot silently do nothing.
        """
        unknown = set(overrides) - set(_CHAT_FIELDS)
        if unknown:
            raise TypeError(f"unknown chat settings: {', '.join(sorted(unknown))}")
        given = {name: _coerce(name, value) for name, value in overrides.items() if value is not None}
        return replace(self, **given) if given else self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (how the store keeps them)."""
        return {name: getattr(self, name) for name in _CHAT_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "ChatSettings | None" = None) -> "ChatSettings":
        """Settings from a stored dict, over `base` (defaults when None). Unknown keys and values that do not fit
        are skipped, so settings written by another mlxchat version still open."""
        settings = base or cls()
        usable = {}
        for name in _CHAT_FIELDS:
            if name in data and _check_chat_value(name, data[name]) is None:
                usable[name] = _coerce(name, data[name])
        return replace(settings, **usable) if usable else settings

    def sampling(self):
        """The engine's `SamplingParams` for these settings."""
        from mlxchat.engine.requests import SamplingParams

        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=self.seed,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
        )


_CHAT_FIELDS = ("system_prompt", "temperature", "top_p", "max_tokens", "seed", "model", "overflow", "kv_bits")
_CHAT_FIELDS += ("top_k", "min_p", "repetition_penalty", "thinking", "thinking_budget")

SAMPLING_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}
)
"""mlxchat's own sampling values: used for what neither the user nor the model's `generation_config.json` set."""


def resolve_sampling(
    conversation: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
) -> dict[str, tuple[float, str]]:
    """Every sampling value and where it came from ("conversation", "config.toml", "model" or "mlxchat
    default"), by the one precedence rule: **conversation > config.toml > the model's own > mlxchat's default**.
    A value of None means "not set here".

    The engine calls it with the request's values as the conversation's (the UI already laid them over the
    config) and the loaded model's `generation_config.json`; the settings screen calls it with all three layers
    to show each value's source.
    """
    config = config or {}
    # A conversation starts as a copy of config.toml's values: one still equal to the file's is the file's.
    conversation = {name: value for name, value in conversation.items() if value != config.get(name)}
    layers = (("conversation", conversation), ("config.toml", config), ("model", model or {}))
    chosen: dict[str, tuple[float, str]] = {}
    for name, fallback in SAMPLING_DEFAULTS.items():
        chosen[name] = next(
            ((layer[name], source) for source, layer in layers if layer.get(name) is not None),
            (fallback, "mlxchat default"),
        )
    return chosen


def sampling_values(settings: Any) -> dict[str, Any]:
    """The sampling fields of a `ChatSettings` or `SamplingParams`, as `resolve_sampling` takes a layer."""
    return {name: getattr(settings, name) for name in SAMPLING_DEFAULTS}


GENERATION_CONFIG_FILE = "generation_config.json"


def read_generation_config(folder: Path) -> dict[str, float]:
    """The sampling values a model folder's `generation_config.json` recommends (only those mlxchat uses and that
    are valid); {} when there is no such file or it cannot be read."""
    import json

    try:
        data = json.loads((Path(folder) / GENERATION_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        name: _coerce(name, data[name])
        for name in SAMPLING_DEFAULTS
        if data.get(name) is not None and _check_chat_value(name, data[name]) is None
    }
KV_BITS_CHOICES = (4, 8)


def _check_chat_value(name: str, value: Any) -> str | None:
    """Why `value` cannot be `name`, in words, or None when it can."""
    if name in ("system_prompt",):
        return None if isinstance(value, str) else f"{name} must be a string"
    if name == "overflow":
        from mlxchat.engine.context_window import OVERFLOW_POLICIES  # light: no MLX

        return None if value in OVERFLOW_POLICIES else f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}"
    if name == "kv_bits":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value in KV_BITS_CHOICES)
        return None if ok else "kv_bits must be 4 or 8 (leave it out for full precision)"
    if name == "model":
        return None if value is None or (isinstance(value, str) and value.strip()) else f"{name} must be a name or path"
    if value is None and name in _UNSET_ALLOWED:
        return None
    if name == "thinking":
        return None if isinstance(value, bool) else "thinking must be true or false"
    if name in ("top_k", "thinking_budget"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else f"{name} must be a whole number, 0 or more"
    if name == "seed":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
        return None if ok else "seed must be a whole number, 0 or more"
    if name == "max_tokens":
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return None if ok else "max_tokens must be a whole number above 0"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name} must be a number"
    if name == "temperature" and value < 0:
        return "temperature must be 0 or more"
    if name == "top_p" and not 0 < value <= 1:
        return "top_p must be above 0 and at most 1"
    if name == "min_p" and not 0 <= value <= 1:
        return "min_p must be between 0 and 1"
    if name == "repetition_penalty" and value <= 0:
        return "repetition_penalty must be above 0"
    return None


_UNSET_ALLOWED = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "thinking", "thinking_budget")
"""Fields whose None means "not set": the model's own value or mlxchat's default stands in."""


def _coerce(name: str, value: Any) -> Any:
    ok_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if name in ("temperature", "top_p", "min_p", "repetition_penalty") and ok_number else value


ENGINE_PLACES = ("process", "thread")
"""Where the chat screen may run the local engine (`AppConfig.engine`)."""


@dataclass(frozen=True)
class AppConfig:
    """What `config.toml` says, over the defaults. Build it with `load_config()`."""

    chat: ChatSettings = field(default_factory=ChatSettings)
    """Defaults for new conversations and for `mlxchat ask`."""

    theme: str | None = None
    """Name of the Textual theme to start with. None: the app's default theme."""

    keymap: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Binding id → keys (comma-separated, Textual's syntax), passed to `App.set_keymap`."""

    endpoint: str | None = None
    """An OpenAI-compatible server (vllm-mlx, mlx_lm.server, vLLM) to chat through instead of a local model, e.g.
    "http://gpu-box:8000/v1". `chat.model` then names one of the server's models. None: local models."""

    api_key_env: str | None = None
    """The NAME of the environment variable that holds the server's API key (never the key itself: it stays out
    of files). None: no key is sent."""

    remote_context_sizes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Model id on the server (or "*" for any) → its context size, from `remote_context_size` (a number for every
    model, or a table). It wins over what the server says; without it the size the server tells is used."""

    prompt_cache_mb: int = 4096
    """How much disk the saved prompt caches may use, in MiB (least recently used go first). A saved cache lets a
    long conversation resume after a restart without reading its history again. 0 switches saving off."""

    engine: str = "process"
    """Where the chat screen runs the local engine: "process" (a child process of its own, so the screen's drawing
    never slows decoding: engine/process.py) or "thread" (an owner thread in the app's process, as `mlxchat ask`
    runs it: for a system that does not let the app start processes)."""

    path: Path | None = None
    """The file these values came from, or None when there was none."""

    problems: tuple[str, ...] = ()
    """One readable line per thing in the file that could not be used. Show them; the defaults stand in."""


def saved_cache_folder(config: AppConfig):
    """Where the engine saves prompt caches under this config, or None when `prompt_cache_mb` is 0."""
    if config.prompt_cache_mb <= 0:
        return None
    from mlxchat.engine.saved_caches import SavedCacheFolder, default_folder  # light: files only, no MLX

    return SavedCacheFolder(default_folder(), cap_bytes=config.prompt_cache_mb * 2**20)


def config_path() -> Path:
    """Where `config.toml` is looked for (it need not exist)."""
    return paths.config_dir() / CONFIG_FILE_NAME


def load_config(path: Path | None = None) -> AppConfig:
    """Read `path` (default: `config_path()`). Never raises for a bad or missing file; see `AppConfig.problems`."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AppConfig()
    except (OSError, UnicodeDecodeError) as exc:
        return AppConfig(path=path, problems=(f"{path}: cannot be read ({exc}); using the defaults.",))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return AppConfig(path=path, problems=(describe_toml_error(path, exc, text),))
    return _config_from_data(data, path)


def describe_toml_error(path: Path, exc: tomllib.TOMLDecodeError, text: str = "") -> str:
    """'…/config.toml, line 3, column 7: Expected '=' after a key in a key/value pair. …using the defaults.'

    Python 3.11–3.13 put the position only in the message text; 3.14 adds `lineno`/`colno`. An error "at end of
    document" is placed on the last line of `text`.
    """
    message = str(exc)
    line = getattr(exc, "lineno", None)
    column = getattr(exc, "colno", None)
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if found:
        message = message[: found.start()]
        line, column = line or int(found.group(1)), column or int(found.group(2))
    elif "(at end of document)" in message:
        message = message.replace("(at end of document)", "").strip()
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    where = f"line {line}, column {column}" if line else "at the end of the file"
    return f"{path}, {where}: {message.rstrip('.')}. The file was not used; using the defaults."


def _config_from_data(data: dict[str, Any], path: Path) -> AppConfig:
    problems: list[str] = []
    known_top = (
        "chat", "theme", "keymap", "endpoint", "api_key_env", "prompt_cache_mb", "remote_context_size", "engine"
    )
    for key in data:
        if key not in known_top:
            problems.append(f"{path}: unknown setting {key!r} ignored (known: {', '.join(known_top)}).")

    chat = ChatSettings()
    chat_table = data.get("chat", {})
    if not isinstance(chat_table, dict):
        problems.append(f"{path}: [chat] must be a table; using the default chat settings.")
        chat_table = {}
    usable: dict[str, Any] = {}
    for key, value in chat_table.items():
        if key not in _CHAT_FIELDS:
            problems.append(f"{path}: unknown setting chat.{key} ignored (known: {', '.join(_CHAT_FIELDS)}).")
            continue
        why = _check_chat_value(key, value)
        if why:
            problems.append(f"{path}: chat.{key} = {value!r} ignored: {why}.")
            continue
        usable[key] = _coerce(key, value)
    if usable:
        chat = replace(chat, **usable)

    theme = data.get("theme")
    if theme is not None and not (isinstance(theme, str) and theme.strip()):
        problems.append(f"{path}: theme = {theme!r} ignored: theme must be a theme name.")
        theme = None

    keymap: dict[str, str] = {}
    keymap_table = data.get("keymap", {})
    if not isinstance(keymap_table, dict):
        problems.append(f"{path}: [keymap] must be a table of binding id = \"keys\"; ignored.")
        keymap_table = {}
    for binding_id, keys in keymap_table.items():
        if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            keys = ",".join(keys)
        if not isinstance(keys, str) or not keys.strip():
            problems.append(f"{path}: keymap.{binding_id} = {keys!r} ignored: keys must be a string like \"ctrl+n\".")
            continue
        keymap[binding_id] = keys.replace(" ", "")

    endpoint = data.get("endpoint")
    why = None if endpoint is None else check_endpoint(endpoint)
    if why:
        problems.append(f"{path}: endpoint = {endpoint!r} ignored: {why}.")
        endpoint = None

    api_key_env = data.get("api_key_env")
    why = None if api_key_env is None else check_api_key_env(api_key_env)
    if why:  # the value is not quoted: it may be the key itself, pasted by mistake
        problems.append(f"{path}: api_key_env ignored: {why}.")
        api_key_env = None

    prompt_cache_mb = data.get("prompt_cache_mb", AppConfig.prompt_cache_mb)
    if not isinstance(prompt_cache_mb, int) or isinstance(prompt_cache_mb, bool) or prompt_cache_mb < 0:
        problems.append(f"{path}: prompt_cache_mb = {prompt_cache_mb!r} ignored: it must be a whole number of MiB, 0 or more.")
        prompt_cache_mb = AppConfig.prompt_cache_mb

    remote_context_sizes = _remote_context_sizes(data.get("remote_context_size"), path, problems)

    engine = data.get("engine", AppConfig.engine)
    if engine not in ENGINE_PLACES:
        problems.append(f"{path}: engine = {engine!r} ignored: it must be \"process\" or \"thread\".")
        engine = AppConfig.engine

    return AppConfig(
        chat=chat,
        prompt_cache_mb=prompt_cache_mb,
        engine=engine,
        remote_context_sizes=remote_context_sizes,
        theme=theme,
        keymap=MappingProxyType(keymap),
        endpoint=endpoint,
        api_key_env=api_key_env,
        path=path,
        problems=tuple(problems),
    )


def _remote_context_sizes(value: Any, path: Path, problems: list[str]) -> Mapping[str, int]:
    """`remote_context_size` read: a number (every model) or a table of model id → number; bad entries are
    named in `problems` and left out."""
    if value is None:
        return MappingProxyType({})
    from mlxchat.engine.remote.context_size import MAX_CONTEXT, MIN_CONTEXT, valid_context  # the engine's own rule

    table = value if isinstance(value, dict) else {"*": value}
    sizes: dict[str, int] = {}
    for model, size in table.items():
        if not isinstance(size, int) or valid_context(size) is None:
            where = "remote_context_size" if not isinstance(value, dict) else f"remote_context_size.{model!r}"
            problems.append(
                f"{path}: {where} = {size!r} ignored: it must be a whole number of tokens from {MIN_CONTEXT} to "
                f"{MAX_CONTEXT:,}."
            )
            continue
        sizes[model] = size
    return MappingProxyType(sizes)


def check_endpoint(value: Any) -> str | None:
    """Why `value` cannot be an endpoint URL, in words, or None when it can."""
    if not isinstance(value, str) or not value.strip():
        return "endpoint must be a URL such as \"http://gpu-box:8000/v1\""
    from mlxchat.engine.remote.request import Endpoint  # light: no HTTP client, no MLX

    try:
        Endpoint.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_api_key_env(value: Any) -> str | None:
    """Why `value` cannot be an environment variable's name, in words, or None when it can. Never quotes the
    value, which may be a key pasted in the wrong place."""
    if isinstance(value, str) and _ENV_NAME.fullmatch(value):
        return None
    return "api_key_env must be the name of an environment variable (like OPENAI_API_KEY), not the key itself"


__all__ = [
    "SAMPLING_DEFAULTS",
    "AppConfig",
    "ChatSettings",
    "read_generation_config",
    "resolve_sampling",
    "sampling_values",
    "check_api_key_env",
    "check_endpoint",
    "config_path",
    "describe_toml_error",
    "load_config",
]

# Keep the list of fields in one place: a field added to ChatSettings must be added to _CHAT_FIELDS too.
assert _CHAT_FIELDS == tuple(f.name for f in fields(ChatSettings)), "update _CHAT_FIELDS"
