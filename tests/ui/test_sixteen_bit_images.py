"""A valid 16-bit PNG attaches (it used to be called "damaged": Pillow cannot thumbnail its "I;16" mode) and
reaches the model with the same 8-bit values the preview shows, not clipped to white."""

from __future__ import annotations

import struct
import zlib

import pytest

from mlxchat.engine.vision_inputs import load_image
from mlxchat.ui.attachment_files import open_attachment


def sixteen_bit_png(width: int, height: int, color_type: int) -> bytes:
    """A PNG with 16 bits per channel: color type 0 (grey), 2 (RGB), 4 (grey + alpha) or 6 (RGBA)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    alpha = [65535] if color_type in (4, 6) else []  # opaque, so the colour is what is seen

    def pixel(x: int, y: int) -> bytes:
        colour = [(x * 150 + y * 40) % 65536] * (channels - len(alpha))
        return struct.pack(">" + "H" * channels, *colour, *alpha)

    rows = (b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("color_type", [0, 2, 4, 6], ids=["grey", "rgb", "grey+alpha", "rgba"])
def test_a_16_bit_png_attaches_and_reaches_the_model_scaled_not_clipped(color_type, tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(sixteen_bit_png(400, 300, color_type))
    attachment = open_attachment(path)
    assert (attachment.width, attachment.height, attachment.format) == (400, 300, "PNG")
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (400, 300)
    expected = ((100 * 150 + 5 * 40) % 65536) >> 8  # the 16-bit value's high byte
    assert abs(image.getpixel((100, 5))[0] - expected) <= 1, image.getpixel((100, 5))
    assert len({image.getpixel((x, 5)) for x in range(0, 400, 40)}) > 3, "not clipped to one colour"
