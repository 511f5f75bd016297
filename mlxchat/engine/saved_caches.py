"""Provides the folder of prompt caches saved on disk: where each conversation's file lives, the size cap with
least-recently-used eviction, deletion, and the model fingerprint a saved cache must match.

A saved cache lets a long conversation resume after a restart without reading its whole history again (minutes
on a laptop's CPU). A conversation's cache is one unit of files: a base file and up to `MAX_SEGMENTS` segment
files (`<digest>.<n>.safetensors`, each holding only what a later answer added), deleted, touched and evicted
together. This module only manages files and never imports MLX, so the history store can delete a
conversation's cache and tests can check eviction with plain files; the MLX side (`local/prompt_cache.py`)
writes and reads them on the engine's owner thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlxchat import paths

log = logging.getLogger(__name__)

DEFAULT_CAP_BYTES = 4 * 2**30
SUFFIX = ".safetensors"
MAX_SEGMENTS = 8
"""Segments a conversation's cache may have before the next save rewrites it whole (a compaction): each one is
another file to open and another part to join on a resume."""
STALE_PARTIAL_AGE_S = 3600.0
"""How long a temporary `.partial` file may go unmodified before eviction counts it as left over from an
interrupted save and deletes it. Younger ones may be another mlxchat process's save in progress (its rename
would fail if the file vanished); a save writes its file in one go, seconds even for gigabytes, so an hour
without a write means nobody is writing it. Young ones are neither deleted nor counted toward the cap: each
becomes a unit's file on its rename, and the process that renames it evicts then."""


def default_folder() -> Path:
    """The user's cache folder for saved prompt caches (rebuildable, so under the cache dir, not the data dir)."""
    return paths.cache_dir() / "prompt-caches"


@dataclass(frozen=True)
class SavedCacheFolder:
    """The folder of saved prompt caches, one unit of files per conversation, at most `cap_bytes` in all."""

    root: Path
    cap_bytes: int = DEFAULT_CAP_BYTES

    def file_for(self, conversation_id: str) -> Path:
        """The conversation's base file. Hashed, so any id (slashes, dots) makes one safe file name."""
        digest = hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:32]
        return self.root / f"{digest}{SUFFIX}"

    def segment_for(self, conversation_id: str, number: int) -> Path:
        """The conversation's `number`th segment file (from 1), beside its base file."""
        return self.root / f"{_unit(self.file_for(conversation_id))}.{number}{SUFFIX}"

    def files_of(self, conversation_id: str) -> list[Path]:
        """Every file of the conversation's unit that exists: the base, its segments, leftover temporaries."""
        unit = _unit(self.file_for(conversation_id))
        try:
            return sorted(entry for entry in self.root.glob(unit + ".*") if _unit(entry) == unit)
        except OSError:
            return []

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation's saved cache, base and segments (the conversation was deleted). Missing is
        fine."""
        for path in self.files_of(conversation_id):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not delete the saved prompt cache of %s: %s", conversation_id, exc)

    def touch(self, path: Path) -> None:
        """Mark a file (and so its unit) as just used: eviction goes by a unit's last use (its newest file's
        modification time)."""
        try:
            os.utime(path)
        except OSError:
            pass

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used units (a base file with its segments) until the folder is within its
        cap; the unit of `keep` (the file just written) goes last. Temporary files left over from an interrupted
        save (unmodified for `STALE_PARTIAL_AGE_S`) go first; younger ones, perhaps another process's save in
        progress, are left alone and not counted. Returns what was removed."""
        try:
            entries = [entry for entry in self.root.iterdir() if entry.is_file()]
        except OSError:
            return []
        stale_before = time.time() - STALE_PARTIAL_AGE_S
        removed: list[Path] = []
        units: dict[str, list] = {}
        for entry in entries:
            try:
                status = entry.stat()
            except OSError:
                continue
            if entry.name.endswith(".partial" + SUFFIX):
                if status.st_mtime < stale_before:
                    removed.append(entry)
                continue
            unit = units.setdefault(_unit(entry), [False, 0.0, 0, []])
            unit[0] = unit[0] or (keep is not None and _unit(entry) == _unit(keep))
            unit[1] = max(unit[1], status.st_mtime)
            unit[2] += status.st_size
            unit[3].append(entry)
        ordered = sorted(units.values(), key=lambda unit: (unit[0], unit[1], sorted(unit[3])))
        total = sum(unit[2] for unit in ordered)
        for _, _, size, files in ordered:
            if total <= self.cap_bytes:
                break
            removed.extend(sorted(files))
            total -= size
        for entry in removed:
            try:
                entry.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not evict the saved prompt cache %s: %s", entry, exc)
        return removed


def _unit(path: Path) -> str:
    """The conversation a saved-cache file belongs to: the digest its name starts with."""
    return path.name.split(".", 1)[0]


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
