"""Provides the summary that carries a conversation into a new chat: the request that asks the model for it, and
the new conversation that starts from it.

This is the "stop" overflow policy's second way out. The summary is an ordinary chat request, so it runs on any
backend (local or remote) and streams like an answer. It must fit in the context itself, so it reads the
conversation under truncate-middle: the system prompt, the first exchange and as many recent turns as fit.

The new conversation opens with one exchange: the user's request for a summary of "Title" (naming the source and
its history id) and the model's summary as the answer. Not the system prompt, because:
- the summary is seen in the conversation like any turn, and saved to history like one;
- truncate-middle, the default policy, keeps the first exchange in the model's view as the chat grows;
- user and assistant still alternate, which strict chat templates require (two user messages in a row, the
  summary then the question, would break them);
- the system prompt stays the user's own, as set in F3.
Plain functions of plain values, so the rules are tested without a screen.
"""

from __future__ import annotations

from dataclasses import replace

from mlxchat.engine import ChatRequest, Finished, Message

from .chat_model import ChatSession, Turn, context_options

SUMMARY_MAX_TOKENS = 512
"""The summary's length limit (the engine also keeps it within a quarter of the context)."""

SUMMARY_INSTRUCTION = (
    "Summarize our conversation so far for a new chat that will continue it. Keep what is needed to go on: the "
    "task, the facts, names and numbers, the decisions made, and what is still open. Write short notes, without "
    "a preamble."
)


def summary_request(session: ChatSession) -> ChatRequest:
    """The request that asks the loaded model to summarize `session`.

    It reads the conversation as the model would (`ChatSession.context`), cut by truncate-middle whatever the
    conversation's own policy, so that it fits. It shares the conversation's prompt cache (its start is already
    prefilled). Thinking stays as the conversation has it (a remote server may not take the switch); the thinking
    is kept apart from the summary's text, as from any answer."""
    options = context_options(session) | {"overflow": "truncate-middle"}
    sampling = session.settings.sampling()
    return ChatRequest(
        messages=session.context() + (Message("user", SUMMARY_INSTRUCTION),),
        conversation_id=session.id,
        sampling=replace(sampling, max_tokens=min(sampling.max_tokens, SUMMARY_MAX_TOKENS)),
        **options,
        label=f"the summary of “{session.title}”",
    )


def summary_intro(source: ChatSession) -> str:
    """The new conversation's first message: what it continues, by title and history id (`mlxchat ask
    --conversation ID` and the conversation list find it)."""
    where = f" (history id {source.stored_id})" if source.stored_id else ""
    return (
        f"Summary of “{source.title}”{where}. This chat continues that conversation, which outgrew the "
        "model's context. Summarize it so we can go on here."
    )


def continued_title(source: ChatSession) -> str:
    return f"{source.title} (continued)"


def summarized_session(source: ChatSession, finished: Finished) -> ChatSession:
    """A new conversation that starts from the summary `finished` carries: the intro, then the summary as the
    model's answer. Same settings as `source` (its model, its policy); `source` itself is not touched."""
    intro = Turn("user", summary_intro(source))
    tokens = finished.usage.generation_tokens - finished.usage.reasoning_tokens
    summary = Turn("assistant", finished.text.strip(), status="complete", stats=finished.stats, tokens=tokens)
    return ChatSession(title=continued_title(source), settings=source.settings, turns=[intro, summary])


def summary_problem(finished: Finished) -> str | None:
    """Why `finished` gives no summary to start from (None when it does). Cancelled and failed summaries change
    nothing: no new chat is made from half a summary."""
    if finished.reason in ("cancelled", "shutdown"):
        return "The summary was stopped"
    if finished.reason == "error":
        return f"The summary failed: {finished.error or 'the model gave no reason'}"
    if not finished.text.strip():
        return "The model wrote an empty summary"
    return None
