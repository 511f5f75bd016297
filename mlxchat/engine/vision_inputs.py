"""Provides the checked inputs of a vision turn: images read safely from disk, and messages in the shape VLM chat
templates expect.

Images come from paths a person typed or dropped, so each one is checked before any MLX work: it must exist,
be readable and really be an image. A failure raises `RequestError` naming the file, which the engine reports as
`Finished(reason="error")` and stays usable. Very large images are decoded at reduced size where the format
allows (JPEG) and shrunk to `MAX_IMAGE_EDGE`: every VLM processor resizes far below that anyway, so nothing is
lost except memory and time.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path
from typing import Any, BinaryIO

from .documents import message_text
from .errors import RequestError
from .events import ModelInfo
from .requests import Message

MAX_IMAGE_EDGE = 2048
"""Longest side, in pixels, of an image handed to a processor. Processors resize to ~1-2k pixels at most."""

MAX_IMAGE_PIXELS = 50_000_000
"""Largest image accepted anywhere: the chat's attach check, `mlxchat ask` and the engine all refuse a bigger one
by its header size, before anything is decoded (`check_image_size`). A 48-megapixel phone photo fits; vision
models read a few hundred pixels a side, so more only costs seconds and gigabytes of decoding."""


class ImageTooLarge(ValueError):
    """The image's header says it has more than `MAX_IMAGE_PIXELS` pixels."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"{width}×{height} pixels")
        self.width, self.height = width, height


def check_image_size(width: int, height: int) -> None:
    """Raise `ImageTooLarge` when a `width`×`height` image is over `MAX_IMAGE_PIXELS`: the one size limit."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(width, height)


def images_refused(model: ModelInfo | None) -> str | None:
    """Why `model` cannot take images ("X is a text-only model and cannot read images."), or None when it can.

    The one statement of the text-only rule, used by the engine (which refuses such a request), the chat screen
    (which keeps the prompt and says so before sending) and `mlxchat ask` (which exits with bad input). With no
    model loaded yet there is nothing to refuse: the engine decides once one is.
    """
    if model is None or model.kind != "text":
        return None
    return f"{model.name} is a text-only model and cannot read images."


def load_image(path: Path | str):
    """Open `path` as an RGB `PIL.Image`, oriented and at most `MAX_IMAGE_EDGE` on its longest side.

    Raises `RequestError` (message names the file) when it is missing, unreadable, not an image, damaged, or
    so large that decoding it would exhaust memory.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path).expanduser()
    try:
        with open_image_file(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # it would garble a TUI's screen
            return _read(handle)
    except ImageTooLarge as exc:
        megapixels = MAX_IMAGE_PIXELS // 1_000_000
        raise RequestError(f"{path} is too large ({exc}); mlxchat takes up to {megapixels} megapixels.") from None
    except FileNotFoundError:
        raise RequestError(f"Image not found: {path}") from None
    except IsADirectoryError:
        raise RequestError(f"{path} is a folder, not an image.") from None
    except NotARegularFile as exc:
        raise RequestError(f"{path} is {exc.kind}, not an image file.") from None
    except UnidentifiedImageError:
        raise RequestError(f"{path} is not an image (or not in a format Pillow can read).") from None
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS
        raise RequestError(f"{path} is too large to read safely (more than {limit:,} pixels).") from None
    except PermissionError:
        raise RequestError(f"{path} cannot be read: permission denied.") from None
    except MemoryError:
        raise RequestError(f"{path} is too large to decode in the memory that is free.") from None
    except Exception as exc:  # truncated data, bad chunks, broken headers: Pillow raises many kinds
        detail = str(exc).strip() or exc.__class__.__name__
        raise RequestError(f"{path} is damaged and cannot be read as an image ({detail}).") from None


class NotARegularFile(OSError):
    """The path is a FIFO, a socket or a device: reading it could block for ever or never end."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def open_image_file(path: Path) -> BinaryIO:
    """Open `path` to read an image from, never blocking: only a regular file is read.

    A FIFO named `photo.png` would block `open()` until something writes to it (a frozen UI), and a device may
    never end; the file is opened non-blocking and checked with `fstat` on the open descriptor, so a file
    swapped after a check cannot slip through. Raises `FileNotFoundError`, `IsADirectoryError`,
    `PermissionError` or `NotARegularFile`.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a Unix socket cannot be opened at all
            raise NotARegularFile("a socket") from None
        raise
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(str(path))
        if not stat.S_ISREG(mode):
            raise NotARegularFile(next((kind for test, kind in _SPECIAL_KINDS if test(mode)), "not a regular file"))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _read(handle: BinaryIO):
    """Verify, then decode (reduced where the format allows), orient and shrink."""
    from PIL import Image, ImageOps

    with Image.open(handle) as probe:
        check_image_size(*probe.size)  # from the header, before anything is decoded
        probe.verify()  # checks the file's structure without decoding the pixels
    handle.seek(0)
    with Image.open(handle) as image:
        image.draft("RGB", (MAX_IMAGE_EDGE, MAX_IMAGE_EDGE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        image.load()
        image = eight_bit(ImageOps.exif_transpose(image))
        if max(image.size) > MAX_IMAGE_EDGE:
            image.thumbnail((MAX_IMAGE_EDGE, MAX_IMAGE_EDGE), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return _to_rgb(image)


def eight_bit(image):
    """`image` with 8 bits per channel: 16- and 32-bit integer greyscale (a 16-bit PNG opens as "I;16") is
    scaled down to "L". Pillow converts those modes to RGB by clipping (nearly everything turns white) and
    cannot thumbnail them at all, so every reader of an attached image goes through this first."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode == "I":
        low, high = image.getextrema()
        scale = 1 / 256 if high > 255 else 1
        return image.point(lambda value: value * scale).convert("L")
    return image


def _to_rgb(image):
    """RGB with transparent areas shown on white, as a person sees them in a viewer (not black)."""
    from PIL import Image

    image = eight_bit(image)
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def image_paths(messages: tuple[Message, ...]) -> list[Path]:
    """Every attached image, in the order its placeholder appears in the rendered prompt."""
    return [Path(path) for message in messages for path in message.images]


def template_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages with list content (`{"type": "image"}` items, then the text), the form VLM templates read.

    Each image stays in its own turn, so a follow-up about the second picture still sees the first one where it
    was shown. Every message uses list content, because some templates (SmolVLM's) cannot read plain strings.
    """
    rendered = []
    for message in messages:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in message.images]
        content.append({"type": "text", "text": message_text(message)})
        rendered.append({"role": message.role, "content": content})
    return rendered
