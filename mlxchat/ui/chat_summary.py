"""Provides the chat screen's side of a conversation summary (the "stop" policy's offer): the summary request for
a `ChatSession`, and the new session that starts from the summary. The rules themselves (the instruction, the
policy it reads under, how the new conversation opens and why) are `mlxchat.engine.summary`'s, shared with
`mlxchat ask --summarize`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from mlxchat.engine import ChatRequest, Finished, ModelInfo
from mlxchat.engine.summary import continued_title, summary_intro
from mlxchat.engine.summary import summary_request as conversation_summary_request

from .chat_model import ChatSession, Turn, context_options


def summary_request(session: ChatSession, model: ModelInfo | None, turns: list[Turn] | None = None) -> ChatRequest:
    """The request that asks the loaded `model` to summarize `session` (or its first `turns`, when the rest goes
    to the new chat as it is), as the model reads it (`ChatSession.context`). Thinking is off where the model's
    template has a switch, else capped (the rule is `mlxchat.engine.summary`'s); what it thinks is kept apart from
    the summary's text, as from any answer."""
    return conversation_summary_request(
        session.context(turns),
        conversation_id=session.id,
        sampling=session.settings.sampling(),
        title=session.title,
        thinking_switch=model is not None and model.thinking_switch,
        **context_options(session),
    )


def summarized_session(source: ChatSession, finished: Finished, carried: Sequence[Turn] = ()) -> ChatSession:
    """A new conversation that starts from the summary `finished` carries: the intro, then the summary as the
    model's answer, then copies of the `carried` turns (a question to retry there, or a question and its stopped
    answer to continue). Same settings as `source` (its model, its policy); `source` itself is not touched."""
    intro = Turn("user", summary_intro(source.title, source.stored_id))
    tokens = finished.usage.generation_tokens - finished.usage.reasoning_tokens
    summary = Turn("assistant", finished.text.strip(), status="complete", stats=finished.stats, tokens=tokens)
    copies = [replace(turn, stored_id=None, in_view=True) for turn in carried]
    return ChatSession(title=continued_title(source.title), settings=source.settings, turns=[intro, summary, *copies])
