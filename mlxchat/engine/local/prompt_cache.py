"""Provides the prompt cache kept across the turns of one conversation.

On this project's target machines prefill is often as slow as decode, so re-reading a long conversation each
turn would make every follow-up slower than the last. The cache remembers which tokens its KV state holds;
the next turn reuses the longest common prefix and prefills only the rest. A different conversation, or an
edit of earlier history, trims or resets it.

With a `SavedPromptCaches`, each conversation's cache is also written to disk when an answer finishes, keyed by
conversation, model fingerprint and the exact tokens it holds, so switching back to a conversation, or resuming
one after a restart, starts from it. An edit of earlier history needs no special case: only the prefix the saved
tokens share with the new prompt is reused, and the rest is trimmed. When the tokens already on disk start the
cache's tokens, only the new positions are written, as a segment file beside the base (`saved_prompt_caches`).
Runs on the engine's owner thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

from .prompt_tokens import PromptTokens
from .saved_prompt_caches import (  # noqa: F401 (re-exported: callers and tests import them from here)
    SavedPromptCaches,
    _cache_length,
    common_prefix_length,
    read_header_metadata,
    used_part,
    with_room,
)


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


def cache_bits(cache: list[Any] | None) -> int | None:
    """The KV quantization a cache holds (None: full precision)."""
    for entry in cache or ():
        bits = getattr(entry, "bits", None)
        if bits is not None:
            return int(bits)
    return None


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
        how many of them it really holds (a first token that ended the answer was never fed back). It may also
        hold more: mlx-lm's `generate_step` feeds each token before handing it out, so an answer that ended at
        the end-of-sequence token (which the generated tokens leave out) left it in the cache. That surplus is
        trimmed off, or the next turn's tokens would be written after it, one position late.
        """
        held = self._cache_length()
        surplus = 0 if held is None else held - len(tokens_fed)
        if held is None or (surplus > 0 and not can_trim_prompt_cache(self.cache)):
            # A cache that cannot say (or be cut to) what it holds cannot be reused safely.
            self.cache = None
            self.tokens = []
            return
        if surplus > 0:
            trim_prompt_cache(self.cache, surplus)
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


