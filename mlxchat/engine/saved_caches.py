"""Provides the folder of prompt caches saved on disk: where each conversation's file lives, the size cap with
least-recently-used eviction, deletion, and the model fingerprint a saved cache must match.

A saved cache lets a long conversation resume after a restart without reading its whole history again (minutes
on a laptop's CPU). This module only manages files and never imports MLX, so the history store can delete a
conversation's cache and tests can check eviction with plain files; the MLX side (`local/prompt_cache.py`)
writes and reads them on the engine's owner thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mlxchat import paths

log = logging.getLogger(__name__)

DEFAULT_CAP_BYTES = 4 * 2**30
SUFFIX = ".safetensors"


def default_folder() -> Path:
    """The user's cache folder for saved prompt caches (rebuildable, so under the cache dir, not the data dir)."""
    return paths.cache_dir() / "prompt-caches"


@dataclass(frozen=True)
class SavedCacheFolder:
    """The folder of saved prompt caches, one file per conversation, at most `cap_bytes` in all."""

    root: Path
    cap_bytes: int = DEFAULT_CAP_BYTES

    def file_for(self, conversation_id: str) -> Path:
        """The conversation's file. Hashed, so any id (slashes, dots) makes one safe file name."""
        digest = hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:32]
        return self.root / f"{digest}{SUFFIX}"

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation's saved cache (the conversation was deleted). Missing is fine."""
        try:
            self.file_for(conversation_id).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete the saved prompt cache of %s: %s", conversation_id, exc)

    def touch(self, path: Path) -> None:
        """Mark a file as just used: eviction goes by last use (the file's modification time)."""
        try:
            os.utime(path)
        except OSError:
            pass

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used files until the folder is within its cap; `keep` (the file just
        written) goes last. Leftover temporary files from an interrupted save go first. Returns what was removed."""
        try:
            entries = [entry for entry in self.root.iterdir() if entry.is_file()]
        except OSError:
            return []
        removed = []
        for entry in entries:
            if entry.name.endswith(".partial" + SUFFIX):
                removed.append(entry)
        sized = []
        for entry in entries:
            if entry in removed:
                continue
            try:
                status = entry.stat()
            except OSError:
                continue
            sized.append((entry == keep, status.st_mtime, status.st_size, entry))
        sized.sort()
        total = sum(size for _, _, size, _ in sized)
        for _, _, size, entry in sized:
            if total <= self.cap_bytes:
                break
            removed.append(entry)
            total -= size
        for entry in removed:
            try:
                entry.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not evict the saved prompt cache %s: %s", entry, exc)
        return removed


def delete_saved_cache(conversation_id: str) -> None:
    """Delete a conversation's saved prompt cache from the default folder (the history store calls this)."""
    SavedCacheFolder(default_folder()).delete(conversation_id)


def model_fingerprint(model_path: str | Path) -> str:
    """What a saved cache must match to be trusted: the model folder and the size and modification time of its
    config and weight files. A different model, or the same folder with new weights, gives a different print."""
    folder = Path(model_path)
    parts = [str(folder.resolve()) if folder.exists() else str(folder)]
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".safetensors", ".gguf"))
    except OSError:
        files = []
    for file in files:
        try:
            status = file.stat()
        except OSError:
            continue
        parts.append(f"{file.name}:{status.st_size}:{status.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
