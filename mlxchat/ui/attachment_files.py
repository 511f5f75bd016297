"""Provides opening a file for attachment: an image (checks that say what is wrong, size facts, a tiny preview)
or a document (text, source code, JSON, CSV, PDF: its size and an estimate of its tokens).

Everything a person might drop is checked here, before it reaches the engine, with the engine's own check
(`mlxchat.engine.vision_inputs.read_image`), so a bad file gets one clear sentence in the UI and the prompt is
left alone: missing, a folder, unreadable, not an image, too large, or an image that cannot be decoded. The
preview is a few dozen pixels, kept as plain RGB tuples so widgets can paint it with half blocks without touching
Pillow again. A file whose bytes say document (`mlxchat.engine.documents.is_document`: text or a PDF, whatever
its name; the rule the chat and the history use too) is checked with the engine's own document reader instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

Pixel = tuple[int, int, int]

PREVIEW_COLUMNS = 12
PREVIEW_ROWS = 4  # terminal rows; each holds two pixel rows drawn with "▀"


class AttachmentError(Exception):
    """The file cannot be attached. `str(error)` is one sentence for the user."""


@dataclass(frozen=True)
class Attachment:
    """An image or document ready to send: where it is, what it is, and for an image a preview grid of
    `preview[row][column]` pixels, for a document an estimate of its tokens."""

    path: Path
    width: int
    height: int
    size_bytes: int
    format: str
    preview: tuple[tuple[Pixel, ...], ...] = ()
    tokens: int = 0
    """A document's estimated tokens (0 for an image); the engine counts exactly when it builds the prompt."""

    @property
    def is_document(self) -> bool:
        return self.format == "document"

    @property
    def name(self) -> str:
        return self.path.name


def open_attachment(path: Path) -> Attachment:
    """Check and describe the image at `path` with the engine's own check (`read_image`: the same limits and
    reasons as `mlxchat ask` and a vision turn); raise `AttachmentError` with a readable reason if it cannot be
    attached. Decoded only as far as the preview needs (JPEG at a fraction of its size)."""
    from mlxchat.engine.documents import is_document, unreadable_text_reason
    from mlxchat.engine.vision_inputs import ImageProblem, read_image

    path = Path(path).expanduser()
    if is_document(path):
        return open_document(path)
    try:
        checked = read_image(path, max_edge=PREVIEW_COLUMNS * 4)
    except ImageProblem as problem:
        reason = problem.reason
        if reason.startswith("it is not an image"):  # perhaps text in a legacy encoding: say that too
            reason = unreadable_text_reason(path) or reason
        raise AttachmentError(f"Cannot attach {path.name or path}: {reason}.") from None
    preview = _preview(checked.image)
    return Attachment(path, checked.width, checked.height, checked.size_bytes, checked.format, preview)


def open_document(path: Path) -> Attachment:
    """Check a document with the engine's reader (binary files and text that is not UTF-8 are refused by name)."""
    from mlxchat.engine.documents import DocumentError, read_document

    try:
        document = read_document(path)
    except DocumentError as exc:
        raise AttachmentError(f"Cannot attach {exc}") from None
    return Attachment(path, 0, 0, document.size_bytes, "document", tokens=document.estimated_tokens)


def _preview(image) -> tuple[tuple[Pixel, ...], ...]:
    """`image` (RGB, already small) as rows of pixels, `PREVIEW_COLUMNS` wide and an even number of rows."""
    image.thumbnail((PREVIEW_COLUMNS, PREVIEW_ROWS * 2))
    width, height = image.size
    pixels = image.load()
    rows = []
    for y in range(height + height % 2):
        source_y = min(y, height - 1)
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
