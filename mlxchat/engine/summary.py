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
"""The summary's own length limit, its answer text (the engine also keeps it within a quarter of the context)."""

SUMMARY_THINKING_BUDGET = 256
"""A reasoning model that cannot switch thinking off thinks at most this much before it writes the summary; the
request's token limit grows by as much, so the thinking never eats the summary's own room."""

SUMMARY_INSTRUCTION = (
    "Summarize our conversation so far for a new chat that will continue it. Keep what is needed to go on: the "
    "task, the facts, names and numbers, the decisions made, and what is still open. Write short notes, without "
    "a preamble."
)


def summary_request(
    messages: tuple[Message, ...],
    *,
    conversation_id: str,
    sampling: SamplingParams,
    title: str,
    thinking_switch: bool = False,
    **options,
) -> ChatRequest:
    """The request that asks the model to summarize `messages` (the conversation as the model reads it).

    Whatever the conversation's own policy, it reads under truncate-middle, so that it fits. Thinking would count
    against the summary's token limit and could leave no room for the summary itself: with `thinking_switch` (the
    model's template can turn thinking off: `ModelInfo.thinking_switch`) it is off; otherwise it is capped at
    `SUMMARY_THINKING_BUDGET` and the limit grows by that much. The request has its own prompt-cache identity
    (`summary_cache_id`): under the conversation's, the summary's prompt (another window, the instruction) would
    replace the conversation's cache in memory and its saved file. That cache is not saved on disk
    (`ChatRequest.save_cache`): once the summary is written a new chat goes on from it, and a later summary of the
    grown conversation reads another window; a summary asked again at once (after Esc) still finds it in memory.
    `options` are the other `ChatRequest` fields the conversation's requests carry (kv_bits, thinking,
    thinking_budget; saved_as is replaced)."""
    limit = min(sampling.max_tokens, SUMMARY_MAX_TOKENS)
    if thinking_switch:
        thinking = {"thinking": False}
    else:
        budget = options.get("thinking_budget")
        budget = SUMMARY_THINKING_BUDGET if budget is None else min(budget, SUMMARY_THINKING_BUDGET)
        thinking = {"thinking_budget": budget}
        limit += budget
    own_cache = summary_cache_id(conversation_id)
    return ChatRequest(
        messages=messages + (Message("user", SUMMARY_INSTRUCTION),),
        conversation_id=own_cache,
        sampling=replace(sampling, max_tokens=limit),
        **(options | thinking | {"overflow": "truncate-middle", "saved_as": own_cache, "save_cache": False}),
        label=f"the summary of “{title}”",
    )


def summary_cache_id(conversation_id: str) -> str:
    """The prompt-cache name of a conversation's summary requests: apart from the conversation's own cache, and
    the same for every summary of it (one asked again while the first's cache is in memory reuses its prefill)."""
    return f"{conversation_id} (summary)"


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
        thought = finished.usage.reasoning_tokens
        if thought:
            return f"The model only thought ({thought} thinking tokens) and wrote no summary"
        return "The model wrote an empty summary"
    return None
