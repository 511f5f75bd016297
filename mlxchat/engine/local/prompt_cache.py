"""Provides the prompt cache kept across the turns of one conversation.

On this project's target machines prefill is often as slow as decode, so re-reading a long conversation each
turn would make every follow-up slower than the last. The cache remembers which tokens its KV state holds;
the next turn reuses the longest common prefix and prefills only the rest. A different conversation, or an
edit of earlier history, trims or resets it.

With a `SavedPromptCaches`, each conversation's cache is also written to disk when an answer finishes, keyed by
conversation, model fingerprint and the exact tokens it holds, so switching back to a conversation, or resuming
one after a restart, starts from it. An edit of earlier history needs no special case: only the prefix the saved
tokens share with the new prompt is reused, and the rest is trimmed. Runs on the engine's owner thread only.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import (
    KVCache,
    QuantizedKVCache,
    can_trim_prompt_cache,
    load_prompt_cache,
    make_prompt_cache,
    save_prompt_cache,
    trim_prompt_cache,
)

from ..saved_caches import SUFFIX, SavedCacheFolder
from .prompt_tokens import PromptTokens

log = logging.getLogger(__name__)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Reuse:
    """What `ConversationCache.prepare` decided: the cache to use and how many prompt tokens it already holds."""

    cache: list[Any]
    cached_tokens: int


def kv_group_size(head_size: int) -> int | None:
    """MLX's quantization group for a KV head size: 64 where it divides it, else 32; None when the heads are too
    small for either (the cache then stays at full precision). The text and image routes both ask here."""
    return next((size for size in (64, 32) if head_size % size == 0), None)


def quantize_cache(cache: list[Any], bits: int | None) -> None:
    """Turn the full-precision layers of `cache` into mlx-lm's quantized KV cache, in place (the list is shared
    with whoever holds it). Called after every prefill chunk, so a long prompt never holds a full-precision copy
    of more than one chunk. The group size follows the head size (`kv_group_size`)."""
    if bits is None:
        return
    for index, entry in enumerate(cache):
        keys = getattr(entry, "keys", None)
        if not hasattr(entry, "to_quantized") or getattr(entry, "bits", None) is not None or keys is None:
            continue
        group = kv_group_size(keys.shape[-1])
        if group is None:
            return  # heads smaller than MLX's smallest quantization group: stay at full precision
        cache[index] = entry.to_quantized(group_size=group, bits=bits)


def used_part(cache: list[Any]) -> list[Any]:
    """The cache holding only the tokens it holds: mlx-lm's KV caches grow their buffers 256 tokens at a time and
    save the whole buffer, so a 2,348-token conversation would write (and a resume read) 2,560 tokens a layer,
    and a short one up to 255 zeros a layer. Layers of other kinds (rotating windows) are saved as they are.
    The slices are views until saved; the cache itself is not changed."""
    from mlx.utils import tree_map

    trimmed = []
    for entry in cache:
        if type(entry) not in (KVCache, QuantizedKVCache) or entry.keys is None:
            trimmed.append(entry)
            continue
        state = entry.state
        keys, values = tree_map(lambda array: array[..., : entry.offset, :], (state[0], state[1]))
        trimmed.append(type(entry).from_state((keys, values, *state[2:])))
    return trimmed


def with_room(cache: list[Any]) -> None:
    """Give each layer read back from a file a buffer with room for 256 more tokens (255 when its length is a
    whole number of steps), as mlx-lm's own growth gives one: the file holds only the used tokens, so the
    follow-up's first write would reallocate and copy every layer. The buffer is deliberately *not* a whole number
    of 256-token steps: MLX's CUDA attention decodes over such buffers with its vector kernel, and over whole-step
    ones with a cuDNN graph built once per buffer size (48 ms each time on an H200, at every new size as the answer
    grows); mlx-lm's growth from a buffer that is not whole steps keeps it so. Decode steps measured the same
    either way at 2,400 tokens. Done while the cache is read (during the `PrepareConversation` hint when there is
    one). In place; layers of other kinds are kept."""
    from mlx.utils import tree_map

    for entry in cache:
        if type(entry) not in (KVCache, QuantizedKVCache) or entry.keys is None:
            continue
        size = entry.offset + entry.step
        if size % entry.step == 0:
            size -= 1

        def grow(array):
            room = size - array.shape[-2]
            if room <= 0:
                return array
            return mx.concatenate([array, mx.zeros((*array.shape[:-2], room, array.shape[-1]), array.dtype)], axis=-2)

        entry.keys, entry.values = tree_map(grow, (entry.keys, entry.values))


def cache_bits(cache: list[Any] | None) -> int | None:
    """The KV quantization a cache holds (None: full precision)."""
    for entry in cache or ():
        bits = getattr(entry, "bits", None)
        if bits is not None:
            return int(bits)
    return None


class SavedPromptCaches:
    """Conversation prompt caches on disk (mlx-lm's `save_prompt_cache` format plus our metadata).

    A file is trusted only when its conversation, model fingerprint and KV quantization match; anything that
    cannot be read (truncated, corrupt, another format) is logged, deleted and treated as absent, never raised.
    """

    def __init__(self, folder: SavedCacheFolder) -> None:
        self.folder = folder

    def save(
        self,
        conversation_id: str,
        model_key: str,
        tokens: list[int],
        cache: list[Any],
        kv_bits,
        prompt: PromptTokens | None = None,
    ) -> None:
        """Write atomically (a temporary file renamed over the old one), then evict down to the cap. `prompt`
        (the last prompt's text, whose tokens start `tokens`) is kept with it, so the follow-up after a restart
        tokenizes only its new text."""
        target = self.folder.file_for(conversation_id)
        partial = target.with_name(target.name[: -len(SUFFIX)] + ".partial" + SUFFIX)
        metadata = {
            "mlxchat_conversation": conversation_id,
            "mlxchat_model": model_key,
            "mlxchat_kv_bits": "" if kv_bits is None else str(kv_bits),
            "mlxchat_tokens": json.dumps(tokens),
        }
        if prompt is not None and prompt.text and list(prompt.tokens) == tokens[: len(prompt.tokens)]:
            metadata["mlxchat_prompt_text"] = prompt.text
            metadata["mlxchat_prompt_length"] = str(len(prompt.tokens))
        try:
            self.folder.root.mkdir(parents=True, exist_ok=True)
            save_prompt_cache(str(partial), used_part(cache), metadata)
            os.replace(partial, target)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("could not save the prompt cache of %s: %s", conversation_id, exc)
            partial.unlink(missing_ok=True)
            return
        self.folder.evict(keep=target)

    def load(
        self, conversation_id: str, model_key: str, kv_bits
    ) -> tuple[list[int], list[Any], PromptTokens] | None:
        """The saved tokens, cache and last prompt text of the conversation, or None when there is none it can
        trust."""
        path = self.folder.file_for(conversation_id)
        if not path.is_file():
            return None
        wanted = (conversation_id, model_key, "" if kv_bits is None else str(kv_bits))
        try:
            # The header first: a file saved for another model or quantization is not read (nor its arrays
            # evaluated), which for a long conversation is most of a second or more.
            if _saved_for(read_header_metadata(path)) != wanted:
                return None
            cache, metadata = load_prompt_cache(str(path), return_metadata=True)
            with_room(cache)
            mx.eval([entry.state for entry in cache])
            tokens = [int(token) for token in json.loads(metadata["mlxchat_tokens"])]
            saved_for = _saved_for(metadata)
            prompt = PromptTokens()
            length = int(metadata.get("mlxchat_prompt_length", 0))
            if 0 < length <= len(tokens):
                prompt = PromptTokens(metadata["mlxchat_prompt_text"], tuple(tokens[:length]))
        except Exception as exc:  # any unreadable file: a cache is an optimisation, never a reason to fail
            log.warning("ignoring the unreadable saved prompt cache %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return None
        if saved_for != wanted or _cache_length(cache) != len(tokens):
            return None
        self.folder.touch(path)
        return tokens, cache, prompt

    def prompt_of(self, conversation_id: str, model_key: str) -> PromptTokens | None:
        """The last prompt text saved with the conversation's cache, read from the file's header only (well under
        a millisecond: the arrays are not read), or None."""
        path = self.folder.file_for(conversation_id)
        try:
            metadata = read_header_metadata(path)
            if (metadata["mlxchat_conversation"], metadata["mlxchat_model"]) != (conversation_id, model_key):
                return None
            length = int(metadata.get("mlxchat_prompt_length", 0))
            tokens = json.loads(metadata["mlxchat_tokens"])
            if not 0 < length <= len(tokens):
                return None
            return PromptTokens(metadata["mlxchat_prompt_text"], tuple(int(token) for token in tokens[:length]))
        except Exception:  # absent or unreadable: the prompt is tokenized whole (`load` deals with the file)
            return None

    def delete(self, conversation_id: str) -> None:
        self.folder.delete(conversation_id)


_HEADER_LIMIT = 100 * 2**20
"""safetensors caps its header at 100 MB; a larger length field means the file is not one."""


def read_header_metadata(path) -> dict[str, str]:
    """Our metadata from a saved cache's safetensors header, without reading its arrays: an 8-byte little-endian
    length, then that many bytes of JSON whose "__metadata__" mlx-lm fills with `save_prompt_cache`'s flattened
    list (our keys read "0.mlxchat_model": the list's position is mlx-lm's, so it is not relied on). Raises on a
    file that is not one."""
    with open(path, "rb") as file:
        size = int.from_bytes(file.read(8), "little")
        if not 0 < size <= _HEADER_LIMIT:
            raise ValueError(f"not a safetensors header length: {size}")
        header = json.loads(file.read(size))
    flattened = header.get("__metadata__") or {}
    ours = (key.partition(".")[2] for key in flattened)
    return {name: value for name, value in zip(ours, flattened.values()) if name.startswith("mlxchat_")}


def _saved_for(metadata: dict[str, str]) -> tuple[str, str, str]:
    """What a saved cache was saved for: its conversation, model fingerprint and KV quantization."""
    return metadata["mlxchat_conversation"], metadata["mlxchat_model"], metadata["mlxchat_kv_bits"]


@dataclass
class ConversationCache:
    model: Any = None
    conversation_id: str | None = None
    tokens: list[int] = field(default_factory=list)
    cache: list[Any] | None = None
    kv_bits: int | None = None
    saved: SavedPromptCaches | None = None
    """Where finished turns are saved and resumed from; None keeps the cache in memory only."""
    model_key: str | None = None
    """The loaded model's fingerprint (`saved_caches.model_fingerprint`): a saved cache must match it."""
    unsaved: bool = False
    """A finished answer's cache waits to be saved (see `persist_later`)."""
    kept_on_disk: bool = True
    """Whether that answer's cache is saved, or its file deleted (`ChatRequest.save_cache`)."""
    saved_as: str | None = None
    """The name the conversation's cache is saved under on disk (the history's id when the client knows it), or
    None for its `conversation_id`."""
    prompt: PromptTokens = field(default_factory=PromptTokens)
    """The last long prompt's text and tokens, for the next prompt's tokenizing (`RememberingTokenizer`)."""
    route: str = "text"
    """Which route filled the cache. Text and vision turns never share one: a vision model keeps rotary-position
    state from its image prompt (Qwen-VL), which the text route's positions do not match."""

    def reset(self, model: Any = None, model_key: str | None = None) -> None:
        """Forget everything; the next turn prefills from scratch. Drops the KV arrays (their memory)."""
        self.model = model
        self.model_key = model_key
        self.conversation_id = None
        self.tokens = []
        self.cache = None
        self.unsaved = False
        self.prompt = PromptTokens()  # another model may tokenize another way

    def prepare(
        self,
        conversation_id: str,
        prompt: list[int],
        kv_bits: int | None = None,
        route: str = "text",
        saved_as: str | None = None,
    ) -> Reuse:
        """Return a cache holding the longest reusable prefix of `prompt` (always leaving one token to run).

        A change of `kv_bits` or of route starts over: a cache quantized one way cannot serve a turn that asks
        another. Without a usable cache in memory, a text turn tries the conversation's saved cache, found under
        `saved_as` (the name it is saved under; None: the conversation id).
        """
        self.saved_as = saved_as
        stale = conversation_id != self.conversation_id or kv_bits != self.kv_bits or route != self.route
        if self.cache is None or stale:
            if route != "text" or not self._resume_saved(conversation_id, kv_bits):
                return self._fresh(conversation_id, kv_bits, route)
        keep = min(common_prefix_length(self.tokens, prompt), len(prompt) - 1)
        surplus = len(self.tokens) - keep
        if surplus > 0:
            if not can_trim_prompt_cache(self.cache):
                return self._fresh(conversation_id, kv_bits, route)
            trim_prompt_cache(self.cache, surplus)
            self.tokens = self.tokens[:keep]
        return Reuse(self.cache, keep)

    def prompt_for(self, conversation_id: str, saved_as: str | None = None) -> PromptTokens:
        """What the conversation's next prompt is tokenized against (`RememberingTokenizer`): the last prompt
        remembered, or, when the cache in memory is another conversation's, the one saved with its cache (read
        from the file's header before the turn reads the file)."""
        if conversation_id != self.conversation_id and self.saved is not None and self.model_key is not None:
            saved = self.saved.prompt_of(saved_as or conversation_id, self.model_key)
            if saved is not None:
                self.prompt = saved
        return self.prompt

    def preload(self, conversation_id: str, kv_bits: int | None = None, saved_as: str | None = None) -> int:
        """Read the conversation's saved cache into memory ahead of its next turn (a `PrepareConversation`
        hint); returns how many tokens it holds. A cache already in memory for it is kept (an image chat's
        too, which is never saved); otherwise what is in memory is replaced, as the conversation's own next
        turn would replace it (finished answers are saved before a hint runs, so nothing is lost). The next
        `prepare` finds it in memory."""
        if self.cache is not None and (conversation_id, kv_bits) == (self.conversation_id, self.kv_bits):
            return len(self.tokens)
        self.saved_as = saved_as
        return len(self.tokens) if self._resume_saved(conversation_id, kv_bits) else 0

    def record(self, tokens_fed: list[int]) -> None:
        """After a turn: note which tokens the KV state now holds.

        `tokens_fed` is every token the model may have seen (prompt + generated); the cache's own length says
        how many of them it really holds (the last sampled token is never fed back).
        """
        held = self._cache_length()
        if held is None:
            # A cache that cannot say its length cannot be reused safely.
            self.cache = None
            self.tokens = []
            return
        self.tokens = list(tokens_fed[:held])

    def persist_later(self, on_disk: bool = True) -> None:
        """Mark the cache to be saved once the answer's `Finished` is out (`persist`): writing a long
        conversation's cache takes a moment, which the person should spend reading, not waiting. With `on_disk`
        False (`ChatRequest.save_cache`), `persist` deletes the file saved under its name instead."""
        self.unsaved = True
        self.kept_on_disk = on_disk

    def persist(self) -> None:
        """Save the conversation's cache to disk if a finished text answer left it unsaved (saving must be on)."""
        unsaved, self.unsaved = self.unsaved, False
        if not unsaved or self.saved is None or self.cache is None or not self.tokens or self.model_key is None:
            return
        if self.route != "text":
            return
        name = self.saved_as or self.conversation_id
        if not self.kept_on_disk:
            self.saved.delete(name)
            return
        self.saved.save(name, self.model_key, self.tokens, self.cache, self.kv_bits, prompt=self.prompt)
        if name != self.conversation_id:  # saved under the session's id before the history named it: not kept
            self.saved.delete(self.conversation_id)

    def _resume_saved(self, conversation_id: str, kv_bits: int | None) -> bool:
        if self.saved is None or self.model_key is None:
            return False
        found = self.saved.load(self.saved_as or conversation_id, self.model_key, kv_bits)
        if found is None:
            return False
        self.tokens, self.cache, prompt = found
        if prompt.text:
            self.prompt = prompt
        self.conversation_id, self.kv_bits, self.route = conversation_id, kv_bits, "text"
        return True

    def invalidate(self) -> None:
        """The KV state no longer matches `tokens` (an error mid-step, a vision turn): start over next time."""
        self.cache = None
        self.tokens = []
        self.unsaved = False

    def fresh(self, conversation_id: str, kv_bits: int | None = None, route: str = "text") -> Reuse:
        """An empty cache for the conversation, whatever is in memory or saved (a prompt the cache cannot serve)."""
        return self._fresh(conversation_id, kv_bits, route)

    def _fresh(self, conversation_id: str, kv_bits: int | None = None, route: str = "text") -> Reuse:
        self.conversation_id = conversation_id
        self.kv_bits = kv_bits
        self.route = route
        self.tokens = []
        self.cache = make_prompt_cache(self.model)
        return Reuse(self.cache, 0)

    def _cache_length(self) -> int | None:
        return _cache_length(self.cache)


def _cache_length(cache: list[Any] | None) -> int | None:
    """How many tokens a cache holds, or None when it cannot say."""
    if not cache:
        return None
    offset = getattr(cache[0], "offset", None)
    return offset if isinstance(offset, int) else None
