"""Provides `ChatScreen`: the conversation, attachments, prompt and status, and the chat rules behind them.

The screen talks to the engine only through `submit` and `cancel` (an `EngineClient`) and learns everything from
engine events, which the app posts to it as `EngineEvent` messages, handled in order on the screen's own queue;
once the screen is closed, they are simply not delivered. Nothing is queued behind the user's back: a request is
submitted at once, and when the engine refuses it (`Busy`) the refusal is shown inline and the typed prompt and
attachments stay. A turn appears in the conversation only once the engine accepted it.

Who owns what: the `ConversationView` owns the message views and the answer streaming into them; the
`AttachmentPane` owns the images for the next message; the `StatusBar` owns the `EngineStatus` it draws, which
`mlxchat.ui.engine_status` computes from events. The screen owns the conversation (`ChatSession`), the request
it waits on (`active`), saving to history, and the rules that join these: what is sent, when a switch is
refused, what a refusal says.

The modal screens are imported where they open, so the launch's first frame does not wait for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Mapping

from textual import getters, on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label

from mlxchat.engine import (
    Busy,
    ChatRequest,
    ContextWindow,
    Finished,
    LoadModel,
    ModelInfo,
    ModelLoaded,
    ModelLoadFailed,
    ModelUnloaded,
    TextDelta,
    ThinkingDelta,
    ThinkingDone,
)
from mlxchat.engine.client import EngineClient
from mlxchat.engine.errors import EngineClosed
from mlxchat.engine.requests import Request
from mlxchat.engine.summary import summary_problem
from mlxchat.settings import ChatSettings
from mlxchat.terminal_text import visible

from ..attachment_files import Attachment
from ..chat_model import ChatSession, Redo, Turn, can_continue
from ..chat_summary import summarized_session, summary_request
from ..engine_status import (
    AnswerKeys,
    Awaited,
    EngineStatus,
    after_event,
    answer_deleted,
    answer_requested,
    cancel_requested,
    conversation_shown,
    load_requested,
    reading_elsewhere,
)
from ..keys import bindings, first_key
from ..messages import EngineEvent
from ..paths_in_text import FoundPaths, find_paths, is_image_name, paths_to_attach
from ..session_store import SessionStore
from ..widgets.attachments import AttachmentItem, AttachmentPane
from ..widgets.conversation import ConversationView
from ..widgets.model_download import ModelDownload
from ..widgets.prompt_input import PromptInput
from ..widgets.status import StatusBar

if TYPE_CHECKING:
    from ..widgets.message import MessageView
    from .overflow_offer import OverflowChoice, SummaryScreen

NoticeKind = Literal["info", "warning", "error"]


@dataclass
class Answering:
    """Where the awaited answer is being written: its conversation and the view that owns its stream. The reader
    may be looking at another conversation meanwhile; the answer streams on here and is saved when it ends."""

    session: ChatSession
    view: ConversationView
    deleted: bool = False
    """Its conversation was deleted from the list while it answered: the answer is stopped and saved nowhere."""
    redo: Redo | None = None
    """A retry or a continue (None: a fresh message). Refused by the "stop" policy, it gets the same offer as a
    message, and the way out chosen does it again."""
    replaced: Turn | None = None
    """The answer a retry replaces: it stays in the history until the new answer is first saved, and goes back
    into the conversation if the retry ends before writing any answer text (refused, failed, stopped, only
    thought)."""


@dataclass
class Summarizing:
    """The summary being written for a new chat (the "stop" policy's offer): the request, the conversation it
    summarizes (left as it is), the message to send in the new chat, and the screen that shows the summary."""

    request_id: str
    source: ChatSession
    question: Turn
    screen: SummaryScreen
    redo: Redo | None = None
    """For a refused retry or continue: what is done again in the new chat, which carries the question (and the
    stopped answer, to continue) after the summary; `question` is then still in `source`."""


def position(turns: list[Turn], turn: Turn) -> int:
    """Where `turn` itself is in `turns` (not a turn equal to it: two questions may read the same)."""
    return next(index for index, candidate in enumerate(turns) if candidate is turn)


def answering_view(answering: Answering | None) -> ConversationView | None:
    return answering.view if answering is not None else None


def _same_model(first: str | None, second: str | None) -> bool:
    """Whether two model specs name the same model (None and "demo" both mean the demo model)."""
    return (first or "demo").strip().rstrip("/") == (second or "demo").strip().rstrip("/")


class ChatScreen(Screen):
    """The main screen. Built by the app with its collaborators; engine events arrive as `EngineEvent`s."""

    BINDINGS = bindings("chat")

    @dataclass
    class Idle(Message):
        """The request the screen waited on has finished: the engine is free (the app quits on it, if asked)."""

    @dataclass
    class ModelPicked(Message):
        """The user picked a model in the picker: the default for new chats from now on (the app remembers it)."""

        spec: str

    prompt = getters.query_one(PromptInput)
    attachment_pane = getters.query_one(AttachmentPane)
    status_bar = getters.query_one(StatusBar)
    model_download = getters.query_one(ModelDownload)
    notice = getters.query_one("#notice", Label)
    title_label = getters.query_one("#chat-title", Label)

    def __init__(
        self,
        engine: EngineClient,
        session: ChatSession,
        *,
        store: SessionStore,
        default_settings: ChatSettings | None = None,
        model_spec: str | None = None,
        keymap: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        animate: bool = True,
        prompt_history: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.session = session
        """The conversation on screen."""
        self.store = store
        self.default_settings = default_settings or session.settings
        """Settings for a new conversation (from config.toml and flags)."""
        self.model_spec = model_spec
        """The model last asked for (None: the demo model); a conversation naming another one loads it."""
        self.keymap = keymap
        self.clock = clock
        self.animate = animate
        self.prompt_history = prompt_history if prompt_history is not None else []
        self.active: Awaited | None = None
        """The request this screen waits on; cleared by its `Finished`."""
        self.refused_prompt_waiting = False
        """True after a refusal while the kept prompt waits; the next `Finished` says it can go now."""
        self.sent_question: Turn | None = None
        """The last message sent as a new question (a busy server's refusal gives it back to the prompt)."""
        self.title_before_sent: str | None = None
        """The title of the conversation `sent_question` opened (it was empty), from before that message named
        it; None when it went into a conversation that had messages. Taking the message back restores it."""
        self.model_after_drain: str | None = None
        """A model picked while an answer ran, which the user chose to stop: it loads when the answer has drained."""
        self.answer_keys = AnswerKeys(first_key("continue_answer", keymap), first_key("retry_answer", keymap))
        self.conversation = ConversationView(id="conversation", keys=self.answer_keys)
        """The conversation being read. Another one may be answering out of sight meanwhile (`answering`)."""
        self.answering: Answering | None = None
        """The conversation and view the awaited answer streams into; None when no answer is awaited."""
        self.summarizing: Summarizing | None = None
        """The summary being written for a new chat, while it is; its request is then the `active` one."""

    def compose(self) -> ComposeResult:
        yield Label(self.session.title, id="chat-title", markup=False)
        yield self.conversation
        yield AttachmentPane(id="attachments")
        yield Label("", id="notice", markup=False)
        prompt = PromptInput(
            id="prompt", prompt_history=self.prompt_history, placeholder="Ask anything…", on_typed=self._typed
        )
        prompt.cursor_blink = self.animate
        yield prompt
        yield ModelDownload(id="model-download")
        yield StatusBar(id="status", clock=self.clock, animate=self.animate)
        yield Footer(id="footer")

    async def on_mount(self) -> None:
        self.notice.display = False
        self._show_title()
        self.prompt.focus()
        if self.session.turns:  # a resumed conversation
            await self.conversation.show_turns(self.session.turns, assistant_label=self._assistant_label())

    # ---- what the app and tests read ------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.active is not None

    @property
    def status(self) -> EngineStatus:
        """What the status pane shows (the `StatusBar` holds it)."""
        return self.status_bar.status

    @property
    def model(self) -> ModelInfo | None:
        """The loaded model, as the engine last reported it."""
        return self.status.model

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        """The images for the next message (the `AttachmentPane` holds them)."""
        return self.attachment_pane.attachments

    def notice_text(self) -> str:
        return str(self.notice.content) if self.notice.display else ""

    # ---- attributes down ------------------------------------------------------------------------------------

    def show_notice(self, text: str, kind: NoticeKind = "warning") -> None:
        """One line above the prompt: what went wrong or what to do next. Empty text hides it."""
        notice = self.notice
        notice.update(visible(text))  # errors quote servers and file names: shown, never obeyed
        for name in ("info", "warning", "error"):
            notice.set_class(name == kind, f"-{name}")
        notice.display = bool(text)

    def clear_notice(self) -> None:
        self.show_notice("")

    def _set_status(self, status: EngineStatus) -> None:
        self.status_bar.status = status

    def _show_title(self) -> None:
        held = self.held_with()
        key = first_key("pick_model", self.keymap)
        note = f"  · held with {held} — {key}, Enter switches back" if held is not None else ""
        self.title_label.update(self.session.title + note)

    def held_with(self) -> str | None:
        """The model this conversation was held with, when another one answers now (a resume with --model, a
        model that failed to load); None when they agree or nothing was said yet."""
        held = self.session.settings.model
        if not self.session.turns or _same_model(held, self.model_spec):
            return None
        return held or "demo"

    def _assistant_label(self) -> str:
        return f"assistant · {self.model.name}" if self.model is not None else "assistant"

    # ---- engine events --------------------------------------------------------------------------------------

    @on(EngineEvent)
    async def _engine_event(self, message: EngineEvent) -> None:
        event, awaited = message.event, self.active
        self._set_status(after_event(self.status, event, awaited, now=self.clock(), keys=self.answer_keys))
        ours = awaited is not None and awaited.request_id == event.request_id
        summary = self.summarizing if ours and self.summarizing is not None else None
        match event:
            case TextDelta() | ThinkingDelta() | ThinkingDone() if summary is not None:
                if not isinstance(event, ThinkingDone):  # thinking is counted, not shown: the summary is the answer
                    summary.screen.append(event.text if isinstance(event, TextDelta) else "", event.tokens)
            case ModelLoaded() | ModelUnloaded():
                self.attachment_pane.model = self.model
                if isinstance(event, ModelLoaded):
                    self._prepare(self.session)  # `mlxchat -c`, or a conversation that asked for this model
            case ModelLoadFailed():
                self.attachment_pane.model = self.model
                self.show_notice(f"Could not load {event.model}: {event.message}", "error")
            case ContextWindow() if ours and self.answering is not None:
                behind = self.answering.session.message_turns()
                out = [behind[i] for i in event.hidden if i < len(behind) and behind[i] is not None]
                self.answering.view.show_window(out)
            case ThinkingDelta() if ours and awaited.kind == "chat":
                self.answering.view.append_thinking(event.text, event.tokens, self.clock())
            case ThinkingDone() if ours and awaited.kind == "chat":
                self.answering.view.end_thinking(event)
            case TextDelta() if ours and awaited.kind == "chat":
                answering = self.answering
                await answering.view.append(event.text, event.tokens)
                # Every few s; the answer a retry replaces leaves the history with the first of these writes.
                if not answering.deleted and self.store.save_partial(
                    answering.session, answering.view.answer.turn, replacing=answering.replaced
                ):
                    answering.replaced = None
            case Finished() if ours:
                await self._finished(event, awaited)

    def on_message_view_answer_drawn(self, message: MessageView.AnswerDrawn) -> None:
        """`MessageView.AnswerDrawn`, handled by its name: the message view's module loads with the first message."""
        self.status_bar.answer_drawn(whole=message.whole)

    async def _finished(self, event: Finished, awaited: Awaited) -> None:
        self.active = None
        if self.refused_prompt_waiting:
            self.refused_prompt_waiting = False
            self.show_notice("The engine is free again: press Enter to send your prompt.", "info")
        if self.summarizing is not None and self.summarizing.request_id == awaited.request_id:
            await self._summary_finished(event)
        elif awaited.kind == "chat":
            answering, self.answering = self.answering, None
            answering.session.context_used = self.status.context_used
            answer = await answering.view.finish(event, self.clock())
            shown = answering.view is self.conversation
            if answering.deleted:
                self._set_status(answer_deleted(self.status, answering.session.title))
                if not shown:
                    await answering.view.remove()
            elif answering.replaced is not None and not answer.text.strip() and not (shown and event.overflow_refused):
                await self._retry_came_to_nothing(event, answer, answering)
            elif not shown:  # written while the reader was elsewhere: saved, not shown
                if event.overflow_refused and answering.redo == "continue":
                    self._continue_refused_elsewhere(event, answer, answering)
                self._forget_replaced(answering)
                self.store.save_answer(answering.session, answer)
                await answering.view.remove()
            elif event.overflow_refused and answering.redo is not None and self.session.last_user() is not None:
                await self._refused_redo(event, answer, answering)
            elif event.overflow_refused and (question := await self._take_back(answer)) is not None:
                self._offer_ways_out(event, question)
            elif not (event.busy and await self._take_back_refused_question(event, answer)):
                self._forget_replaced(answering)
                self.store.save_answer(self.session, answer)
        self.post_message(self.Idle())
        if self.model_after_drain is None and self.session.settings.model != self.model_spec:
            self.load_model(self.session.settings.model)  # the conversation now read, opened while it answered
        if self.model_after_drain is not None:
            self.use_model(self.model_after_drain)

    async def _retry_came_to_nothing(self, event: Finished, answer: Turn, answering: Answering) -> None:
        """A retry ended before it wrote any answer text (an error, a busy server, a "stop" refusal in a
        conversation not on screen, Esc, quit, or it only thought; blank text counts as none, since a server's
        reasoning parser often sends "\n\n" first): the answer it was to replace, still in the
        history (only answer text is saved as it streams), goes back in its place, and nothing is saved: a thought
        with no answer does not replace an answer. The notice says what happened to the retry."""
        turns = answering.session.turns
        turns[position(turns, answer)] = answering.replaced
        if answering.view is self.conversation:
            await self.conversation.put_back(answering.replaced, label=self._assistant_label(), refused=answer)
        else:
            await answering.view.remove()
        where = "" if answering.view is self.conversation else f" in '{answering.session.title}'"
        when = "while thinking, before any answer" if answer.thinking else "before it wrote anything"
        if event.reason in ("cancelled", "shutdown"):
            self.show_notice(f"The retry{where} was stopped {when}: the previous answer is kept.", "info")
        elif event.reason in ("stop", "length"):  # the model ended (or hit max_tokens) with no answer
            self.show_notice(f"The retry{where} ended {when}: the previous answer is kept.", "info")
        else:
            why = f": {event.error.rstrip('. ')}" if event.error else ""
            self.show_notice(f"The retry{where} failed{why}. The previous answer is kept.", "warning")

    def _continue_refused_elsewhere(self, event: Finished, answer: Turn, answering: Answering) -> None:
        """The "stop" policy refused a continue while another conversation was read: nothing was read, so the
        answer is the stopped answer it was (saved so, not as failed: it can still be continued), and the notice
        says why it did not go on. The offer belongs on its conversation's screen, so none is shown here."""
        answering.view.stopped_again(answer)
        why = f": {event.error.rstrip('. ')}" if event.error else ""
        self.show_notice(f"The continue in '{answering.session.title}' was refused{why}. The stopped answer is kept.",
                         "warning")

    def _forget_replaced(self, answering: Answering) -> None:
        """The retry's answer is about to be saved: the answer it replaces leaves the history first (once)."""
        if answering.replaced is not None:
            self.store.drop_from(answering.replaced)
            answering.replaced = None

    async def _take_back_refused_question(self, event: Finished, answer: Turn) -> bool:
        """A server refused the message just sent because it is busy (`Finished.busy`): as with the engine's
        own refusal, the message goes back into the prompt with its images, and the notice says it can be sent
        again. False when it was not a fresh message (see `_take_back`)."""
        question = await self._take_back(answer)
        if question is None:
            return False
        self._restore_question(question)
        self.show_notice(f"{event.error} Your prompt is kept: press Enter to send it again.", "warning")
        return True

    async def _take_back(self, answer: Turn) -> Turn | None:
        """Take the message just sent out of the conversation and the history, with its refused `answer`, and
        return it. None (nothing taken) when there is an answer to keep (some text came) or the request was not
        a fresh message (a retry or a continue)."""
        turns = self.session.turns
        if answer.text or len(turns) < 2 or turns[-1] is not answer or turns[-2] is not self.sent_question:
            return None
        question = turns[-2]
        self.session.truncate_from(question)
        self.store.drop_from(question)
        if not self.session.turns and self.title_before_sent is not None:  # it opened the conversation: undone
            self.session.title = self.title_before_sent
            self.store.forget_emptied(self.session)
            self._show_title()
        await self.conversation.drop([question, answer])
        return question

    def _restore_question(self, question: Turn) -> None:
        """Put a message that was not sent back into the prompt, with its attachments (unless the user has typed
        or attached something meanwhile)."""
        if not self.prompt.text.strip():
            self.prompt.set_text(question.text)
        if not self.attachment_pane.attachments:
            self._attach_paths(question.images, keep_notice=True)

    # ---- model ----------------------------------------------------------------------------------------------

    def load_model(self, spec: str | None) -> None:
        """Ask the engine to load `spec` (None: the bundled demo model); progress arrives as events."""
        request = LoadModel(spec)
        if self._submit(request) is None:
            self._track_load(request, spec)

    def _track_load(self, request: LoadModel, spec: str | None) -> None:
        self.model_spec = spec
        self._show_title()
        self.active = Awaited(request.request_id, "load")
        self._set_status(load_requested(self.status, spec and Path(spec).name or "demo model", self.clock()))

    def action_pick_model(self) -> None:
        """Open the model picker. Its "fits" column counts the KV cache of this conversation so far plus a full
        answer (at least 4096 tokens)."""
        from .model_picker import ModelPickerScreen, PickerChoice

        context_tokens = max(4096, (self.status.context_used or 0) + self.session.settings.max_tokens)

        def picked(choice: PickerChoice | None) -> None:
            if choice is not None and choice.download:
                self.download_model(choice.spec)
            elif choice is not None:
                self.switch_model(choice.spec)
            self.prompt.focus()

        picker = ModelPickerScreen(
            context_tokens=context_tokens, current=self.model_spec or "demo", highlight=self.held_with()
        )
        self.app.push_screen(picker, picked)

    def download_model(self, repo_id: str) -> None:
        """Download `repo_id` beside the chat (progress above the status pane, Esc cancels); it loads when done."""
        download = self.model_download
        if not download.start(repo_id):
            self.show_notice(f"{download.repo_id} is still downloading; one at a time (Esc cancels it).", "warning")

    @on(ModelDownload.Ended)
    def _model_downloaded(self, message: ModelDownload.Ended) -> None:
        if message.problem is not None:
            self.show_notice(message.problem, "info" if message.cancelled else "error")
            return
        self.show_notice(f"Downloaded {message.repo_id}.", "info")
        self.switch_model(message.repo_id)

    def switch_model(self, spec: str) -> None:
        """Switch to `spec` without a restart. While a request runs the engine refuses at once with its busy
        answer; that answer is shown and the user may stop the request: it drains, then the model loads."""
        from .dialogs import ConfirmScreen

        if not self.busy:
            self.use_model(spec)
            return
        request = LoadModel(spec)
        try:
            refusal = self.engine.submit(request)
        except EngineClosed as exc:
            self.show_notice(f"{exc} Restart mlxchat.", "error")
            return
        if refusal is None:  # the request finished in between: the engine took the load
            self._track_load(request, spec)
            self._model_chosen(spec)
            return
        self.show_notice(refusal.message, "warning")

        def answered(stop: bool) -> None:
            if stop and self.cancel():
                self.model_after_drain = spec
                self.show_notice(f"Stopping the answer; {spec} loads when it has drained.", "info")

        self.app.push_screen(
            ConfirmScreen(f"{refusal.message} Stop it and switch to {spec}?", confirm_label="Stop and switch"), answered
        )

    def use_model(self, spec: str) -> None:
        """Load `spec` now, for this conversation and as the default for new ones."""
        self.model_after_drain = None
        self.load_model(spec)
        self._model_chosen(spec)

    def _model_chosen(self, spec: str) -> None:
        self.default_settings = replace(self.default_settings, model=spec)
        self.store.save_settings(self.session, replace(self.session.settings, model=spec))
        self.post_message(self.ModelPicked(spec))
        self._show_title()

    # ---- sending --------------------------------------------------------------------------------------------

    def _typed(self) -> None:
        """A key or paste reached the prompt: the answer shown, if streaming, draws after the key's frame."""
        self.conversation.give_way()

    @on(PromptInput.Submitted)
    async def _prompt_submitted(self, message: PromptInput.Submitted) -> None:
        message.stop()
        text = message.text
        if text.lstrip().startswith("/attach"):
            self._attach_command(text, text.lstrip()[len("/attach") :])
            return
        found = find_paths(text)
        if found and all(is_image_name(path) for path in found.paths):
            self._attach_typed_drop(found)
            return
        await self.send(text)

    @work(group="attachments")
    async def _attach_typed_drop(self, found: FoundPaths) -> None:
        """A drop the terminal typed instead of pasting: attach, then send what follows, if anything. If a file
        cannot be attached, its reason is shown and the prompt keeps everything that was typed."""
        if await self._attach_found(found):
            return
        self.prompt.set_text(found.rest)
        if found.rest.strip():
            await self.send(found.rest)

    async def send(self, text: str) -> bool:
        """Send `text` with the attached images. False (prompt and images kept) when it cannot go now."""
        pane = self.attachment_pane
        if not text.strip() and not pane.attachments:
            return False
        refusal = pane.refusal()
        if refusal is not None:
            key = first_key("remove_attachment", self.keymap)
            self.show_notice(f"{refusal} Remove them ({key}) or load a vision model. Nothing was sent.", "error")
            return False
        documents = tuple(attachment.path for attachment in pane.attachments if attachment.is_document)
        question = Turn("user", text.strip(), pane.paths, documents=documents)
        answer = self._submit_question(question)
        if answer is None:
            return False
        self.prompt_history.append(text)
        self.prompt.clear()
        pane.take()
        await self.conversation.add_exchange(question, answer, label=self._assistant_label())
        return True

    def _submit_question(self, question: Turn) -> Turn | None:
        """Ask for an answer to `question` in the conversation on screen; once accepted, both turns join the
        conversation (the caller shows them) and the question is saved. Returns the answer's turn, or None when
        the engine refused (the notice says why)."""
        request = self.session.request_for(question)
        if self._submit(request) is not None:
            return None
        answer = Turn("assistant", status="streaming")
        self.title_before_sent = None if self.session.turns else self.session.title
        self.session.turns += [question, answer]
        self._await_answer(request)
        self.sent_question = question
        self.store.save_user(self.session, question)
        self._show_title()
        return answer

    def _await_answer(
        self, request: ChatRequest, tokens_before: int = 0, redo: Redo | None = None, replaced: Turn | None = None
    ) -> None:
        self.active = Awaited(request.request_id, "chat", tokens_before)
        if redo is not None:  # no fresh message to take back if it is refused (`_take_back`)
            self.sent_question = None
        self.answering = Answering(self.session, self.conversation, redo=redo, replaced=replaced)
        self._set_status(answer_requested(self.status))

    def _submit(self, request: Request) -> Busy | None:
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

    # ---- the "stop" policy's offer: switch and send again, or a new chat from a summary ----------------------

    async def _refused_redo(self, event: Finished, answer: Turn, answering: Answering) -> None:
        """A retry or a continue the "stop" policy refused: a continued answer is the stopped answer it was (it can
        still be continued, and the model still reads it); a retry's refused answer gives way to the answer it was
        to replace, which never left the history (a retry with none to replace saves its failed answer). Then the
        same offer as for a message, for the last question: cancelled, the conversation is as it was."""
        if answering.redo == "continue":
            self.conversation.stopped_again(answer)
        elif answering.replaced is not None:
            turns = self.session.turns
            turns[position(turns, answer)] = answering.replaced
            await self.conversation.put_back(answering.replaced, label=self._assistant_label(), refused=answer)
        else:
            self.store.save_answer(self.session, answer)
        self._offer_ways_out(event, self.session.last_user(), answering.redo)

    def _offer_ways_out(self, event: Finished, question: Turn, redo: Redo | None = None) -> None:
        """The conversation no longer fits and its policy is "stop": the message just refused is kept (`question`,
        out of the conversation and the history), and the user chooses what happens to it. For a refused `redo`,
        `question` is the conversation's last, and the way out chosen retries or continues."""
        from .overflow_offer import OverflowOfferScreen

        source = self.session

        async def chosen(choice: OverflowChoice | None) -> None:
            # The offer is `source`'s: a conversation opened meanwhile gives way to it, so the message goes back
            # (or is sent) there, never into another chat. A request that started meanwhile refuses the choice
            # with the engine's own busy answer (`_submit`), and the message goes back to the prompt.
            if self.session is not source:
                await self.show_session(source)
            if choice == "summarize":
                self._summarize(question, redo)
            elif choice is not None:
                await self._switch_and_send(choice, question, redo)
            elif redo is None:
                self._restore_question(question)
                self.show_notice("Nothing was sent: your message is back in the prompt.", "info")
            else:
                self.show_notice(f"Nothing was sent: the conversation is as it was ({redo} again when you like).", "info")
            self.prompt.focus()

        if redo is None and not self.prompt.text.strip():  # seen behind the dialog; sent from `question`
            self.prompt.set_text(question.text)
        self._set_status(self.status.with_phase("error", detail='the conversation no longer fits (overflow: "stop")'))
        self.app.push_screen(OverflowOfferScreen(event.error or "", source.title, redo), chosen)

    async def _switch_and_send(self, policy: str, question: Turn, redo: Redo | None = None) -> None:
        """Switch this conversation's overflow policy (saved with it, as F3 would) and send the message again (or
        retry, or continue)."""
        self.store.save_settings(self.session, self.session.settings.merged(overflow=policy))
        done = await self._send_kept(question) if redo is None else await self._redo(redo)
        if done:  # refused (busy): the notice says so; the policy stays switched
            again = {None: "Your message was sent again.", "retry": "The answer is written again.",
                     "continue": "The answer goes on."}[redo]
            self.show_notice(f"Overflow policy for this conversation: {policy}. {again}", "info")

    def _summarize(self, question: Turn, redo: Redo | None = None) -> None:
        """Ask the loaded model to summarize the conversation on screen; the summary streams in a `SummaryScreen`
        (Esc stops it). When it is written, `_summary_finished` starts the new chat and sends `question` there
        (for a `redo`, the turns from `question` on are carried there and not summarized)."""
        from .overflow_offer import SummaryScreen

        turns = self.session.turns
        before = turns[: position(turns, question)] if redo is not None else turns
        if not before:  # nothing before the refused message: a summary of nothing would not help
            if redo is None:
                self._restore_question(question)
            back = "your message is back in the prompt" if redo is None else "the conversation is as it was"
            self.show_notice(f"There is nothing to summarize yet: {back}.", "info")
            return
        request = summary_request(self.session, self.model, before)
        if self._submit(request) is not None:  # busy: the notice says so, and the message goes back to the prompt
            if redo is None:
                self._restore_question(question)
            return
        screen = SummaryScreen(self.session.title)
        self.summarizing = Summarizing(request.request_id, self.session, question, screen, redo)
        self.active = Awaited(request.request_id, "chat")
        self._set_status(answer_requested(self.status))

        def dismissed(stop: bool | None) -> None:
            summarizing = self.summarizing
            if stop and summarizing is not None and summarizing.screen is screen:
                self.cancel()

        self.app.push_screen(screen, dismissed)

    async def _summary_finished(self, event: Finished) -> None:
        """The summary ended. Written: a new conversation starts from it (saved to history), and the kept message
        is sent there; the old conversation stays as it was. Stopped, failed or empty: nothing changes, and the
        message goes back into the prompt."""
        summarizing, self.summarizing = self.summarizing, None
        summarizing.screen.end()
        source, question = summarizing.source, summarizing.question
        stop_asked = summarizing.screen.stop_asked  # a stop that came too late to cancel still stops
        problem = "The summary was stopped" if stop_asked else summary_problem(event)
        redo = summarizing.redo
        if problem is not None:
            if redo is None:
                self._restore_question(question)
            stopped = stop_asked or event.reason in ("cancelled", "shutdown")
            if stopped:
                self._set_status(self.status.with_phase("stopped", detail="summary stopped: nothing changed"))
            back = " Your message is back in the prompt." if redo is None else ""
            self.show_notice(
                f"{problem}: “{source.title}” is as it was and no new chat was made.{back}",
                "info" if stopped else "error",
            )
            return
        carried = source.turns[position(source.turns, question) :][: 2 if redo == "continue" else 1] if redo else []
        session = summarized_session(source, event, carried)
        for turn in session.turns:
            if turn.role == "user":
                self.store.save_user(session, turn)
            else:
                self.store.save_answer(session, turn)
        await self.show_session(session)
        self._set_status(self.status.with_phase("ready", detail=f"new chat from a summary of “{source.title}”"))
        if redo is None:  # once the summary's `Finished` is fully handled
            self.call_later(self._send_kept, question)
        else:
            self.call_later(self._redo, redo)

    async def _send_kept(self, question: Turn) -> bool:
        """Send a message that was kept while the user chose a way out; refused (busy), it goes to the prompt
        (and False)."""
        answer = self._submit_question(question)
        if answer is None:
            self._restore_question(question)
            return False
        if self.prompt.text == question.text:
            self.prompt.clear()
        await self.conversation.add_exchange(question, answer, label=self._assistant_label())
        return True

    # ---- cancel, continue, retry ----------------------------------------------------------------------------

    def cancel(self, reason: str = "cancel") -> bool:
        """Ask the engine to stop the active request; the status shows draining from now until `Finished`."""
        if self.active is None:
            return False
        if self.engine.cancel(self.active.request_id, reason=reason):
            self._set_status(cancel_requested(self.status, reason, self.clock()))
            return True
        return False

    def action_cancel(self) -> None:
        if self.cancel() or self.model_download.cancel():  # the engine's request first, then a download
            return
        if self.notice_text():
            self.clear_notice()

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "cancel_generation":  # Ctrl+C stops an answer; otherwise it falls through to "copy"
            return self.active is not None and self.active.kind == "chat"
        return True

    def action_cancel_generation(self) -> None:
        self.cancel()

    async def action_continue_answer(self) -> None:
        await self._redo("continue")

    async def action_retry_answer(self) -> None:
        await self._redo("retry")

    async def _redo(self, redo: Redo) -> bool:
        """Retry or continue the last answer; False when nothing was sent (the notice says why)."""
        return await (self._retry() if redo == "retry" else self._continue())

    async def _continue(self) -> bool:
        resumes = self.model is not None and self.model.resumes_thinking
        request = self.session.continue_request(resumes)
        last = self.session.last_assistant()
        if request is None and last is not None and last is self.session.turns[-1] and can_continue(last):
            if self.model is None:  # whether it resumes is the model's to say: the stopped thought stays as it is
                key = first_key("pick_model", self.keymap)
                self.show_notice(f"No model is loaded: choose one ({key}) to go on with this answer; it is kept.",
                                 "info")
                return False
            # Stopped while thinking, where the loaded model cannot resume the thought (the engine's rule): it would
            # answer afresh, so that is what is asked and shown, a retry, instead of a continue that is not one.
            if not await self._retry():
                return False
            self.show_notice(
                "This answer cannot think on from where it stopped (an image turn, thinking off, or a model that "
                "cannot resume a thought): it is written afresh.",
                "info",
            )
            return True
        if request is None:
            self.show_notice(
                "Nothing to continue: only a stopped answer with some text or thinking can be continued.", "info"
            )
            return False
        if self._submit(request) is not None:
            return False
        answer = self.session.turns[-1]
        self._await_answer(request, tokens_before=answer.tokens, redo="continue")
        self.conversation.continue_answer(answer)
        return True

    async def _retry(self) -> bool:
        request = self.session.retry_request()
        if request is None:
            self.show_notice("Nothing to retry yet: send a message first.", "info")
            return False
        if self._submit(request) is not None:
            return False
        replaced = self.session.turns.pop() if self.session.turns[-1].role == "assistant" else None
        answer = Turn("assistant", status="streaming")
        self.session.turns.append(answer)
        self._await_answer(request, redo="retry", replaced=replaced)  # still stored: see `Answering.replaced`
        await self.conversation.replace_answer(answer, label=self._assistant_label(), replacing=replaced)
        return True

    # ---- attachments ----------------------------------------------------------------------------------------

    @property
    def attaching(self) -> bool:
        """True while files are being read for attachment (on worker threads, off the event loop)."""
        return any(worker.group == "attachments" and not worker.is_finished for worker in self.workers)

    @on(PromptInput.PathsDropped)
    def _paths_dropped(self, message: PromptInput.PathsDropped) -> None:
        message.stop()
        self._attach_dropped(message.found)

    @work(group="attachments")
    async def _attach_dropped(self, found: FoundPaths) -> None:
        """Attach what was dropped; the text of files that failed, and what followed them, go into the prompt.

        Files are read in a worker, never in a handler: a handler that waits holds the screen's message queue,
        and keys would wait with it."""
        failed = await self._attach_found(found)
        leftover = " ".join(failed + ([found.rest] if found.rest else []))
        if leftover:
            self.prompt.insert(leftover)

    @on(AttachmentPane.Changed)
    def _attachments_changed(self, message: AttachmentPane.Changed) -> None:
        if message.removed:  # the removed image may have had the focus
            self.prompt.focus()

    async def _attach_found(self, found: FoundPaths) -> list[str]:
        """Attach each found path; return the text of those that failed (it goes back into the prompt)."""
        failed, problems = [], []
        for path, source in zip(found.paths, found.sources):
            problem = await self.attachment_pane.attach(path)
            if problem:
                failed.append(source)
                problems.append(problem)
        self._report_attached(problems)
        return failed

    def _report_attached(self, problems: list[str]) -> None:
        if problems:
            self.show_notice(" ".join(problems), "error")
        else:
            self.clear_notice()

    @work(group="attachments")
    async def _attach_command(self, command: str, argument: str) -> None:
        paths = paths_to_attach(argument)
        if not paths:
            self.show_notice("Usage: /attach PATH [PATH…] (a path with spaces works as it is, quoted or not).", "info")
            return
        problems = await self.attachment_pane.attach_all(paths)
        self._report_attached(problems)
        if not problems and self.prompt.text == command:  # unless the user has typed on meanwhile
            self.prompt.clear()

    def action_attach_file(self) -> None:
        from .file_picker import FilePickerScreen

        def attach_picked(path: Path | None) -> None:
            if path is not None:
                self._attach_paths([path])
            self.prompt.focus()

        self.app.push_screen(FilePickerScreen(Path.home()), attach_picked)

    @work(group="attachments")
    async def _attach_paths(self, paths: tuple[Path, ...] | list[Path], *, keep_notice: bool = False) -> None:
        """Attach `paths` (picked, or given back with an edited or refused message) and say what failed; with
        `keep_notice`, a notice already shown stays when nothing failed."""
        problems = await self.attachment_pane.attach_all(paths)
        if problems or not keep_notice:
            self._report_attached(problems)

    def action_remove_attachment(self) -> None:
        focused = self.focused
        if isinstance(focused, AttachmentItem):
            self.attachment_pane.remove(focused.attachment.path)
        else:
            self.attachment_pane.remove_last()

    # ---- reading: copy, scroll, focus -----------------------------------------------------------------------

    def action_copy_message(self) -> None:
        view = self.conversation.message_for_copy(self.focused)
        if view is None or not view.text:
            self.notify("There is no message to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(view.text)
        self.notify(f"Copied the message ({len(view.text)} characters).")

    def action_copy_code(self) -> None:
        from ..widgets.message import code_blocks

        view = self.conversation.message_for_copy(self.focused)
        blocks = code_blocks(view.text) if view is not None else []
        if not blocks:
            self.notify("No code block to copy in that message.", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify(f"Copied the code block ({len(blocks[-1].splitlines())} lines).")

    def action_scroll_conversation(self, pages: int) -> None:
        self.conversation.scroll_pages(pages)

    def action_focus_prompt(self) -> None:
        self.prompt.focus()

    # ---- conversations: new, switch, settings, edit ---------------------------------------------------------

    async def show_session(self, session: ChatSession) -> None:
        """Replace what the screen shows with `session`, loading its model when it names another one (once the
        engine is free). An answer being written keeps streaming into its own conversation, out of sight, and
        the status says where; coming back to that conversation shows it again, still streaming."""
        self.session = session
        self._show_title()
        self.clear_notice()
        self._set_status(conversation_shown(self.status, session.context_used if session.turns else 0))
        await self._read(session)
        if not self.busy and session.settings.model != self.model_spec:
            self.load_model(session.settings.model)
        else:
            self._prepare(session)

    def _prepare(self, session: ChatSession) -> None:
        """Let the engine read the conversation's saved prompt cache now, while the person reads and types, so
        the next message does not wait for it (a hint: never refused; a message sent meanwhile goes first or
        waits for the read, see `EngineCore.prepare`). Nothing to read for a new chat, without a model, or when
        the conversation is held with another model than the one loaded (its cache was saved for that one; it is
        prepared once its own model has loaded)."""
        if session.turns and self.model is not None and _same_model(session.settings.model, self.model_spec):
            self.engine.prepare(session.prepare_hint())

    async def _read(self, session: ChatSession) -> None:
        """Show `session` in a conversation view: the answering one when it is that conversation, a new one when
        the view on screen must keep streaming out of sight, else the view on screen, refilled."""
        answering, reading = self.answering, self.conversation
        if answering is not None and session is answering.session:
            view = answering.view
        elif answering is not None and reading is answering.view:
            view = ConversationView(keys=self.answer_keys)
            await self.mount(view, after=reading)
        else:
            view = reading
        if view is not answering_view(answering):
            await view.show_turns(session.turns, assistant_label=self._assistant_label())
        if view is not reading:
            view.remove_class("-background")
            if reading is answering_view(answering):
                reading.add_class("-background")
            else:
                await reading.remove()
            self.conversation = view
        elsewhere = answering is not None and view is not answering.view
        self._set_status(reading_elsewhere(self.status, answering.session.title if elsewhere else None))

    def _refused_while_busy(self, what: str) -> bool:
        if self.busy:
            self.show_notice(f"The engine is busy: stop it first (Esc), then {what}.", "warning")
            return True
        return False

    async def action_new_conversation(self) -> None:
        await self.show_session(ChatSession(settings=self.default_settings))
        self.prompt.focus()

    def action_conversations(self) -> None:
        from .conversations import ConversationsResult, ConversationsScreen

        if not self.store.enabled:
            self.show_notice("History is off in this session, so there is no list of conversations.", "info")
            return

        async def chosen(result: ConversationsResult | None) -> None:
            if result is not None and (result.new or result.open_id):
                answering = self.answering
                if result.new:
                    await self.show_session(ChatSession(settings=self.default_settings))
                elif result.open_id != self.session.stored_id:
                    if answering is not None and answering.session.stored_id == result.open_id:
                        session = answering.session  # back to the answer being written
                    else:
                        session = self.store.load(result.open_id)
                    if session is not None:
                        await self.show_session(session)
            elif self.session.stored_id is not None and not self.store.exists(self.session.stored_id):
                await self.show_session(ChatSession(settings=self.default_settings))  # it was deleted
            elif self.session.stored_id is not None:
                fresh = self.store.load(self.session.stored_id)
                if fresh is not None:
                    self.session.title = fresh.title
                    self._show_title()
            self._stop_deleted_answer()
            self.prompt.focus()

        self.app.push_screen(ConversationsScreen(self.store.history, self.session.stored_id), chosen)

    def _stop_deleted_answer(self) -> None:
        """The conversation being answered was deleted from the list: stop its answer, and save nothing of it."""
        answering = self.answering
        if answering is None or answering.deleted or answering.session.stored_id is None:
            return
        if not self.store.exists(answering.session.stored_id):
            answering.deleted = True
            self.cancel()

    def action_conversation_settings(self) -> None:
        from .settings import SettingsScreen

        def chosen(settings) -> None:
            if settings is None:
                return
            model_changed = settings.model != self.session.settings.model
            self.store.save_settings(self.session, settings)
            if model_changed and settings.model != self.model_spec:
                self.load_model(settings.model)
            self.prompt.focus()

        self.app.push_screen(
            SettingsScreen(self.session.settings, self.session.title, config=self.default_settings, model=self.model),
            chosen,
        )

    def action_toggle_thinking(self) -> None:
        """Thinking on or off for this conversation (saved with it); a model without a thinking format says why
        there is nothing to switch."""
        model = self.model
        if model is not None and model.thinking is None:
            self.show_notice(f"{model.name} has no thinking format: there is no thinking to switch.", "info")
            return
        thinking = self.session.settings.thinking is False  # None (the model's default) means on
        self.store.save_settings(self.session, self.session.settings.merged(thinking=thinking))
        how = "its template's switch" if model is None or model.thinking_switch else "ended at once: no switch"
        words = "on" if thinking else f"off ({how})"
        self.show_notice(f"Thinking {words} for this conversation, from the next message.", "info")

    def action_show_thinking(self) -> None:
        """Expand or collapse the thinking of the focused message, or of the last answer."""
        if not self.conversation.toggle_thinking_of(self.conversation.message_for_copy(self.focused)):
            self.notify("That answer has no thinking to show.", severity="warning")

    async def action_edit_last(self) -> None:
        """Take back the last message: it returns to the prompt (with its images) for editing and resending."""
        if self._refused_while_busy("edit the last message"):
            return
        last_user = self.session.last_user()
        if last_user is None:
            self.show_notice("There is no message to edit yet.", "info")
            return
        dropped = self.session.truncate_from(last_user)
        self.store.drop_from(last_user)
        await self.conversation.drop(dropped)
        pane = self.attachment_pane
        pane.clear()
        self._attach_paths(last_user.images)
        self.prompt.set_text(last_user.text)
        self.prompt.focus()
