"""Provides the conversation prompt caches saved on disk: writing a finished answer's cache (the whole file, or a
segment of only its new positions), reading one back (the base and the segments that continue it, joined and
padded), and the header check that refuses one saved for another model or KV quantization.

The files are mlx-lm's `save_prompt_cache` format plus our metadata; `saved_caches.SavedCacheFolder` manages where
they live, their size cap and eviction, without MLX. Runs on the engine's owner thread only (MLX arrays).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from array import array
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import KVCache, QuantizedKVCache, load_prompt_cache, save_prompt_cache

from ..saved_caches import MAX_SEGMENTS, SUFFIX, SavedCacheFolder
from .prompt_tokens import PromptTokens

log = logging.getLogger(__name__)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


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
    for entry in cache:
        if _appendable(entry):
            join_with_room([entry])


def join_with_room(parts: list[Any]) -> Any:
    """One layer read back from a base file and its segments, in order, as the first part with each array joined
    in one concatenate that also makes the room `with_room` explains (the zeros are its last piece). Returns
    the first part, changed in place."""
    from mlx.utils import tree_map

    first = parts[0]
    total = sum(part.offset for part in parts)
    size = total + first.step
    if size % first.step == 0:
        size -= 1

    def join(*arrays):
        pieces = [array[..., : part.offset, :] for array, part in zip(arrays, parts)]
        room = mx.zeros((*arrays[0].shape[:-2], size - total, arrays[0].shape[-1]), arrays[0].dtype)
        return mx.concatenate([*pieces, room], axis=-2)

    first.keys, first.values = tree_map(join, (first.keys, first.values), *[(p.keys, p.values) for p in parts[1:]])
    first.offset = total
    return first


def _appendable(entry: Any) -> bool:
    """Whether a layer is a plain or quantized KV cache holding keys: one whose positions only ever grow at the
    end, so a saved copy of its first positions stays valid (a rotating window's does not)."""
    return type(entry) in (KVCache, QuantizedKVCache) and entry.keys is not None


def segment_of(cache: list[Any], start: int) -> list[Any]:
    """The positions [start:offset] of each layer, as caches of the same kinds (views until saved)."""
    from mlx.utils import tree_map

    part = []
    for entry in cache:
        state = entry.state
        keys, values = tree_map(lambda array: array[..., start : entry.offset, :], (state[0], state[1]))
        part.append(type(entry).from_state((keys, values, entry.offset - start, *state[3:])))
    return part


def token_digest(tokens: list[int]) -> str:
    """A short fingerprint of a token prefix, which a segment must continue (a millisecond at 10,000 tokens)."""
    return hashlib.sha256(array("q", tokens).tobytes()).hexdigest()[:32]


@dataclass
class _OnDisk:
    """What this process last wrote or read for a conversation: for whom, which tokens, and each file's size and
    modification time (a file changed or evicted since, by this process or another, means a whole rewrite)."""

    model_key: str
    kv_bits: str
    tokens: list[int]
    files: list[tuple[Any, int, int]]


def _stamp(path) -> tuple[Any, int, int]:
    status = os.stat(path)
    return path, status.st_size, status.st_mtime_ns


class SavedPromptCaches:
    """Conversation prompt caches on disk (mlx-lm's `save_prompt_cache` format plus our metadata).

    A file is trusted only when its conversation, model fingerprint and KV quantization match; anything that
    cannot be read (truncated, corrupt, another format) is logged, deleted and treated as absent, never raised.

    Rewriting a conversation's whole cache after every answer costs time proportional to the conversation (354-392
    ms at 9,400 tokens on an H200, on the owner thread, which a message sent meanwhile waits for). So when most of
    the tokens on disk start the cache's tokens, only the positions after them are written, as a segment file with
    its start and a digest of the prefix it continues (`_continues` says when); after `MAX_SEGMENTS` the next save
    rewrites whole. A read joins the base and each segment that continues it, cut where the segment starts, and
    stops at the first that does not (or cannot be read): the longest valid prefix, which is all a cache needs.
    """

    def __init__(self, folder: SavedCacheFolder) -> None:
        self.folder = folder
        self._on_disk: dict[str, _OnDisk] = {}

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
        tokenizes only its new text. Only the new positions are written when most of what is on disk starts
        `tokens` (see the class); otherwise the base is rewritten and the segments deleted."""
        bits = "" if kv_bits is None else str(kv_bits)
        known = self._on_disk.pop(conversation_id, None)
        metadata = {"mlxchat_conversation": conversation_id, "mlxchat_model": model_key, "mlxchat_kv_bits": bits}
        if prompt is not None and prompt.text and list(prompt.tokens) == tokens[: len(prompt.tokens)]:
            metadata["mlxchat_prompt_text"] = prompt.text
            metadata["mlxchat_prompt_length"] = str(len(prompt.tokens))
        start = self._continues(known, model_key, bits, tokens, cache) if known is not None else None
        if start is not None:
            target = self.folder.segment_for(conversation_id, len(known.files))
            metadata.update(mlxchat_start=str(start), mlxchat_prefix=token_digest(tokens[:start]),
                            mlxchat_tokens=json.dumps(tokens[start:]))
            arrays, files = segment_of(cache, start), known.files
        else:
            target = self.folder.file_for(conversation_id)
            for path in self.folder.files_of(conversation_id):  # first, so no stale segment outlives its base
                if path != target:
                    path.unlink(missing_ok=True)
            metadata["mlxchat_tokens"] = json.dumps(tokens)
            arrays, files = used_part(cache), []
        partial = target.with_name(target.name[: -len(SUFFIX)] + ".partial" + SUFFIX)
        try:
            self.folder.root.mkdir(parents=True, exist_ok=True)
            save_prompt_cache(str(partial), arrays, metadata)
            os.replace(partial, target)
            self._on_disk[conversation_id] = _OnDisk(model_key, bits, list(tokens), [*files, _stamp(target)])
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("could not save the prompt cache of %s: %s", conversation_id, exc)
            partial.unlink(missing_ok=True)
            return
        self.folder.evict(keep=target)

    @staticmethod
    def _continues(known: _OnDisk, model_key: str, bits: str, tokens: list[int], cache: list[Any]) -> int | None:
        """Where a segment of `tokens` would start, or None for a whole rewrite. A segment starts where `tokens`
        leave what is on disk: its end when they extend it, or earlier when the turn re-read the end differently
        (the last answer re-tokenized otherwise, its thinking dropped by the template). A whole rewrite instead
        when less than half the cache would be kept (an edit early in the history, a moved window: the superseded
        positions would stay on disk until the next compaction), for another model or quantization, after
        `MAX_SEGMENTS` segments, for a cache with layers that do not only grow at the end, or when the files are
        not as this process left them."""
        if (known.model_key, known.kv_bits) != (model_key, bits) or len(known.files) > MAX_SEGMENTS:
            return None
        start = common_prefix_length(known.tokens, tokens)
        if not 0 < start < len(tokens) == _cache_length(cache) or 2 * start < len(tokens):
            return None
        if not all(_appendable(entry) for entry in cache):
            return None
        try:
            unchanged = all(_stamp(path) == (path, size, mtime) for path, size, mtime in known.files)
        except OSError:
            return None
        return start if unchanged else None

    def load(
        self, conversation_id: str, model_key: str, kv_bits
    ) -> tuple[list[int], list[Any], PromptTokens] | None:
        """The saved tokens, cache and last prompt text of the conversation (its base file and the segments that
        continue it), or None when there is none it can trust."""
        path = self.folder.file_for(conversation_id)
        if not path.is_file():
            return None
        wanted = (conversation_id, model_key, "" if kv_bits is None else str(kv_bits))
        try:
            # The header first: a file saved for another model or quantization is not read (nor its arrays
            # evaluated), which for a long conversation is most of a second or more.
            if _saved_for(read_header_metadata(path)) != wanted:
                return None
            files = [path]
            cache, metadata = load_prompt_cache(str(path), return_metadata=True)
            tokens = [int(token) for token in json.loads(metadata["mlxchat_tokens"])]
            saved_for = _saved_for(metadata)
            if saved_for != wanted or _cache_length(cache) != len(tokens):
                return None
            prompt = _prompt(metadata, tokens)
            parts = [[entry] for entry in cache]
            if all(_appendable(entry) for entry in cache):
                for number in range(1, MAX_SEGMENTS + 1):
                    segment = self._segment(conversation_id, number, wanted, tokens, cache)
                    if segment is None:
                        break
                    segment_cache, segment_metadata, segment_path = segment
                    start = int(segment_metadata["mlxchat_start"])
                    for layer, entry in zip(parts, segment_cache):
                        layer[:] = [*_cut(layer, start), entry]
                    tokens = tokens[:start] + [int(token) for token in json.loads(segment_metadata["mlxchat_tokens"])]
                    if "mlxchat_prompt_length" in segment_metadata:
                        prompt = _prompt(segment_metadata, tokens)
                    files.append(segment_path)
                cache = [join_with_room(layer) for layer in parts]
            else:  # a rotating window among the layers: never segmented; the plain layers still get room
                with_room(cache)
            mx.eval([entry.state for entry in cache])
        except Exception as exc:  # any unreadable file: a cache is an optimisation, never a reason to fail
            log.warning("ignoring the unreadable saved prompt cache %s: %s", path, exc)
            self.delete(conversation_id)
            return None
        self.folder.touch(path)
        try:
            self._on_disk[conversation_id] = _OnDisk(model_key, wanted[2], list(tokens), [_stamp(f) for f in files])
        except OSError:  # evicted meanwhile (another process): the next save writes whole
            pass
        return tokens, cache, prompt

    def _segment(self, conversation_id: str, number: int, wanted, tokens: list[int], base: list[Any]):
        """The conversation's `number`th segment as (cache, metadata, path) when it continues `tokens`, else None;
        one that does not, or cannot be read, is deleted with those after it (logged when unreadable)."""
        path = self.folder.segment_for(conversation_id, number)
        if not path.is_file():
            return None
        try:
            header = read_header_metadata(path)
            start = int(header["mlxchat_start"])
            if 0 < start <= len(tokens) and (_saved_for(header), header["mlxchat_prefix"]) == (
                wanted, token_digest(tokens[:start])
            ):
                cache, metadata = load_prompt_cache(str(path), return_metadata=True)
                added = json.loads(metadata["mlxchat_tokens"])
                mx.eval([entry.state for entry in cache])
                if (
                    added
                    and [type(entry) for entry in cache] == [type(entry) for entry in base]
                    and all(entry.offset == len(added) for entry in cache)
                ):
                    return cache, metadata, path
        except Exception as exc:  # truncated or corrupt: the base and the segments before it still serve
            log.warning("ignoring the unreadable saved prompt cache segment %s: %s", path, exc)
        for later in range(number, MAX_SEGMENTS + 1):
            self.folder.segment_for(conversation_id, later).unlink(missing_ok=True)
        return None

    def prompt_of(self, conversation_id: str, model_key: str) -> PromptTokens | None:
        """The last prompt text saved with the conversation's cache, read from the file headers only (well under
        a millisecond per file: the arrays are not read), or None."""
        try:
            metadata = read_header_metadata(self.folder.file_for(conversation_id))
            if (metadata["mlxchat_conversation"], metadata["mlxchat_model"]) != (conversation_id, model_key):
                return None
            tokens = [int(token) for token in json.loads(metadata["mlxchat_tokens"])]
            prompt = _prompt(metadata, tokens)
            for number in range(1, MAX_SEGMENTS + 1):
                try:
                    header = read_header_metadata(self.folder.segment_for(conversation_id, number))
                    start = int(header["mlxchat_start"])
                    if not 0 < start <= len(tokens) or header["mlxchat_prefix"] != token_digest(tokens[:start]):
                        break
                    tokens = tokens[:start] + [int(token) for token in json.loads(header["mlxchat_tokens"])]
                except Exception:  # absent or unreadable: the prompt of the segments before it
                    break
                if "mlxchat_prompt_length" in header:
                    prompt = _prompt(header, tokens)
            return prompt if prompt.text else None
        except Exception:  # absent or unreadable: the prompt is tokenized whole (`load` deals with the file)
            return None

    def delete(self, conversation_id: str) -> None:
        """Delete the conversation's base file and segments."""
        self._on_disk.pop(conversation_id, None)
        self.folder.delete(conversation_id)


def _cut(parts: list[Any], length: int) -> list[Any]:
    """The parts of one layer holding only its first `length` positions (a later segment starts there)."""
    kept = []
    for part in parts:
        if length <= 0:
            break
        part.offset = min(part.offset, length)
        length -= part.offset
        kept.append(part)
    return kept


def _prompt(metadata: dict[str, str], tokens: list[int]) -> PromptTokens:
    """The last prompt saved in a file's metadata (its tokens start `tokens`), or an empty one."""
    length = int(metadata.get("mlxchat_prompt_length", 0))
    if 0 < length <= len(tokens):
        return PromptTokens(metadata["mlxchat_prompt_text"], tuple(tokens[:length]))
    return PromptTokens()


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



def _cache_length(cache: list[Any] | None) -> int | None:
    """How many tokens a cache holds, or None when it cannot say."""
    if not cache:
        return None
    offset = getattr(cache[0], "offset", None)
    return offset if isinstance(offset, int) else None
