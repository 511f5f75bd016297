"""Provides the row conversions of the history: timestamps, settings and stats as JSON, titles and previews."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from typing import Any

from mlxchat.settings import ChatSettings

from .records import ROLES, STATUSES, ConversationSummary

AUTO_TITLE_CHARS = 60
PREVIEW_CHARS = 80

SUMMARY_SQL = (
    "SELECT c.id, c.title, c.created_at, c.updated_at, c.settings_json,"
    " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id),"
    " (SELECT m1.text FROM messages m1 WHERE m1.conversation_id = c.id AND m1.role = 'user' ORDER BY m1.id LIMIT 1)"
    " FROM conversations c"
)


def summary(row: tuple, preview: str | None) -> ConversationSummary:
    settings = settings_from_json(row[4])
    text = " ".join((preview or "").split())
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 1] + "…"
    return ConversationSummary(row[0], row[1], time_of(row[2]), time_of(row[3]), row[5], text, settings.model)


def snippet(text: str, needle: str) -> str:
    flat = " ".join(text.split())
    at = flat.lower().find(needle.lower())
    if at < 0:
        return flat
    start = max(0, at - 30)
    return ("…" if start else "") + flat[start:]


def auto_title(text: str) -> str:
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "") or "New chat"
    return first_line if len(first_line) <= AUTO_TITLE_CHARS else first_line[: AUTO_TITLE_CHARS - 1] + "…"


def check(role: str, status: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")


def time_of(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def settings_json(settings: ChatSettings) -> str:
    return json.dumps(settings.to_dict(), sort_keys=True)


def settings_from_json(text: str | None) -> ChatSettings:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        data = {}
    return ChatSettings.from_dict(data if isinstance(data, dict) else {})


def stats_dict(stats: Any) -> dict[str, Any] | None:
    if stats is None:
        return None
    if is_dataclass(stats) and not isinstance(stats, type):
        return asdict(stats)
    return dict(stats)


def stats_json(stats: Any) -> str | None:
    data = stats_dict(stats)
    return None if data is None else json.dumps(data, sort_keys=True)
