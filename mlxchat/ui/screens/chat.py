"""Provides `ChatScreen`: the conversation, attachments, prompt and status, and the chat rules behind them.

The screen talks to the engine only through `submit` and `cancel` and learns everything from engine events,
which the app hands it in order (`handle_engine_event`). Nothing is queued behind the user's back: a request is
submitted at once, and when the engine refuses it (`Busy`) the refusal is shown inline and the typed prompt and
attachments stay. A turn appears in the conversation only once the engine accepted it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Label

from mlxchat.engine import Busy, ChatRequest, LoadModel, ModelInfo
from mlxchat.engine.errors import EngineClosed

from ..attachment_files import Attachment
from ..chat_model import ChatSession, Turn
from ..session_store import SessionStore
from ..keys import bindings, first_key
from ..paths_in_text import find_paths, is_image_name
from ..widgets.attachments import AttachmentPane
from ..widgets.conversation import ConversationView
from ..widgets.message import MessageView
from ..widgets.prompt_input import PromptInput
from ..widgets.status import EngineStatus, StatusBar
from .attaching import AttachingMixin
from .engine_events import EngineEventsMixin
from .history_actions import HistoryMixin
from .reading import ReadingMixin

NoticeKind = Literal["info", "warning", "error"]


@dataclass
class ActiveRequest:
    """The request this screen is waiting on. Cleared by its `Finished`."""

    request_id: str
    kind: Literal["chat", "load"]
    turn: Turn | None = None
    view: MessageView | None = None


class ChatScreen(HistoryMixin, EngineEventsMixin, AttachingMixin, ReadingMixin, Screen):
    """The main screen. The app sets `engine`, `session` and the injected clock; events arrive from the app."""

    BINDINGS = bindings("chat")

    def __init__(
        self,
        engine,
        session: ChatSession,
        *,
        store: SessionStore,
        model_spec: str | None = None,
        keymap: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        animate: bool = True,
        prompt_history: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.session = session
        self.store = store
        self.default_settings = session.settings
        """Settings for a new conversation (from config.toml and flags)."""
        self.model_spec = model_spec
        """The model last asked for (None: the demo model); a conversation naming another one loads it."""
        self.keymap = keymap
        self.clock = clock
        self.animate = animate
        self.prompt_history = prompt_history if prompt_history is not None else []
        self.active: ActiveRequest | None = None
        self.model: ModelInfo | None = None
        self.attachments: list[Attachment] = []
        self.status = EngineStatus()
        self.refused_prompt_waiting = False
        """True after a refusal while the kept prompt waits; the next `Finished` says it can go now."""

    def compose(self) -> ComposeResult:
        yield Label(self.session.title, id="chat-title", markup=False)
        yield ConversationView(id="conversation")
        yield AttachmentPane(id="attachments")
        yield Label("", id="notice", markup=False)
        prompt = PromptInput(id="prompt", prompt_history=self.prompt_history, placeholder="Ask anything…")
        prompt.cursor_blink = self.animate
        yield prompt
        yield StatusBar(id="status", clock=self.clock, animate=self.animate)
        yield Footer(id="footer")

    def on_mount(self) -> None:
        self.query_one("#notice").display = False
        self.query_one(PromptInput).focus()
        self.set_status(self.status)
        if self.session.turns:  # a resumed conversation
            self.call_later(self.show_session, self.session)

    # ---- what the app and tests read ------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.active is not None

    @property
    def has_panes(self) -> bool:
        """False before compose and while the app tears the screen down."""
        return self.query_one_optional(StatusBar) is not None

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def conversation(self) -> ConversationView:
        return self.query_one(ConversationView)

    def notice_text(self) -> str:
        notice = self.query_one("#notice", Label)
        return str(notice.content) if notice.display else ""

    # ---- attributes down ------------------------------------------------------------------------------------

    def set_status(self, status: EngineStatus) -> None:
        self.status = status
        if self.is_mounted:
            self.query_one(StatusBar).status = status

    def show_notice(self, text: str, kind: NoticeKind = "warning") -> None:
        notice = self.query_one("#notice", Label)
        notice.update(text)
        for name in ("info", "warning", "error"):
            notice.set_class(name == kind, f"-{name}")
        notice.display = bool(text)

    def clear_notice(self) -> None:
        self.show_notice("")

    # ---- model ----------------------------------------------------------------------------------------------

    def load_model(self, spec: str | None) -> None:
        """Ask the engine to load `spec` (None: the bundled demo model); progress arrives as events."""
        request = LoadModel(spec)
        refusal = self._submit(request)
        if refusal is None:
            self.model_spec = spec
            self.active = ActiveRequest(request.request_id, "load")
            label = spec and Path(spec).name or "demo model"
            self.set_status(self.status.with_phase("loading", detail=f"Loading {label}", progress=None))

    # ---- sending --------------------------------------------------------------------------------------------

    async def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        message.stop()
        text = message.text
        if text.lstrip().startswith("/attach"):
            self._attach_command(text.lstrip()[len("/attach") :])
            return
        found = find_paths(text)
        if found and all(is_image_name(path) for path in found.paths):
            # A drop the terminal typed instead of pasting: attach, then send what follows, if anything. If a
            # file cannot be attached, its reason is shown and the prompt keeps everything that was typed.
            if self.attach_found(found):
                return
            self.prompt.set_text(found.rest)
            if not found.rest.strip():
                return
            text = found.rest
        await self.send(text)

    async def send(self, text: str) -> bool:
        """Send `text` with the attached images. False (prompt and images kept) when it cannot go now."""
        if not text.strip() and not self.attachments:
            return False
        images = tuple(attachment.path for attachment in self.attachments)
        if images and self.model is not None and self.model.kind == "text":
            self.show_notice(
                f"{self.model.name} reads text only and cannot see images. Remove them "
                f"({first_key('remove_attachment', self.keymap)}) or load a vision model. Nothing was sent.",
                "error",
            )
            return False
        user_turn = Turn("user", text.strip(), images)
        request = self.session.request_for(user_turn)
        if self._submit(request) is not None:
            return False
        # Accepted: events for it may arrive at any await from here on, so it is tracked before the first one.
        self.session.turns.append(user_turn)
        user_view = self.conversation.new_view(user_turn, label="you")
        answer_view = self._track(request)
        self.on_user_sent(user_turn)
        self.prompt_history.append(text)
        self.prompt.clear()
        self.attachments.clear()
        self._show_attachments()
        await self.conversation.show(user_view, answer_view)
        return True

    def _track(self, request: ChatRequest, turn: Turn | None = None) -> MessageView:
        """Track the accepted `request`: a new assistant turn (and view, not yet mounted) unless continuing
        `turn`, whose view is already on screen."""
        if turn is None:
            turn = Turn("assistant", status="streaming")
            self.session.turns.append(turn)
            view = self.conversation.new_view(turn, label=self._assistant_label())
        else:
            turn.status = "streaming"
            view = self.conversation.last_view()
            view.refresh_from_turn()
        self.active = ActiveRequest(request.request_id, "chat", turn, view)
        self.set_status(self.status.with_phase("prefill", detail="", prefill_done=0, prefill_total=0, tokens=0))
        return view

    def _submit(self, request) -> Busy | None:
        """Submit now or show why not. Returns the refusal (or a stand-in after close), None when accepted."""
        try:
            refusal = self.engine.submit(request)
        except EngineClosed as exc:
            self.show_notice(f"{exc} Restart mlxchat.", "error")
            return Busy(request.request_id, "closed", "chat", "closed", 0.0)
        if refusal is not None:
            self.show_notice(f"{refusal.message} Your prompt is kept.", "warning")
            self.refused_prompt_waiting = True
            return refusal
        self.refused_prompt_waiting = False
        self.clear_notice()
        return None

    def _assistant_label(self) -> str:
        return f"assistant · {self.model.name}" if self.model is not None else "assistant"

    # ---- cancel, continue, retry ----------------------------------------------------------------------------

    def cancel(self, reason: str = "cancel") -> bool:
        """Ask the engine to stop the active request; the status shows draining from now until `Finished`."""
        if self.active is None:
            return False
        if self.engine.cancel(self.active.request_id, reason=reason):
            if self.status.phase != "draining":
                detail = "stopping after the current step…"
                if reason == "shutdown":
                    detail = "quitting when the engine has stopped…"
                self.set_status(self.status.with_phase("draining", detail=detail, since=self.clock()))
            return True
        return False

    def action_cancel(self) -> None:
        if not self.cancel() and self.notice_text():
            self.clear_notice()

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "cancel_generation":  # Ctrl+C stops an answer; otherwise it falls through to "copy"
            return self.active is not None and self.active.kind == "chat"
        return True

    def action_cancel_generation(self) -> None:
        self.cancel()

    def action_continue_answer(self) -> None:
        request = self.session.continue_request()
        if request is None:
            self.show_notice("Nothing to continue: only a stopped answer with some text can be continued.", "info")
            return
        if self._submit(request) is None:
            self._track(request, turn=self.session.turns[-1])

    async def action_retry_answer(self) -> None:
        request = self.session.retry_request()
        if request is None:
            self.show_notice("Nothing to retry yet: send a message first.", "info")
            return
        if self._submit(request) is not None:
            return
        replaced = None
        if self.session.turns[-1].role == "assistant":
            self.on_turns_dropped(self.session.turns.pop())
            replaced = self.conversation.last_view()
        view = self._track(request)
        if replaced is not None:
            await replaced.remove()
        await self.conversation.show(view)
