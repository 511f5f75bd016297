"""Provides content-addressed copies of attached images under `<data_dir>/attachments/`.

A file is stored once per content, as `ab/abcdef….png` (its SHA-256, keeping the original suffix so image
readers that look at names still work). The copy is written to a temporary name, synced and renamed into place
before the database row that names it is committed, so a crash never leaves a row pointing at a half file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    suffix: str
    size_bytes: int


class AttachmentFolder:
    """The folder of stored copies. Nothing is created until the first `put`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, suffix: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, source: Path) -> StoredBlob:
        """Copy `source` in (once per content). Raises OSError (the caller words it)."""
        data = Path(source).read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        suffix = _clean_suffix(Path(source).suffix)
        target = self.path_for(sha256, suffix)
        if not (target.is_file() and target.stat().st_size == len(data)):
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                with open(temporary, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
        return StoredBlob(sha256, suffix, len(data))

    def remove(self, sha256: str, suffix: str) -> None:
        """Delete a stored copy nothing refers to any more (best effort: a leftover file harms nothing)."""
        try:
            self.path_for(sha256, suffix).unlink(missing_ok=True)
        except OSError:
            pass


def _clean_suffix(suffix: str) -> str:
    suffix = suffix.lower()
    return suffix if len(suffix) <= 10 and suffix[1:].isalnum() else ""
