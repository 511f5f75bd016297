"""Provides readable messages for the failures the engine reports as `Finished(error)`."""

from __future__ import annotations


class EngineClosed(RuntimeError):
    """Raised by `Engine.submit` after `close()`: nothing can run any more."""


class RequestError(Exception):
    """A request the engine can explain in one sentence (no model, images on a text model, prompt too long)."""


class OverflowRefused(RequestError):
    """The conversation no longer fits in the model's context and its overflow policy is "stop". The terminal
    event says so (`Finished.overflow_refused`), so a client can offer the ways out (another policy, a new chat
    from a summary) instead of matching the message's words."""


def describe_error(exc: BaseException) -> str:
    """One line a person can act on. Known MLX failures are named; anything else keeps its type and text."""
    text = str(exc).strip() or exc.__class__.__name__
    lowered = text.lower()
    if isinstance(exc, RequestError):
        return text
    if isinstance(exc, MemoryError) or "out of memory" in lowered or "malloc" in lowered:
        return f"Out of memory: the model or this prompt needs more memory than is free ({text})."
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename or text}"
    return f"{exc.__class__.__name__}: {text}"
