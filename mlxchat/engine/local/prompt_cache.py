"""Provides the prompt cache kept across the turns of one conversation.

On this project's target machines prefill is often as slow as decode, so re-reading a long conversation each
turn would make every follow-up slower than the last. The cache remembers which tokens its KV state holds;
the next turn reuses the longest common prefix and prefills only the rest. A different conversation, or an
edit of earlier history, trims or resets it. Runs on the engine's owner thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache


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


def quantize_cache(cache: list[Any], bits: int | None) -> None:
    """Turn the full-precision layers of `cache` into mlx-lm's quantized KV cache, in place (the list is shared
    with whoever holds it). Called after every prefill chunk, so a long prompt never holds a full-precision copy
    of more than one chunk. The group size follows the head size (64 where it divides it, else 32; heads too small for either stay
    at full precision)."""
    if bits is None:
        return
    for index, entry in enumerate(cache):
        keys = getattr(entry, "keys", None)
        if not hasattr(entry, "to_quantized") or getattr(entry, "bits", None) is not None or keys is None:
            continue
        head_size = keys.shape[-1]
        group = next((size for size in (64, 32) if head_size % size == 0), None)
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

    def reset(self, model: Any = None) -> None:
        """Forget everything; the next turn prefills from scratch. Drops the KV arrays (their memory)."""
        self.model = model
        self.conversation_id = None
        self.tokens = []
        self.cache = None

    def prepare(self, conversation_id: str, prompt: list[int], kv_bits: int | None = None) -> Reuse:
        """Return a cache holding the longest reusable prefix of `prompt` (always leaving one token to run).

        A change of `kv_bits` starts over: a cache quantized one way cannot serve a turn that asks another.
        """
        if self.cache is None or conversation_id != self.conversation_id or kv_bits != self.kv_bits:
            return self._fresh(conversation_id, kv_bits)
        keep = min(common_prefix_length(self.tokens, prompt), len(prompt) - 1)
        surplus = len(self.tokens) - keep
        if surplus > 0:
            if not can_trim_prompt_cache(self.cache):
                return self._fresh(conversation_id, kv_bits)
            trim_prompt_cache(self.cache, surplus)
            self.tokens = self.tokens[:keep]
        return Reuse(self.cache, keep)

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

    def invalidate(self) -> None:
        """The KV state no longer matches `tokens` (an error mid-step, a vision turn): start over next time."""
        self.cache = None
        self.tokens = []

    def _fresh(self, conversation_id: str, kv_bits: int | None = None) -> Reuse:
        self.conversation_id = conversation_id
        self.kv_bits = kv_bits
        self.tokens = []
        self.cache = make_prompt_cache(self.model)
        return Reuse(self.cache, 0)

    def _cache_length(self) -> int | None:
        if not self.cache:
            return None
        first = self.cache[0]
        offset = getattr(first, "offset", None)
        if isinstance(offset, int):
            return offset
        return None
