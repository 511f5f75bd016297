"""Provides conversation export to Markdown (to read or share) and JSON (to process), images referenced by file.

Images are not embedded: both formats point at the content-addressed copy in the data folder, which stays put
when the original moves. Exports are pure functions of a `Conversation`; `export_conversation` writes one file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from mlxchat.terminal_text import visible

from .records import Conversation, StoredMessage

ExportFormat = Literal["markdown", "json"]
JSON_FORMAT_NAME = "mlxchat-conversation"
JSON_FORMAT_VERSION = 1

_HEADINGS = {"system": "System", "user": "You", "assistant": "Assistant"}
_C1_AND_DEL = re.compile("[\x7f-\x9f]")
_STATUS_NOTES = {"stopped": "*(stopped before the end)*", "error": "*(failed; partial answer)*"}


def to_markdown(conversation: Conversation) -> str:
    """The conversation as Markdown: a title, its settings, then one `##` section per message.

    The file is safe to `cat`, to render and to open in a browser, whatever the model or the user wrote:
    each message's text goes inside a fence longer than any backtick run in it, so nothing in it is read as
    Markdown or HTML (no `<script>`, no `javascript:` link, no remote image, no heading that fakes a turn, no
    fence that swallows the rest), and the turn headings are the only headings. Control characters (ESC, BEL,
    C1) are replaced by visible stand-ins, the same rule the terminal uses. Titles and names are escaped.
    """
    settings = conversation.settings
    lines = [f"# {_inline(conversation.title)}", ""]
    facts = [
        f"Model: {_inline(settings.model or 'demo model')}",
        *(f"{label} {value:g}" for label, value in (("temperature", settings.temperature), ("top-p", settings.top_p))
          if value is not None),  # None: the model's own value, not a choice of the conversation
        f"max tokens {settings.max_tokens}",
    ]
    if settings.seed is not None:
        facts.append(f"seed {settings.seed}")
    lines += [f"*{conversation.created_at:%Y-%m-%d %H:%M} UTC · " + " · ".join(facts) + "*", ""]
    if settings.system_prompt and not any(m.role == "system" for m in conversation.messages):
        lines += ["## System", "", *_fenced(settings.system_prompt), ""]
    for message in conversation.messages:
        lines += _message_markdown(message)
    return "\n".join(lines).rstrip() + "\n"


def _message_markdown(message: StoredMessage) -> list[str]:
    lines = [f"## {_HEADINGS.get(message.role, _inline(message.role.title()))}", ""]
    if message.thinking.strip():  # collapsed, as on screen; fenced like the answer, so nothing in it is markup
        lines += ["<details>", "<summary>Thinking</summary>", "", *_fenced(message.thinking), "", "</details>", ""]
    if message.text.strip():
        lines += [*_fenced(message.text), ""]
    for attachment in message.attachments:
        lines += [f"![{_inline(attachment.name)}](<{_local_link(attachment.path)}>)", ""]
    if message.status in _STATUS_NOTES:
        lines += [_STATUS_NOTES[message.status], ""]
    return lines


def _fenced(text: str) -> list[str]:
    """`text` as a fenced block no line of it can close: the fence is longer than its longest backtick run."""
    longest_run = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest_run + 1)
    return [f"{fence}markdown", visible(text.rstrip()), fence]


def _inline(text: str) -> str:
    """One line of plain text for a heading or a list of facts: every ASCII punctuation mark backslash-escaped,
    so nothing in it becomes a link, an image, HTML or emphasis; control characters visible."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", visible(_one_line(text)))


def _local_link(path: Path) -> str:
    """The stored copy's path as a link target in `<…>`: the characters that would end it percent-encoded."""
    return visible(path.as_posix()).replace("%", "%25").replace("<", "%3C").replace(">", "%3E").replace("\n", "%0A")


def to_json(conversation: Conversation) -> str:
    """The conversation as one JSON document (format `mlxchat-conversation`, version 1)."""
    document = {
        "format": JSON_FORMAT_NAME,
        "version": JSON_FORMAT_VERSION,
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "settings": conversation.settings.to_dict(),
        "messages": [
            {
                "id": message.id,
                "role": message.role,
                "text": message.text,
                "thinking": message.thinking,
                "status": message.status,
                "created_at": message.created_at.isoformat(),
                "stats": dict(message.stats) if message.stats is not None else None,
                "attachments": [
                    {
                        "name": attachment.name,
                        "sha256": attachment.sha256,
                        "size_bytes": attachment.size_bytes,
                        "path": str(attachment.path),
                    }
                    for attachment in message.attachments
                ],
            }
            for message in conversation.messages
        ],
    }
    # json.dumps escapes C0 controls but not DEL or C1 (0x9B is a CSI): escape those too, so `cat` is safe.
    return _C1_AND_DEL.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(document, ensure_ascii=False, indent=2)) + "\n"


def export_conversation(conversation: Conversation, target: Path, fmt: ExportFormat | None = None) -> Path:
    """Write the export to `target` (format from `fmt`, else from the suffix: `.json` is JSON, anything else
    Markdown). Written to a temporary name and renamed, so a reader never sees half a file. Raises OSError."""
    target = Path(target).expanduser()
    fmt = fmt or ("json" if target.suffix.lower() == ".json" else "markdown")
    text = to_json(conversation) if fmt == "json" else to_markdown(conversation)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def suggested_file_name(conversation: Conversation, fmt: ExportFormat = "markdown") -> str:
    """A safe file name from the title, e.g. 'capital-of-france.md'."""
    stem = re.sub(r"[^\w]+", "-", conversation.title.lower()).strip("-")[:60] or "conversation"
    return f"{stem}.{'json' if fmt == 'json' else 'md'}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


