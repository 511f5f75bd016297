"""Provides `ConversationView`: one conversation's turns, newest at the bottom, and the answer streaming into it.

The view owns its `MessageView`s and the answer being written: the screen begins an answer, appends what the
engine sends, and finishes it with the request's `Finished`; everything about showing that (the turn's status,
its footer and hint, the Markdown stream) happens here. It can show a whole session, drop turns, pick the
message to copy, and scroll.

The message view's module (Textual's Markdown and markdown-it, ~40 ms) is imported with the first message shown,
not with this one: a new chat's first frame draws no message. So messages are found by their type's name.

It is anchored (`Widget.anchor()`): while the reader is at the bottom, new text keeps it there; once they scroll
up it stays where they put it, and returning to the bottom re-anchors it. Nothing here polls or forces scrolling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from textual.containers import VerticalScroll
from textual.widget import AwaitMount
from textual.widgets import Static

from mlxchat.engine import Finished, ThinkingDone

from ..chat_model import Turn, TurnStatus, can_continue
from ..engine_status import AnswerKeys
from .steady_update import laid_out_virtual_size
from .thinking import ThinkingBlock

if TYPE_CHECKING:
    from .message import MessageView

WELCOME = (
    "Ask anything below and press Enter.\n"
    "Drop an image or a document, or paste its path, to attach it. F1 lists every key."
)

TURN_STATUS: dict[str, TurnStatus] = {
    "stop": "complete",
    "length": "complete",
    "cancelled": "stopped",
    "shutdown": "stopped",
    "error": "error",
}
"""What each `Finished.reason` makes of the answer it ends."""

MESSAGES = "MessageView"
"""The selector of every message view (a type selector, so finding them does not import their module)."""


def message_view(turn: Turn, label: str) -> MessageView:
    """A view of `turn` headed `label`; the first one imports the message view's module."""
    from .message import MessageView

    return MessageView(turn, label=label)


def answer_hint(turn: Turn, reason: str | None, keys: AnswerKeys, context_full: bool = False) -> str:
    """The keys worth knowing under an answer: continue or retry a stopped one, retry one cut at max tokens; one
    cut at the model's context limit says so."""
    if turn.status == "stopped":
        return keys.stopped_hint(can_continue(turn))
    if reason == "length":
        return keys.length_hint(context_full)
    return ""


class ConversationView(VerticalScroll, can_focus=False):
    """The scrolling list of one conversation's `MessageView`s, and the answer streaming into it, if any."""

    virtual_size = laid_out_virtual_size()

    def __init__(self, *, keys: AnswerKeys, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys = keys
        """The continue and retry keys, named in the hints under stopped answers."""
        self.answer: MessageView | None = None
        """The view the awaited answer streams into; None when no answer is being written here."""

    def compose(self):
        yield Static(WELCOME, id="welcome", markup=False)

    def on_mount(self) -> None:
        self.anchor()

    # ---- an answer, from first token to Finished --------------------------------------------------------------

    def add_exchange(self, question: Turn, answer: Turn, *, label: str) -> AwaitMount:
        """Show `question` and begin `answer` below it (the answer streams in as `append` is called)."""
        self.answer = message_view(answer, label)
        return self._show(message_view(question, "you"), self.answer)

    async def replace_answer(self, answer: Turn, *, label: str, replacing: Turn | None) -> None:
        """Begin `answer` in place of the answer `replacing` (a retry), or below the last turn."""
        self.answer = message_view(answer, label)
        shown = self._show(self.answer)  # first: a quick refusal's `Finished` may come while the old one goes
        if replacing is not None:
            await self.drop([replacing])
        await shown

    async def put_back(self, answer: Turn, *, label: str, refused: Turn) -> None:
        """Show `answer` again where `refused` is: the retry that replaced it was refused before it wrote anything."""
        view = message_view(answer, label)
        view.refresh_from_turn(answer_hint(answer, None, self.keys))
        await self.mount(view, before=self._view_of(refused))
        await self.drop([refused])

    def continue_answer(self, answer: Turn) -> None:
        """The last answer (`answer`, stopped) streams again: new text is appended to what it shows."""
        view = self._view_of(answer)
        answer.status = "streaming"
        view.refresh_from_turn()
        self.answer = view

    def stopped_again(self, answer: Turn) -> None:
        """A continue of `answer` was refused before it wrote anything: it is the stopped answer it was."""
        answer.status, answer.error = "stopped", None
        self._view_of(answer).refresh_from_turn(answer_hint(answer, None, self.keys))

    def give_way(self) -> None:
        """A key was typed: the answer streaming here, if any, draws after the key's frame, not in it."""
        if self.answer is not None:
            self.answer.give_way()

    async def append(self, text: str, tokens: int) -> None:
        """Add streamed `text` (`tokens` of it) to the answer being written."""
        view = self.answer
        if not view.turn.text and view.turn.thinking:
            view.draw_thinking_due()  # the answer began: the thinking's last piece is not left for its frame
        view.turn.text += text
        view.turn.tokens += tokens
        await view.sync()

    def append_thinking(self, text: str, tokens: int, now: float) -> None:
        """Add streamed thinking to the answer being written; its block shows at once, live, and draws later pieces
        at the answer's frame budget."""
        view = self.answer
        turn = view.turn
        if turn.thinking_since is None:
            turn.thinking_since = now
        turn.thinking += text
        turn.thinking_tokens += tokens
        view.thinking_arrived(len(text))

    def end_thinking(self, event: ThinkingDone) -> None:
        """The answer starts: the thinking block collapses to one line with its time and tokens."""
        turn = self.answer.turn
        turn.thought_s = (turn.thought_before_s or 0.0) + event.seconds  # a resumed thought's times only its part
        turn.thinking_tokens, turn.thinking_cut = event.tokens, event.by_budget
        self.answer.show_thinking()

    def toggle_thinking_of(self, view: MessageView | None) -> bool:
        """Expand or collapse the thinking of `view`; False when it has none to show."""
        blocks = list(view.query(ThinkingBlock)) if view is not None else []
        if not blocks or not view.turn.thinking:
            return False
        blocks[0].toggle()
        return True

    async def finish(self, event: Finished, now: float) -> Turn:
        """End the answer being written as `event` says (at clock time `now`); returns its turn, complete, stopped
        or failed."""
        view, self.answer = self.answer, None
        turn = view.turn
        turn.pause_thinking(now)  # ended while thinking: its seconds are kept for a resume
        turn.thinking = event.reasoning or turn.thinking
        turn.status = TURN_STATUS[event.reason]
        turn.stats = event.stats or turn.stats
        turn.error = event.error
        view.refresh_from_turn(answer_hint(turn, event.reason, self.keys, event.context_full))
        # The turn and its footer are final before the view draws its last text, which may wait for a frame.
        await view.end_stream()
        return turn

    def show_window(self, out_of_view: Iterable[Turn]) -> None:
        """Mark the turns the model did not read for the last answer (the overflow policy left them out), and
        every other turn as read: a window that moved back (an edit, another policy) brings turns into view."""
        hidden = {id(turn) for turn in out_of_view}
        for view in self.query(MESSAGES):
            view.turn.in_view = id(view.turn) not in hidden
            view.in_view = view.turn.in_view

    # ---- whole conversations --------------------------------------------------------------------------------

    async def show_turns(self, turns: Iterable[Turn], *, assistant_label: str) -> None:
        """Replace what is shown with `turns` (a session opened from history, or a new empty one)."""
        await self.clear_turns()
        views = [
            message_view(turn, "you" if turn.role == "user" else assistant_label) for turn in turns
        ]
        for view in views:
            view.refresh_from_turn(answer_hint(view.turn, None, self.keys))
        if views:
            await self._show(*views)
        self.anchor()

    async def drop(self, turns: Iterable[Turn]) -> None:
        """Remove the views of `turns` (taken back for editing, or replaced by a retry)."""
        dropped = {id(turn) for turn in turns}
        views = [view for view in self.query(MESSAGES) if id(view.turn) in dropped]
        await self.remove_children(views)

    async def clear_turns(self) -> None:
        self.answer = None
        await self.query(MESSAGES).remove()
        self.query_one("#welcome").display = True

    def views(self) -> list[MessageView]:
        return list(self.query(MESSAGES))

    def last_view(self) -> MessageView | None:
        views = self.views()
        return views[-1] if views else None

    # ---- reading --------------------------------------------------------------------------------------------

    def message_for_copy(self, focused: object) -> MessageView | None:
        """The focused message if a message has focus, else the last answer."""
        views = self.views()
        if any(view is focused for view in views):
            return focused
        answers = [view for view in views if view.turn.role == "assistant"]
        return answers[-1] if answers else None

    def scroll_pages(self, pages: int) -> None:
        """Page up or down; paging down at the bottom keeps following the answer."""
        if pages < 0:
            self.scroll_page_up(animate=False)
        elif self.scroll_y >= self.max_scroll_y:
            self.anchor()  # already at the bottom: paging down must not let go of the answer
        else:
            self.scroll_page_down(animate=False)  # reaching the bottom re-anchors (Widget.anchor)

    def _show(self, *views: MessageView) -> AwaitMount:
        self.query_one("#welcome").display = False
        return self.mount_all(views)

    def _view_of(self, turn: Turn) -> MessageView:
        return next(view for view in self.query(MESSAGES) if view.turn is turn)
