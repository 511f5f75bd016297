"""Provides the in-memory conversation the chat screen shows and sends: turns, their status, and the requests
they become.

The screen keeps one `ChatSession` per conversation; a history store (when one is given to the app) loads and
saves them, but nothing here depends on it. The rules about what the model sees live here, in one place:
a stopped answer stays in the context (the user saw it, the next question may refer to it), a failed answer
does not, and the system prompt from the conversation's settings goes first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlxchat.engine import ChatRequest, Message, PrepareConversation, Stats
from mlxchat.engine.thinking import resume_applies
from mlxchat.settings import ChatSettings

TurnStatus = Literal["streaming", "complete", "stopped", "error"]
Redo = Literal["retry", "continue"]
"""A request that answers the last question again, or goes on with the stopped answer (not a fresh message)."""
_session_ids = itertools.count(1)


def context_options(session: "ChatSession") -> dict:
    """What every chat request of `session` carries besides its messages: the conversation's overflow policy,
    KV-cache quantization and thinking choices, and its history id once it has one, under which the engine saves
    the prompt cache (the session's own id dies with the process; `mlxchat -c` resumes by the history's)."""
    settings = session.settings
    return {
        "overflow": settings.overflow,
        "kv_bits": settings.kv_bits,
        "thinking": settings.thinking,
        "thinking_budget": settings.thinking_budget,
        "saved_as": session.stored_id,
    }


def can_continue(turn: "Turn") -> bool:
    """Whether a stopped answer can go on: it has text to extend, or thinking to resume (stopped while thinking)."""
    return turn.role == "assistant" and turn.status == "stopped" and bool(turn.text or turn.thinking)


def read_by_model(turn: "Turn") -> bool:
    """Whether a turn goes to the model: every user turn, and every answer that has text and did not fail."""
    return not (turn.role == "assistant" and (turn.status in ("error", "streaming") or not turn.text))


@dataclass
class Turn:
    """One message on screen. Assistant turns change while they stream; user turns never change."""

    role: Literal["user", "assistant"]
    text: str = ""
    images: tuple[Path, ...] = ()
    """The files attached to the turn: images and documents, in the order attached."""
    documents: tuple[Path, ...] = ()
    """Which of `images` are documents (text, PDF), decided once when they were attached or loaded from the
    history (`mlxchat.engine.documents.is_document`), so building a request reads no file on the UI thread."""
    status: TurnStatus = "complete"
    stats: Stats | None = None
    error: str | None = None
    tokens: int = 0
    stored_id: int | None = None
    """The history store's id once saved; None while it exists only in memory."""
    in_view: bool = True
    """False when the overflow policy left this turn out of the model's last prompt (it stays in history)."""
    thinking: str = ""
    """A reasoning model's thinking before this answer, apart from `text` (never copied, never sent back)."""
    thinking_tokens: int = 0
    thinking_since: float | None = None
    """Clock time the first thinking arrived (the live block counts from it)."""
    thought_s: float | None = None
    """How long the thinking took, once it ended (None while thinking, or for a turn read from history)."""
    thought_before_s: float | None = 0.0
    """Seconds thought before the answer was stopped while thinking (`pause_thinking`): a resumed thought adds its
    own (the engine's `ThinkingDone` times only the resumed part), so "Thought for … s" covers all of it. None when
    unknown (a thought read from history, whose time is not stored): a resumed one then shows no time at all
    rather than only its resumed part's."""
    thinking_cut: bool = False
    """True when the thinking budget ended the thinking."""

    def pause_thinking(self, now: float) -> None:
        """The answer stopped while thinking: keep the seconds thought so far, and stop the live clock."""
        if self.thinking_since is not None and self.thought_s is None:
            if self.thought_before_s is not None:
                self.thought_before_s += now - self.thinking_since
            self.thinking_since = None

    def as_message(self) -> Message:
        """The engine's `Message`: the attached documents go as `documents`, the rest as images."""
        documents = tuple(path for path in self.images if path in self.documents)
        images = tuple(path for path in self.images if path not in self.documents)
        return Message(self.role, self.text, images, documents)


@dataclass
class ChatSession:
    """A conversation: its settings and turns, oldest first."""

    id: str = field(default_factory=lambda: f"chat-session-{next(_session_ids)}")
    """Scopes the engine's prompt cache. The stored id for a conversation read from history."""
    title: str = "New chat"
    settings: ChatSettings = field(default_factory=ChatSettings)
    turns: list[Turn] = field(default_factory=list)
    stored_id: str | None = None
    """The history's conversation id, once the first message is saved (None: in memory only)."""
    context_used: int | None = None
    """Tokens of the model's context its last request used (None until one ran in this window): the status
    shows this figure whenever the conversation is on screen."""

    def context(self, turns: list[Turn] | None = None) -> tuple[Message, ...]:
        """What the model reads: the system prompt, then every turn except failed or empty answers."""
        messages = []
        if self.settings.system_prompt:
            messages.append(Message("system", self.settings.system_prompt))
        for turn in self.turns if turns is None else turns:
            if not read_by_model(turn):
                continue
            messages.append(turn.as_message())
        return tuple(messages)

    def prepare_hint(self) -> PrepareConversation:
        """The hint that lets the engine read this conversation's saved prompt cache before its next message:
        found under the name and at the KV quantization its requests use (`context_options`)."""
        options = context_options(self)
        return PrepareConversation(self.id, saved_as=options["saved_as"], kv_bits=options["kv_bits"])

    def message_turns(self) -> list[Turn | None]:
        """The turn behind each message of the last request, in order (None for the system prompt), so that a
        `ContextWindow`'s indices name turns. The answer being written is not read by the model, so the list
        matches `context()` as it was when the request was made."""
        system = [None] if self.settings.system_prompt else []
        return system + [turn for turn in self.turns if read_by_model(turn)]

    def label(self, first_message: str = "") -> str:
        """What the person knows this conversation as, for a busy message that names it: its title, or for a
        new chat the title its first message will give it."""
        if self.title != "New chat" or not first_message.strip():
            return self.title
        from mlxchat.store.rows import auto_title  # the store's naming rule, plain Python

        return auto_title(first_message)

    def request_for(self, user_turn: Turn) -> ChatRequest:
        """A request that answers `user_turn`, appended after the conversation so far."""
        return ChatRequest(
            messages=self.context() + (user_turn.as_message(),),
            conversation_id=self.id,
            sampling=self.settings.sampling(),
            **context_options(self),
            label=self.label(user_turn.text),
        )

    def continue_request(self, resumes_thinking: bool) -> ChatRequest | None:
        """A request that goes on with the last answer, when it was stopped: it extends the answer's text, or, for
        an answer stopped while thinking (no text yet, which the model does not read back), asks the question
        again with the thinking so far to resume from. None when there is nothing to go on with, and when the
        thought cannot be resumed (the engine's rule, `resume_applies`: an image turn, thinking switched off, a
        model that does not `resumes_thinking`): the engine would answer afresh, which is a retry."""
        last = self.last_assistant()
        if last is None or last is not self.turns[-1] or not can_continue(last):
            return None
        request = ChatRequest(
            messages=self.context(),
            conversation_id=self.id,
            sampling=self.settings.sampling(),
            **context_options(self),
            continue_last=bool(last.text),
            resume_thinking="" if last.text else last.thinking,
            label=self.label(),
        )
        return request if last.text or resume_applies(request, resumes_thinking) else None

    def retry_request(self) -> ChatRequest | None:
        """A request that answers the last user turn again (the last answer, if any, is to be replaced)."""
        turns = list(self.turns)
        if turns and turns[-1].role == "assistant":
            turns.pop()
        if not turns or turns[-1].role != "user":
            return None
        return ChatRequest(
            messages=self.context(turns),
            conversation_id=self.id,
            sampling=self.settings.sampling(),
            **context_options(self),
            label=self.label(),
        )

    def last_assistant(self) -> Turn | None:
        return next((turn for turn in reversed(self.turns) if turn.role == "assistant"), None)

    def truncate_from(self, turn: Turn) -> list[Turn]:
        """Drop `turn` and every later turn; returns what was dropped."""
        index = next(i for i, candidate in enumerate(self.turns) if candidate is turn)
        dropped, self.turns = self.turns[index:], self.turns[:index]
        return dropped

    def last_user(self) -> Turn | None:
        return next((turn for turn in reversed(self.turns) if turn.role == "user"), None)

    @property
    def has_images(self) -> bool:
        return any(turn.images for turn in self.turns)
