"""Provides the checked inputs of a vision turn: images read safely from disk, and messages in the shape VLM chat
templates expect.

Images come from paths a person typed or dropped, so each one is checked before any MLX work: it must exist,
be readable, really be an image and be at most `MAX_IMAGE_PIXELS`. `read_image` is that one check, for the
engine, `mlxchat ask` and the chat's attach alike. A failure raises `ImageProblem` (a `RequestError`) naming the
file, which the engine reports as `Finished(reason="error")` and stays usable. Very large images are decoded at reduced size where the format
allows (JPEG) and shrunk to `MAX_IMAGE_EDGE`: every VLM processor resizes far below that anyway, so nothing is
lost except memory and time.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from dataclasses import dataclass
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


class ImageProblem(RequestError):
    """An image that cannot be used. `reason` reads after the file's name ("it is a folder, not an image"), so
    each caller can name the file its own way; `str()` is "PATH: reason."."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}.")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed `read_image`: the decoded picture, and the facts of the file as it is on disk."""

    image: Any
    """RGB `PIL.Image`, oriented, 8 bits per channel, transparency on white, at most `max_edge` a side."""
    width: int
    height: int
    size_bytes: int
    format: str


def read_image(path: Path | str, max_edge: int = MAX_IMAGE_EDGE) -> CheckedImage:
    """The one check of an image file, used by the engine, `mlxchat ask` and the chat's attach: open it without
    blocking, refuse it by its header when it is over `MAX_IMAGE_PIXELS`, verify its structure, decode it
    (reduced where the format allows) and shrink it to `max_edge` a side.

    Raises `ImageProblem` when it is missing, a folder or special file, unreadable, not an image, too large or
    damaged.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path).expanduser()
    too_large = f"mlxchat takes up to {MAX_IMAGE_PIXELS // 1_000_000} megapixels; scale it down and use the smaller copy"
    try:
        with open_image_file(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # it would garble a TUI's screen
            return _read(handle, path, max_edge)
    except ImageTooLarge as exc:
        raise ImageProblem(path, f"the image is too large ({exc}); {too_large}") from None
    except Image.DecompressionBombError:
        raise ImageProblem(path, f"the image is too large (over Pillow's safety limit); {too_large}") from None
    except FileNotFoundError:
        raise ImageProblem(path, "it was not found (there is no such file)") from None
    except IsADirectoryError:
        raise ImageProblem(path, "it is a folder, not an image") from None
    except NotARegularFile as exc:
        raise ImageProblem(path, f"it is {exc.kind}, not an image file") from None
    except UnidentifiedImageError:
        raise ImageProblem(path, "it is not an image (PNG, JPEG, GIF, WebP and BMP work)") from None
    except PermissionError:
        raise ImageProblem(path, "permission denied, the file cannot be read") from None
    except MemoryError:
        raise ImageProblem(path, "the image is too large to decode in the memory that is free") from None
    except Exception as exc:  # truncated data, bad chunks, broken headers: Pillow raises many kinds
        detail = str(exc).strip() or exc.__class__.__name__
        raise ImageProblem(path, f"the image is damaged and cannot be decoded ({detail})") from None


def load_image(path: Path | str):
    """The image at `path` for a vision turn: RGB, oriented, at most `MAX_IMAGE_EDGE` on its longest side.
    Raises `ImageProblem` (a `RequestError` naming the file) as `read_image` does."""
    return read_image(path).image


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


def _read(handle: BinaryIO, path: Path, max_edge: int) -> CheckedImage:
    """Check the size from the header, verify, then decode (reduced where the format allows), orient and shrink."""
    from PIL import Image, ImageOps

    with Image.open(handle) as probe:
        width, height = probe.size
        check_image_size(width, height)  # from the header, before anything is decoded
        image_format = probe.format or path.suffix.lstrip(".").upper()
        probe.verify()  # checks the file's structure without decoding the pixels
    size_bytes = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    with Image.open(handle) as image:
        image.draft("RGB", (max_edge, max_edge))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        image.load()
        image = eight_bit(ImageOps.exif_transpose(image))
        if max(image.size) > max_edge:
            image.thumbnail((max_edge, max_edge), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return CheckedImage(_to_rgb(image), width, height, size_bytes, image_format)


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
