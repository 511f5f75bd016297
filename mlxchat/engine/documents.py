"""Provides document attachments: reading a text or PDF file, refusing what is not text, and the delimited block
that puts it into the prompt.

A document is attached like an image (a path on the message, a content-addressed copy in the history), and its
text goes into the prompt of the turn it belongs to, before that turn's words::

    <document name="notes.md">
    …the file's text…
    </document>

Whether an attached file is a document or an image is decided by its bytes (`is_document`): a PDF by its magic
bytes, text by decoding its start, so a README without a suffix or a `.log` works and a renamed PNG is still an
image. Text files are read as UTF-8 (a UTF-8 or UTF-16 byte-order mark is honoured); anything else (a binary
file, a legacy encoding) is refused by name rather than guessed at. PDFs give the text of their pages through pypdf; a
PDF without a text layer (a scan) is refused. Nothing here imports MLX or Textual: the UI checks a file before
attaching it, and the engine reads it when it renders the prompt.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MAX_DOCUMENT_BYTES = 20 * 2**20
"""Files larger than this are refused before reading (a 20 MB text is millions of tokens: no context holds it)."""

TEXT_SUFFIXES = frozenset(
    ".txt .md .markdown .rst .org .tex .csv .tsv .json .jsonl .yaml .yml .toml .ini .cfg .conf .xml .html .htm "
    ".css .log .py .pyi .js .jsx .ts .tsx .mjs .c .h .cc .cpp .hpp .cs .java .kt .swift .go .rs .rb .php .pl .lua "
    ".r .jl .scala .sh .bash .zsh .fish .ps1 .sql .m .mm .hs .ml .ex .exs .erl .clj .dart .vue .svelte .zig .nim "
    ".diff .patch .srt .vtt .tcss .gitignore .env .dockerfile .makefile".split()
)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"})
"""Names that say image: such a file always goes to the image check, so a broken `photo.png` is told it is not an
image rather than attached as whatever its bytes look like."""
PDF_SUFFIX = ".pdf"
PDF_MAGIC = b"%PDF-"
SNIFF_BYTES = 8192
"""How much of a file's start decides text or not (the NUL check and the decode check)."""
_BYTE_ORDER_MARKS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
CHARS_PER_TOKEN = 4
"""For the estimate shown before the model has counted (English prose and code average about 4 characters a
token); the engine counts exactly when it builds the prompt."""


class DocumentError(Exception):
    """A file that cannot be attached as a document; the message names it and says why."""


@dataclass(frozen=True)
class Document:
    """A readable document: its file name, size on disk, and text."""

    name: str
    size_bytes: int
    text: str

    @property
    def estimated_tokens(self) -> int:
        return estimate_tokens(self.text)


def is_document_path(path: Path | str) -> bool:
    """Whether a file's name says document (text, source code, PDF) rather than image: a cheap hint for listing
    a folder. What an attached file is, `is_document` decides by its bytes."""
    name = Path(path).name.lower()
    suffix = Path(name).suffix
    return suffix in TEXT_SUFFIXES or suffix == PDF_SUFFIX or name in ("makefile", "dockerfile", "readme", "license")


def is_document(path: Path | str, name: str | None = None) -> bool:
    """Whether an attached file is a document rather than an image, by its content: a PDF (magic bytes) or text
    (`looks_like_text` of its first 8 KB). A file whose name says text (`is_document_path`) is one too whatever
    its bytes, so a binary `notes.txt` is refused as a document, by name, instead of being read as an image; a
    name that says image (`IMAGE_SUFFIXES`) is never one. Everything else goes to the image check. What is not
    a regular file that can be opened (missing, a FIFO, which would block the read) is judged by its name.

    `name` is the name the person attached it under, when `path` is a copy (the history's, named by its hash).
    The one rule for the attach check, the chat and the history; it reads the file, so callers decide once (at
    attach or load time) and keep the answer, never while building a request on the UI thread."""
    path = Path(path).expanduser()
    name = name or path.name
    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return False
    try:
        if not path.is_file():
            return is_document_path(name)
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError:
        return is_document_path(name)
    return head.startswith(PDF_MAGIC) or looks_like_text(head) or is_document_path(name)


def unreadable_text_reason(path: Path | str) -> str | None:
    """For a file that is neither a document nor an image: when its start has no NUL byte it is most likely text
    in an encoding mlxchat does not guess (Latin-1, Windows-1252…), and the reason says so instead of only
    "not an image". None when it looks binary, or its name says image (then "not an image" is the whole story).
    """
    path = Path(path).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return None
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError:
        return None
    if not head or b"\x00" in head or looks_like_text(head):
        return None
    return (
        "it is neither a text document mlxchat can read (not UTF-8: an unknown encoding; save it as UTF-8 and "
        "attach it again) nor an image (PNG, JPEG, GIF, WebP and BMP work)"
    )


def looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are text mlxchat can read: a UTF-8/UTF-16 byte-order mark, or no NUL byte and
    valid UTF-8 (a character cut by the end of `head` is fine). Images, archives and executables fail at once."""
    if any(head.startswith(mark) for mark, _ in _BYTE_ORDER_MARKS):
        return True
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def estimate_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN)) if text else 0


def read_document(path: Path | str) -> Document:
    """Read `path` as a document, or raise `DocumentError` naming it and the reason."""
    path = Path(path).expanduser()
    name = path.name
    try:
        status = path.stat()
    except FileNotFoundError:
        raise DocumentError(f"{name}: the file does not exist.") from None
    except OSError as exc:
        raise DocumentError(f"{name}: cannot be read ({exc.strerror or exc}).") from None
    if not path.is_file():
        raise DocumentError(f"{name}: not a file.")
    if status.st_size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{name}: {status.st_size / 2**20:.1f} MB is too large to attach (at most "
            f"{MAX_DOCUMENT_BYTES // 2**20} MB)."
        )
    return Document(name, status.st_size, _cached_text(str(path.resolve()), status.st_size, status.st_mtime_ns))


@lru_cache(maxsize=32)
def _cached_text(path: str, size: int, mtime_ns: int) -> str:
    """The file's text, remembered by path, size and modification time: the engine renders every turn's prompt
    from the messages, and a long PDF should not be parsed again for each follow-up."""
    data = _read_bytes(Path(path))
    if Path(path).suffix.lower() == PDF_SUFFIX or data.startswith(PDF_MAGIC):
        return _pdf_text(Path(path).name, data)
    return _decode_text(Path(path).name, data)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from None


def _decode_text(name: str, data: bytes) -> str:
    """UTF-8 (or UTF-16/UTF-8 with a byte-order mark) text, or `DocumentError`: no guessing at encodings."""
    for bom, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(bom):
            try:
                return _normalise(data.decode(encoding))
            except UnicodeDecodeError:
                break
    if b"\x00" in data[:SNIFF_BYTES]:
        raise DocumentError(f"{name}: a binary file, not text; attach text, source code, Markdown, JSON, CSV or PDF.")
    try:
        return _normalise(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8 "
            "and attach it again."
        ) from None


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pdf_text(name: str, data: bytes) -> str:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd files would garble a TUI
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError(f"{name}: the PDF is encrypted; save an unlocked copy and attach that.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"{name}: not a readable PDF ({exc}).") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise DocumentError(f"{name}: the PDF has no text layer (a scan?); there is nothing to read.")
    return _normalise(text)


def document_block(document: Document) -> str:
    """The document as it goes into the prompt: delimited and named, so the model can tell it from the question
    and several documents apart."""
    name = document.name.replace('"', "'")
    return f'<document name="{name}">\n{document.text.rstrip()}\n</document>'


def prompt_content(content: str, documents: tuple[Path, ...]) -> str:
    """A turn's text with its documents' blocks before it, as the model reads it. Raises `DocumentError`."""
    if not documents:
        return content
    blocks = [document_block(read_document(path)) for path in documents]
    return "\n\n".join(blocks + ([content] if content else []))


def message_text(message) -> str:
    """A request `Message`'s text as the model reads it: its documents' delimited blocks, then its words. A
    document that cannot be read now (gone, changed into something that is not text) is a `RequestError`."""
    from .errors import RequestError

    try:
        return prompt_content(message.content, message.documents)
    except DocumentError as exc:
        raise RequestError(str(exc)) from None


def describe_too_large(names: list[str], document_tokens: int, room: int) -> str:
    """The message for documents that do not fit: their size in tokens against the room the context leaves."""
    which = names[0] if len(names) == 1 else ", ".join(names)
    return (
        f"{which} {'is' if len(names) == 1 else 'are'} about {document_tokens} tokens, but only {max(room, 0)} "
        "tokens are left in the model's context (after the system prompt and room for the answer). Attach a "
        "shorter part of it, or choose a model with a longer context."
    )


__all__ = [
    "Document",
    "DocumentError",
    "IMAGE_SUFFIXES",
    "describe_too_large",
    "document_block",
    "estimate_tokens",
    "is_document",
    "is_document_path",
    "looks_like_text",
    "message_text",
    "prompt_content",
    "unreadable_text_reason",
    "read_document",
]
