"""Bad files for the stress tests, made cheaply: every kind of image a person might attach by mistake.

The huge image is a real PNG of 20000 × 20000 one-bit pixels whose rows are all zero, so it compresses to about
50 KB and is written in a fraction of a second; decoding it would still mean 400 million pixels. A second one has
only the header (a PNG that claims that size and ends there). Both must be refused by their size, without
decoding.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from contextlib import contextmanager
from pathlib import Path

import pytest

HUGE_EDGE = 20_000

BAD_IMAGE_KINDS = ("missing", "zero_byte", "truncated_png", "not_an_image", "huge_header", "huge_sparse", "folder")
"""Files that must be refused with a specific message (plus "unreadable", which needs a non-root user)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path: Path, width: int = HUGE_EDGE, height: int = HUGE_EDGE, *, complete: bool = True) -> Path:
    """A one-bit greyscale PNG of `width` × `height`, all rows zero; or (not `complete`) its header and the start
    of its pixel data, cut off there."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed pixels
    packer = zlib.compressobj(9)
    if not complete:
        data = _chunk(b"IDAT", packer.compress(row * 10) + packer.flush(zlib.Z_SYNC_FLUSH))
    else:
        block = 1000
        parts = [packer.compress(row * min(block, height - start)) for start in range(0, height, block)]
        data = _chunk(b"IDAT", b"".join(parts) + packer.flush()) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + data)
    return path


def good_png(path: Path, size: tuple[int, int] = (96, 64), colour=(220, 30, 30)) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse([8, 8, size[0] - 8, size[1] - 8], fill=(30, 90, 220))
    image.save(path)
    return path


def bad_images(folder: Path) -> dict[str, Path]:
    """One file per kind in `BAD_IMAGE_KINDS`, plus "good" and "unreadable" (mode 000: only refused when the
    tests do not run as root)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = good_png(folder / "good.png")
    files = {"good": good, "missing": folder / "missing.png"}
    files["zero_byte"] = folder / "zero.png"
    files["zero_byte"].write_bytes(b"")
    whole = good.read_bytes()
    files["truncated_png"] = folder / "truncated.png"
    files["truncated_png"].write_bytes(whole[: len(whole) // 2])
    files["not_an_image"] = folder / "notes.png"
    files["not_an_image"].write_text("This is a text file with an image's name.\n" * 20)
    files["huge_header"] = huge_png(folder / "huge-header.png", complete=False)
    files["huge_sparse"] = huge_png(folder / "huge.png")
    files["folder"] = folder / "a folder.png"
    files["folder"].mkdir(exist_ok=True)
    files["unreadable"] = folder / "unreadable.png"
    files["unreadable"].write_bytes(whole)
    files["unreadable"].chmod(0)
    return files


def odd_names(folder: Path) -> dict[str, Path]:
    """Good images whose names need quoting or escaping when typed or dropped."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        "space": "my holiday photo.png",
        "apostrophe": "it's here.png",
        "double_quote": 'say "cheese".png',
        "unicode": "ünïcødé 写真.png",
        "narrow_nbsp": "Screenshot 2024-05-01 at 9.41.02\u202fAM.png",
        "dollar": "cost $HOME.png",
        "semicolon": "a;b&c.png",
        "backslash": "back\\slash.png",
        "parentheses": "photo (1).png",
    }
    return {kind: good_png(folder / name, colour=(30 + 20 * i, 120, 60)) for i, (kind, name) in enumerate(names.items())}


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def big_paste(size_bytes: int = 100_000) -> str:
    """About `size_bytes` of ordinary pasted text: prose, a log and some code, with slashes and quotes in it."""
    block = (
        "The build failed again at 09:41; see /var/log/build.log and the notes in ~/work/notes.md.\n"
        "2024-05-01 09:41:02 ERROR [worker-3] request 'GET /api/v1/items?id=42' took 1.2s (limit 1s)\n"
        'def parse(line: str) -> dict:\n    key, _, value = line.partition("=")\n    return {key: value}\n\n'
    )
    text = block * (size_bytes // len(block) + 1)
    return text[:size_bytes]


def tiny_settings_config(folder: Path, *, max_tokens: int = 100_000) -> Path:
    """A config folder whose config.toml makes answers greedy and long (so there is time to act mid-answer)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(f"[chat]\ntemperature = 0.0\nmax_tokens = {max_tokens}\n")
    return folder


@contextmanager
def small_filesystem(folder: Path, *, size: str = "256k", read_only: bool = False, fill: bool = False):
    """A tmpfs of `size` mounted at `folder` (read-only, or filled to the last byte), unmounted after.

    Needs permission to mount (root in a container); the test is skipped where there is none. A real file system
    is the only faithful "disk full" and "read-only" here: `chmod` does not stop root, and these tests often run
    as root.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({mounted.stderr.decode().strip() or 'no permission'})")
    try:
        if fill:
            fill_up(folder)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_up(folder: Path) -> None:
    """Write zeros into `folder` until its file system has no byte left."""
    with open(folder / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass
