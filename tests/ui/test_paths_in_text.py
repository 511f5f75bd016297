"""Table tests for drag-and-drop path detection: every form a terminal pastes a dropped file in."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxchat.ui.paths_in_text import find_paths, split_words

NNBSP = "\u202f"
SHOT = f"Screenshot 2024-05-01 at 9.41.02{NNBSP}AM.png"


@pytest.fixture
def pics(tmp_path: Path, monkeypatch) -> Path:
    for name in ("cat.png", "dog.webp", "my photo.jpg", SHOT, "notes.pdf"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# (id, pasted text with {d} for the folder, expected file names, expected rest)
CASES = [
    ("plain", "{d}/cat.png", ["cat.png"], ""),
    ("trailing-space", "{d}/cat.png ", ["cat.png"], ""),
    ("trailing-newline", "{d}/cat.png\n", ["cat.png"], ""),
    ("single-quoted", "'{d}/my photo.jpg'", ["my photo.jpg"], ""),
    ("double-quoted", '"{d}/my photo.jpg" ', ["my photo.jpg"], ""),
    ("backslash-spaces", "{d}/my\\ photo.jpg", ["my photo.jpg"], ""),
    ("unescaped-spaces", "{d}/my photo.jpg", ["my photo.jpg"], ""),
    ("file-url", "file://{d}/my%20photo.jpg", ["my photo.jpg"], ""),
    ("file-url-localhost", "file://localhost{d}/cat.png", ["cat.png"], ""),
    ("macos-shot-escaped", "{d}/" + SHOT.replace(" ", "\\ "), [SHOT], ""),
    ("macos-shot-quoted", "'{d}/" + SHOT + "'", [SHOT], ""),
    ("macos-shot-plain", "{d}/" + SHOT + " ", [SHOT], ""),
    ("macos-shot-url", "file://{d}/Screenshot%202024-05-01%20at%209.41.02%E2%80%AFAM.png", [SHOT], ""),
    ("several", "{d}/cat.png {d}/dog.webp", ["cat.png", "dog.webp"], ""),
    ("several-lines", "{d}/cat.png\n{d}/dog.webp\n", ["cat.png", "dog.webp"], ""),
    ("several-mixed", "'{d}/my photo.jpg' file://{d}/cat.png {d}/dog.webp", ["my photo.jpg", "cat.png", "dog.webp"], ""),
    ("then-prompt", "{d}/cat.png what is in this picture?", ["cat.png"], "what is in this picture?"),
    ("then-two-lines", "{d}/cat.png  line one\nline two ", ["cat.png"], "line one\nline two "),
    ("tilde", "~/cat.png", ["cat.png"], ""),
    ("missing-image", "{d}/missing.png", ["missing.png"], ""),
    ("non-image-alone", "{d}/notes.pdf", ["notes.pdf"], ""),
]

TEXT_CASES = [
    ("words", "hello world"),
    ("path-later", "explain /etc/hosts please"),
    ("ratio", "a/b is a ratio"),
    ("non-image-then-text", "{d}/notes.pdf summarize it"),
    ("other-host-url", "file://example.com/cat.png"),
    ("empty", ""),
    ("spaces-only", "   "),
    ("missing-no-suffix", "{d}/nothing-here and more"),
]


@pytest.mark.parametrize(("text", "names", "rest"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_pasted_form_is_found(pics, text, names, rest):
    found = find_paths(text.format(d=pics))
    assert [p.name for p in found.paths] == names
    assert all(p.parent == pics for p in found.paths)
    assert found.rest == rest


@pytest.mark.parametrize("text", [c[1] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_text_that_is_not_a_path_stays_text(pics, text):
    text = text.format(d=pics)
    found = find_paths(text)
    assert not found
    assert found.rest == text


def test_sources_are_the_text_each_path_was_written_as(pics):
    text = f"'{pics}/my photo.jpg' {pics}/cat.png tell me"
    found = find_paths(text)
    assert found.sources == (f"'{pics}/my photo.jpg'", f"{pics}/cat.png")


def test_words_split_on_ascii_space_only():
    assert [w.value for w in split_words(f"a{NNBSP}b c\\ d 'e f' \"g\\\"h\"")] == [f"a{NNBSP}b", "c d", "e f", 'g"h']
