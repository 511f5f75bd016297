"""Provides drag-and-drop path detection: which image paths a paste (or a typed prompt) starts with.

Dropping a file on a terminal pastes its path, written the way that terminal likes: plain, quoted, with
backslash-escaped spaces, as a percent-encoded `file://` URL, several at once, sometimes followed by a space or
by the text the user goes on to type. macOS screenshot names hold U+202F (narrow no-break space) before "AM"/"PM",
which must not split a path, so only ASCII whitespace separates words here.

Only a *leading* run of paths is taken, so "explain /etc/hosts" stays text. A word counts as a path when it looks
like one (has a slash, starts with `~` or is a `file://` URL) and either names an image by its extension or
exists. An existing file without an image extension counts only when the whole text is paths (a dropped PDF gets
a clear "not an image" message; "/usr/bin/python script.py" stays text). An unquoted path with plain spaces is
found by joining words while the joined path exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

from mlxchat.engine.documents import IMAGE_SUFFIXES  # one list of image names (light: no MLX)

_SPLIT = " \t\r\n"
_MAX_JOINED_WORDS = 12  # a file name with more plain spaces than this must be quoted or escaped


@dataclass(frozen=True)
class Word:
    """One shell-like word: its unescaped `value`, where it sits in the text, and whether it was quoted."""

    value: str
    start: int
    end: int
    quoted: bool = False


@dataclass(frozen=True)
class FoundPaths:
    """The paths a text starts with, each with the text it was written as, and the text after them."""

    paths: tuple[Path, ...]
    sources: tuple[str, ...]
    rest: str

    def __bool__(self) -> bool:
        return bool(self.paths)


def split_words(text: str) -> list[Word]:
    """Split like a POSIX shell: quotes group, backslash escapes the next character (outside single quotes).

    An unclosed quote runs to the end of the text, as a half-finished paste should not lose characters.
    """
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in _SPLIT:
            i += 1
            continue
        start, chars, quoted, quote = i, [], False, None
        while i < n and (quote or text[i] not in _SPLIT):
            char = text[i]
            if quote:
                if char == quote:
                    quote = None
                elif char == "\\" and quote == '"' and i + 1 < n and text[i + 1] in '"\\$`':
                    i += 1
                    chars.append(text[i])
                else:
                    chars.append(char)
            elif char in "'\"":
                quote, quoted = char, True
            elif char == "\\" and i + 1 < n:
                i += 1
                chars.append(text[i])
            else:
                chars.append(char)
            i += 1
        words.append(Word("".join(chars), start, i, quoted))
    return words


def to_path(value: str) -> Path | None:
    """The path a word names, or None when it does not look like a path at all."""
    if value.startswith("file://"):
        parsed = urlparse(value)
        if parsed.netloc not in ("", "localhost"):
            return None
        return Path(unquote(parsed.path)) if parsed.path else None
    if value.startswith("~"):
        return Path(os.path.expanduser(value))
    if "/" in value:
        return Path(value)
    return None


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def find_paths(text: str, *, exists: Callable[[Path], bool] = Path.exists) -> FoundPaths:
    """The image paths `text` starts with (see the module docstring for the rules) and the text after them.

    When nothing is found, `rest` is `text` unchanged: text that is not a path stays exactly as it was.
    """
    words = split_words(text)
    found: list[tuple[Path, int, int, bool]] = []  # path, first word, last word + 1, is an image name
    i = 0
    while i < len(words):
        match = _path_at(words, i, exists)
        if match is None:
            break
        path, end = match
        found.append((path, i, end, is_image_name(path)))
        i = end
    all_paths = i == len(words)
    kept = []
    for path, first, end, image_name in found:
        if not image_name and not all_paths:
            break
        kept.append((path, first, end))
    if not kept:
        return FoundPaths((), (), text)
    sources = tuple(text[words[first].start : words[end - 1].end] for _, first, end in kept)
    rest = text[words[kept[-1][2] - 1].end :].lstrip(_SPLIT)
    return FoundPaths(tuple(path for path, _, _ in kept), sources, rest)


def paths_to_attach(argument: str, *, exists: Callable[[Path], bool] = Path.exists) -> list[Path]:
    """The files `/attach ARGUMENT` names, by the same rules as a paste, so what pasting attaches, typing attaches:
    the whole argument when it is one existing file (a relative name with plain spaces too), else the paths a
    paste of it would find when that is all of it (unquoted spaces joined while the path exists), else each
    shell word as a path (so a missing file is named in the error)."""
    whole = argument.strip()
    if not whole:
        return []
    as_one = Path(os.path.expanduser(whole))
    if _safe_exists(exists, as_one):
        return [as_one]
    found = find_paths(whole, exists=exists)
    if found and not found.rest:
        return list(found.paths)
    return [to_path(word.value) or Path(os.path.expanduser(word.value)) for word in split_words(whole)]


def _path_at(words: list[Word], i: int, exists: Callable[[Path], bool]) -> tuple[Path, int] | None:
    """The path starting at word `i` and the index after its last word, or None."""
    word = words[i]
    path = to_path(word.value)
    if path is None:
        return None
    if not word.quoted:
        # A plain path with unescaped spaces: the longest run of adjacent plain words that exists on disk.
        for end in range(min(len(words), i + _MAX_JOINED_WORDS), i + 1, -1):
            run = words[i:end]
            if any(w.quoted or words[k].start != words[k - 1].end + 1 for k, w in enumerate(run, i) if k > i):
                continue
            joined = to_path(" ".join(w.value for w in run))
            if joined is not None and _safe_exists(exists, joined):
                return joined, end
    if is_image_name(path) or _safe_exists(exists, path):
        return path, i + 1
    return None


def _safe_exists(exists: Callable[[Path], bool], path: Path) -> bool:
    try:
        return exists(path)
    except (OSError, ValueError):  # a name too long, or with a NUL byte, is simply not a file
        return False
