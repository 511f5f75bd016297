"""Every bad image given to `mlxchat ask --image` is bad input (exit 2, one line), found before any model loads:
missing, a folder, a FIFO, not an image, or damaged (a damaged one used to exit 1, from inside the engine)."""

from __future__ import annotations

import os

import pytest
from conftest import assert_one_line_error


@pytest.fixture
def bad_images(tmp_path):
    png = (tmp_path / "ok.png")
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 30, 30)).save(png)
    data = png.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    broken_crc = bytearray(data)
    broken_crc[30] ^= 0xFF  # inside IHDR: the chunk's CRC no longer matches
    (tmp_path / "bad-crc.png").write_bytes(bytes(broken_crc))
    (tmp_path / "notes.png").write_text("not an image at all")
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "folder.png").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "name, needle",
    [
        ("missing.png", "image not found"),
        ("folder.png", "not an image file"),
        ("fifo.png", "not an image file"),
        ("notes.png", "is not an image"),
        ("truncated.png", "damaged"),
        ("bad-crc.png", "is not an image"),
    ],
)
def test_every_bad_image_exits_2_before_the_model_loads(run_mlxchat, bad_images, name, needle):
    # An endpoint nothing listens on: reaching the engine at all would be a different error (exit 2 or 1).
    result = run_mlxchat("ask", "What is this?", "--image", str(bad_images / name), "--endpoint", "http://127.0.0.1:9/v1")
    assert_one_line_error(result, needle, name)
