"""Provides `StoreError` and the wording of the failures behind it (read-only or full folder, damaged file)."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Literal

StoreErrorKind = Literal["read-only", "full", "locked", "corrupt", "newer-schema", "not-found", "other"]


class StoreError(Exception):
    """Saving or reading history failed. `str(error)` is one line fit for the user: what failed, where, and why.

    `kind` lets a caller react without parsing text: "read-only" and "full" (the data folder cannot take the
    write), "corrupt" (the file is not a readable history database), "newer-schema" (written by a newer
    mlxchat), "not-found" (no such conversation or message), "locked" (another program held the database's lock
    past the wait: try again later), "other". After a failed write the database is as
    it was before it, and the caller's own objects are untouched: keep them on screen and save them again later.
    """

    def __init__(self, message: str, kind: StoreErrorKind = "other") -> None:
        super().__init__(message)
        self.kind: StoreErrorKind = kind


def store_error(exc: BaseException, action: str, path: Path) -> StoreError:
    """One line that says what could not be done, where, and why, in words a user can act on."""
    text = str(exc).lower()
    os_code = exc.errno if isinstance(exc, OSError) else None
    sqlite_code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # primary code of an extended one
    folder = path.parent if path.suffix else path
    if sqlite_code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in text:
        return StoreError(
            f"Cannot {action}: another program (another mlxchat window?) kept the history in {folder} locked "
            f"({exc}).",
            "locked",
        )
    if os_code == errno.ENOSPC or sqlite_code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return StoreError(f"Cannot {action}: the disk holding {folder} is full ({exc}).", "full")
    if (
        os_code in (errno.EACCES, errno.EROFS, errno.EPERM)
        or sqlite_code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM)
        or "readonly" in text
    ):
        return StoreError(f"Cannot {action}: {folder} is read-only or not writable ({exc}).", "read-only")
    if "unable to open" in text and not writable(path):
        return StoreError(f"Cannot {action}: {folder} is read-only or not writable ({exc}).", "read-only")
    if isinstance(exc, (NotADirectoryError, FileExistsError)) or "unable to open" in text:
        return StoreError(f"Cannot {action}: {folder} cannot be created or opened ({exc}).", "read-only")
    if "not a database" in text or "malformed" in text:
        return StoreError(
            f"Cannot {action}: {path} is damaged or not an mlxchat history ({exc}). Move it aside to start afresh.",
            "corrupt",
        )
    return StoreError(f"Cannot {action} ({path}): {exc}", "other")


def writable(path: Path) -> bool:
    """Whether `path`, or the nearest folder above it that exists, can be written (a read-only mount says no,
    even to root)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return os.access(path, os.W_OK)
