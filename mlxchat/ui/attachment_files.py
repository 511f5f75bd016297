"""Provides opening an image for attachment: checks that say what is wrong, size facts, and a tiny preview.

Everything a person might drop is checked here, before it reaches the engine, so a bad file gets one clear
sentence in the UI and the prompt is left alone: missing, a folder, unreadable, not an image, or an image that
cannot be decoded. Pillow decodes the file fully (`load()`), because a truncated PNG opens fine and only fails
when its pixels are read. The preview is a few dozen pixels, kept as plain RGB tuples so widgets can paint it
with half blocks without touching Pillow again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

Pixel = tuple[int, int, int]

PREVIEW_COLUMNS = 12
PREVIEW_ROWS = 4  # terminal rows; each holds two pixel rows drawn with "▀"


class AttachmentError(Exception):
    """The file cannot be attached. `str(error)` is one sentence for the user."""


@dataclass(frozen=True)
class Attachment:
    """An image ready to send: where it is, what it is, and a preview grid of `preview[row][column]` pixels."""

    path: Path
    width: int
    height: int
    size_bytes: int
    format: str
    preview: tuple[tuple[Pixel, ...], ...] = ()

    @property
    def name(self) -> str:
        return self.path.name


def open_attachment(path: Path) -> Attachment:
    """Check and describe the image at `path`; raise `AttachmentError` with a readable reason if it cannot be
    attached."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    from mlxchat.engine.vision_inputs import (
        MAX_IMAGE_PIXELS,
        ImageTooLarge,
        NotARegularFile,
        check_image_size,
        open_image_file,
    )

    path = Path(path).expanduser()
    name = path.name or str(path)
    too_large = (
        f"Cannot attach {name}: the image is too large ({{}}); mlxchat takes up to "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels. Scale it down and attach the smaller copy."
    )
    try:
        with open_image_file(path) as handle, warnings.catch_warnings():
            size_bytes = os.fstat(handle.fileno()).st_size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below, in words
            with Image.open(handle) as image:
                width, height = image.size
                check_image_size(width, height)  # the engine's limit, from the header, before anything is decoded
                image.draft("RGB", (PREVIEW_COLUMNS * 4, PREVIEW_ROWS * 8))  # JPEG decodes at a fraction
                image_format = image.format or path.suffix.lstrip(".").upper()
                image.load()
                preview = _preview(image)
    except ImageTooLarge as exc:
        raise AttachmentError(too_large.format(exc)) from None
    except FileNotFoundError:
        raise AttachmentError(f"Cannot attach {name}: there is no such file ({path}).") from None
    except IsADirectoryError:
        raise AttachmentError(f"Cannot attach {name}: it is a folder, not an image.") from None
    except NotARegularFile as exc:
        raise AttachmentError(f"Cannot attach {name}: it is {exc.kind}, not an image file.") from None
    except Image.DecompressionBombError:
        raise AttachmentError(too_large.format("over Pillow's safety limit")) from None
    except PermissionError:
        raise AttachmentError(f"Cannot attach {name}: permission denied, the file cannot be read.") from None
    except UnidentifiedImageError:
        raise AttachmentError(
            f"Cannot attach {name}: it is not an image (PNG, JPEG, GIF, WebP and BMP work)."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow reports damaged data as these
        raise AttachmentError(f"Cannot attach {name}: the image is damaged and cannot be decoded ({exc}).") from None
    return Attachment(path, width, height, size_bytes, image_format, preview)


def _preview(image) -> tuple[tuple[Pixel, ...], ...]:
    from PIL import Image

    from mlxchat.engine.vision_inputs import eight_bit  # a 16-bit PNG is converted as the engine converts it

    image = eight_bit(image)
    image.thumbnail((PREVIEW_COLUMNS, PREVIEW_ROWS * 2))  # shrink first: every step after works on ~100 pixels
    rgb = image.convert("RGBA")
    background = Image.new("RGBA", rgb.size, (128, 128, 128, 255))  # transparency shown as mid grey
    rgb = Image.alpha_composite(background, rgb).convert("RGB")
    width, height = rgb.size
    height += height % 2
    pixels = rgb.load()
    rows = []
    for y in range(height):
        source_y = min(y, rgb.size[1] - 1)
        rows.append(tuple(pixels[x, source_y] for x in range(width)))
    return tuple(rows)


def human_size(size_bytes: int) -> str:
    """1536 -> '1.5 KB' (decimal units, as file managers on macOS show them)."""
    value = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
