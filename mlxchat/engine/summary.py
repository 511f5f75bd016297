"""Provides the rules of a conversation summary: the request that asks the model for one, and how the new
conversation that continues from it opens.

This is the "stop" overflow policy's second way out (the chat screen's offer, `mlxchat ask --summarize`). The
summary is an ordinary chat request, so it runs on any backend and streams like an answer. It must fit in the
context itself, so it reads the conversation under truncate-middle: the system prompt, the first exchange and as
many recent turns as fit.

The new conversation opens with one exchange: a user message asking for the summary of "Title" (naming the
source and its history id) and the model's summary as the answer. Not the system prompt, because:
- the summary is seen in the conversation like any turn, and saved to history like one;
- truncate-middle, the default policy, keeps the first exchange in the model's view as the chat grows;
- user and assistant still alternate, which strict chat templates require (two user messages in a row, the
  summary then the question, would break them);
- the system prompt stays the user's own.
Plain functions of plain values, no MLX: the chat screen and `mlxchat ask` share them.
"""

from __future__ import annotations

from dataclasses import replace

from .events import Finished
from .requests import ChatRequest, Message, SamplingParams

SUMMARY_MAX_TOKENS = 512
"""The summary's length limit (the engine also keeps it within a quarter of the context)."""

SUMMARY_INSTRUCTION = (
    "Summarize our conversation so far for a new chat that will continue it. Keep what is needed to go on: the "
    "task, the facts, names and numbers, the decisions made, and what is still open. Write short notes, without "
    "a preamble."
)


def summary_request(
    messages: tuple[Message, ...], *, conversation_id: str, sampling: SamplingParams, title: str, **options
) -> ChatRequest:
    """The request that asks the model to summarize `messages` (the conversation as the model reads it).

    Whatever the conversation's own policy, it reads under truncate-middle, so that it fits. It shares the
    conversation's prompt cache (`conversation_id`: its start is already prefilled). `options` are the other
    `ChatRequest` fields the conversation's requests carry (kv_bits, thinking, saved_as)."""
    return ChatRequest(
        messages=messages + (Message("user", SUMMARY_INSTRUCTION),),
        conversation_id=conversation_id,
        sampling=replace(sampling, max_tokens=min(sampling.max_tokens, SUMMARY_MAX_TOKENS)),
        **(options | {"overflow": "truncate-middle"}),
        label=f"the summary of “{title}”",
    )


def is_summary_request(request: ChatRequest) -> bool:
    """Whether `request` asks for a summary (its last message is the instruction)."""
    return bool(request.messages) and request.messages[-1].content == SUMMARY_INSTRUCTION


def summary_intro(title: str, conversation_id: str | None) -> str:
    """The new conversation's first message: what it continues, by title and history id (`mlxchat ask
    --conversation ID` and the conversation list find it)."""
    where = f" (history id {conversation_id})" if conversation_id else ""
    return (
        f"Summary of “{title}”{where}. This chat continues that conversation, which outgrew the model's context. "
        "Summarize it so we can go on here."
    )


def continued_title(title: str) -> str:
    return f"{title} (continued)"


def summary_problem(finished: Finished) -> str | None:
    """Why `finished` gives no summary to start from (None when it does). Stopped and failed summaries change
    nothing: no new conversation is made from half a summary."""
    if finished.reason in ("cancelled", "shutdown"):
        return "The summary was stopped"
    if finished.reason == "error":
        return f"The summary failed: {finished.error or 'the model gave no reason'}"
    if not finished.text.strip():
        return "The model wrote an empty summary"
    return None
