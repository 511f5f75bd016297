"""Provides `SessionStore`: keeps the chat screen's `ChatSession` and the history database in step, off the UI's
event loop, losing nothing when a write fails.

What is written, and when: a user turn when the engine accepts it; an answer at its `Finished` (complete,
stopped or failed; a continued answer updates the same row), and, while it streams, every `partial_every_s`
seconds as "stopped" (so a `kill -9` loses at most those last seconds). The conversation row is created with
the first message, so opening and leaving an empty chat leaves nothing behind. Nothing is written per token.

How: every write goes into one queue, in order, and one history thread does them; the event loop never waits for
SQLite (another window may hold its lock for seconds). A write that waits longer than `lock_notice_after_s` is
named on screen. A write that fails (full disk, lock held past the store's bounded wait, read-only folder) stays
at the head of the queue with everything behind it, and is tried again later, and whenever new work arrives: so
an answer is never written while its question is unsaved, and the order on disk is the order on screen. At quit
the app calls `flush`; what is still unsaved after it is in `unsaved_sessions()`, which `export_unsaved` writes
to a Markdown file.

Reads (opening a conversation, the list) happen at once: the store's reads never wait behind writes. Closing
finishes what is queued (bounded by the store's lock wait) rather than dropping it.

Two windows on one conversation: a removal (regenerate, edit and resend) deletes only the messages this window
loaded or wrote, never turns another window added meanwhile.

Without a `History` (tests, `--no-history` one day) every method is a no-op that succeeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from mlxchat.engine import Stats
from mlxchat.settings import ChatSettings

from .chat_model import ChatSession, Turn

Report = Callable[[str, str], None]
"""`report(text, kind)`: show one line to the user; kind is "warning" (not saved, waiting) or "info" (saved)."""

PARTIAL_EVERY_S = 3.0
"""How often a streaming answer is saved (as "stopped"): what a `kill -9` can lose at most."""
LOCK_NOTICE_AFTER_S = 1.0
"""A write still waiting after this long is named on screen (another window holds the history's lock)."""
RETRY_AFTER_S = (2.0, 60.0)
"""A failed write is tried again after the first figure, doubling up to the second (and whenever more comes)."""


def stats_from_dict(data) -> Stats | None:
    """The engine's `Stats` back from the dict the store keeps, or None when it does not fit."""
    if not data:
        return None
    names = {field.name for field in dataclasses.fields(Stats)}
    try:
        return Stats(**{name: data[name] for name in names})
    except (KeyError, TypeError):
        return None


def session_from(conversation) -> ChatSession:
    """A `ChatSession` showing a stored conversation. Its id is the stored id, which also scopes the engine's
    prompt cache, so reopening a conversation reuses what the engine still holds for it."""
    turns = [_turn_from(message) for message in conversation.messages if message.role in ("user", "assistant")]
    return ChatSession(
        id=conversation.id,
        title=conversation.title,
        settings=conversation.settings,
        turns=turns,
        stored_id=conversation.id,
    )


def _turn_from(message) -> Turn:
    """A stored message as a turn; which attachments are documents is decided here, once, by the history's rule
    (`StoredMessage.document_paths`, which reads each file's start)."""
    documents = message.document_paths
    return Turn(
        role=message.role,
        text=message.text,
        images=tuple(path for path in (a.path for a in message.attachments) if path not in documents) + documents,
        documents=documents,
        status=message.status,
        stats=stats_from_dict(message.stats),
        tokens=(message.stats or {}).get("generation_tokens", 0),
        stored_id=message.id,
        thinking=message.thinking,
        thinking_tokens=(message.stats or {}).get("reasoning_tokens", 0),
        thought_before_s=None if message.thinking else 0.0,  # how long it took is not stored
    )


def conversation_of(session: ChatSession):
    """The session as the store's `Conversation` value (for export), whether or not it was ever saved; an answer
    still streaming counts as stopped."""
    from mlxchat.store import Conversation, StoredAttachment, StoredMessage

    now = datetime.now(timezone.utc)
    messages = tuple(
        StoredMessage(
            id=turn.stored_id or 0,
            conversation_id=session.stored_id or session.id,
            role=turn.role,
            text=turn.text,
            status=stored_status(turn),
            created_at=now,
            stats=dataclasses.asdict(turn.stats) if turn.stats is not None else None,
            attachments=tuple(StoredAttachment("", path.name, path, 0) for path in turn.images),
        )
        for turn in session.turns
    )
    return Conversation(session.stored_id or session.id, session.title, now, now, session.settings, messages)


def stored_status(turn: Turn) -> str:
    """What the history keeps for a turn: one still streaming is saved as stopped (continue picks it up)."""
    return "stopped" if turn.status == "streaming" else turn.status


@dataclass
class _Write:
    """One queued write: `run` does it on the history thread and may raise `StoreError`."""

    what: str
    """Named in a failure notice: "your message", "the answer"."""
    run: Callable[[], object]
    session: ChatSession | None
    optional: bool = False
    """Dropped instead of retried when it fails (noting when a conversation was opened)."""
    partial_of: Turn | None = None
    done: bool = False
    """Set on the history thread once `run` succeeded (a write is never done twice)."""

    def __call__(self) -> None:
        self.run()
        self.done = True


class SessionStore:
    """Writes sessions to `history` (or nowhere). `report` shows a problem, or its end, to the user."""

    last_problem: str = ""
    """The last failure, in words ("Cannot save the message: … is full."), for the question asked at quit."""

    def __init__(
        self,
        history,
        report: Report,
        *,
        clock: Callable[[], float] = time.monotonic,
        partial_every_s: float = PARTIAL_EVERY_S,
        lock_notice_after_s: float = LOCK_NOTICE_AFTER_S,
        retry_after_s: tuple[float, float] = RETRY_AFTER_S,
    ) -> None:
        self.history = history
        self._report_to_user = report
        self._clock = clock
        self.partial_every_s = partial_every_s
        self.lock_notice_after_s = lock_notice_after_s
        self.retry_after_s = retry_after_s
        self._queue: deque[_Write] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._pump: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._flushing = False
        self._troubled = False
        """A failure or a long wait was reported and not yet followed by "saved"."""
        self._partial_saved_at: dict[int, float] = {}
        self._known_ids: dict[str, set[int]] = {}
        """Per conversation, the message ids this window loaded or wrote: all a removal may touch."""

    @property
    def enabled(self) -> bool:
        return self.history is not None

    @property
    def read_only(self) -> bool:
        """True when the history can be read but nothing can be saved (a read-only data folder)."""
        return self.enabled and self.history.read_only

    # ---- writes ---------------------------------------------------------------------------------------------

    def save_user(self, session: ChatSession, turn: Turn) -> None:
        if not self.enabled:
            return
        named = session.title != "New chat"  # a title given before the first save (a chat from a summary) stays
        if session.stored_id is None and not named and [t for t in session.turns if t.role == "user"] == [turn]:
            from mlxchat.store.rows import auto_title  # the store names a new conversation by the same rule

            session.title = auto_title(turn.text)

        def write() -> None:
            stored = self.history.add_message(self._conversation_id(session), "user", turn.text, images=turn.images)
            turn.stored_id = stored.id
            self._know(stored.conversation_id, stored.id)

        self._enqueue(_Write("your message", write, session))

    def save_answer(self, session: ChatSession, turn: Turn) -> None:
        """Save an answer that has ended (or, through `save_partial`, one still streaming)."""
        if not self.enabled or turn.role != "assistant":
            return
        self._partial_saved_at.pop(id(turn), None)
        self._enqueue(_Write("the answer", lambda: self._write_answer(session, turn), session))

    def save_partial(self, session: ChatSession, turn: Turn, replacing: Turn | None = None) -> bool:
        """Called as an answer streams: saves it (as stopped) at most every `partial_every_s` seconds, and never
        queues a second save of it while one is waiting. `replacing`, the stored answer a retry replaces, is
        removed just before that save, in the same queue, never sooner: a crash in between keeps one of the two.
        True when the save was queued (and `replacing` with it)."""
        if not self.enabled or turn.role != "assistant" or not turn.text.strip():  # blank is no answer yet
            return False
        now = self._clock()
        last = self._partial_saved_at.setdefault(id(turn), now)
        if now - last < self.partial_every_s or any(write.partial_of is turn for write in self._queue):
            return False
        self._partial_saved_at[id(turn)] = now
        if replacing is not None:
            self.drop_from(replacing)
        self._enqueue(_Write("the answer so far", lambda: self._write_answer(session, turn), session, partial_of=turn))
        return True

    def drop_from(self, turn: Turn) -> None:
        """Delete `turn` and the later turns of its conversation that this window shows or wrote (regenerate,
        edit and resend). Turns another window added to the same conversation stay: each window removes only
        its own."""
        if self.enabled:
            self._enqueue(_Write("the removal", lambda: self._delete_from(turn), None))

    def _delete_from(self, turn: Turn) -> None:
        if turn.stored_id is None:
            return
        known = next((ids for ids in self._known_ids.values() if turn.stored_id in ids), {turn.stored_id})
        doomed = {message_id for message_id in known if message_id >= turn.stored_id}
        self.history.delete_messages(doomed)
        known -= doomed

    def forget_emptied(self, session: ChatSession) -> None:
        """The only message of a conversation was taken back (refused, not sent): the conversation its save
        created holds nothing now and goes from the history, and `session` is unsaved again, so its next message
        creates and names a conversation afresh. Queued behind that message's own save (which sets the id)."""
        if not self.enabled:
            return

        def write() -> None:
            if session.stored_id is not None:
                self._known_ids.pop(session.stored_id, None)
                self.history.delete_conversation(session.stored_id)
                session.stored_id = None

        self._enqueue(_Write("the removal", write, None))

    def _know(self, conversation_id: str, message_id: int) -> None:
        self._known_ids.setdefault(conversation_id, set()).add(message_id)

    def save_settings(self, session: ChatSession, settings: ChatSettings) -> None:
        session.settings = settings
        if self.enabled:

            def write() -> None:
                if session.stored_id is not None:  # else they are saved with the conversation's first message
                    self.history.update_settings(session.stored_id, session.settings)

            self._enqueue(_Write("the settings", write, session))

    def _conversation_id(self, session: ChatSession) -> str:
        if session.stored_id is None:
            title = session.title if session.title != "New chat" else None  # None: named after its first message
            session.stored_id = self.history.create_conversation(title, settings=session.settings).id
        return session.stored_id

    def _write_answer(self, session: ChatSession, turn: Turn) -> None:
        status = stored_status(turn)
        if turn.stored_id is None:
            stored = self.history.add_message(
                self._conversation_id(session),
                "assistant",
                turn.text,
                status=status,
                stats=turn.stats,
                thinking=turn.thinking,
            )
            turn.stored_id = stored.id
            self._know(stored.conversation_id, stored.id)
        else:
            self.history.update_message(
                turn.stored_id, text=turn.text, status=status, stats=turn.stats, thinking=turn.thinking
            )

    # ---- reads ----------------------------------------------------------------------------------------------

    def load(self, conversation_id: str) -> ChatSession | None:
        """The stored conversation as a session, or None (with a report) when it cannot be read. Opening it is
        noted, so `mlxchat -c` comes back to it."""
        from mlxchat.store import StoreError

        try:
            session = session_from(self.history.get_conversation(conversation_id))
        except StoreError as exc:
            self._report(f"Cannot open that conversation: {exc}")
            return None
        self.know(session)
        self.note_opened(conversation_id)
        return session

    def know(self, session: ChatSession) -> None:
        """Take note of a stored session's turns (a loaded or resumed one): a removal from here may touch them."""
        if session.stored_id is not None:
            for turn in session.turns:
                if turn.stored_id is not None:
                    self._know(session.stored_id, turn.stored_id)

    def note_opened(self, conversation_id: str) -> None:
        """Remember that this conversation was opened now (best effort: nothing is lost when it fails)."""
        if self.enabled and not self.read_only:
            self._enqueue(_Write("", lambda: self.history.mark_opened(conversation_id), None, optional=True))

    def exists(self, conversation_id: str | None) -> bool:
        from mlxchat.store import StoreError

        if not self.enabled or conversation_id is None:
            return False
        try:
            self.history.get_conversation(conversation_id)
        except StoreError:
            return False
        return True

    # ---- what is not saved ----------------------------------------------------------------------------------

    @property
    def unsaved_count(self) -> int:
        """Writes still waiting (turns, removals, settings), not counting best-effort notes."""
        return sum(not write.optional for write in self._queue)

    def unsaved_sessions(self) -> list[ChatSession]:
        """The conversations with something not yet in the history, each once, in the order of their writes."""
        sessions: list[ChatSession] = []
        for write in self._queue:
            if not write.optional and write.session is not None and all(s is not write.session for s in sessions):
                sessions.append(write.session)
        return sessions

    def export_unsaved(self, folders: Iterable[Path]) -> list[Path]:
        """Write each conversation with unsaved turns, whole, as Markdown into the first of `folders` that takes
        it; returns the files. Raises OSError when no folder does."""
        from mlxchat.store import export_conversation, suggested_file_name

        written = []
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for session in self.unsaved_sessions():
            conversation = conversation_of(session)
            name = f"unsaved-{stamp}-{suggested_file_name(conversation)}"
            error: OSError | None = None
            for folder in folders:
                try:
                    written.append(export_conversation(conversation, Path(folder) / name, "markdown"))
                    break
                except OSError as exc:
                    error = exc
            else:
                raise error or OSError("no folder to write the unsaved conversation to")
        return written

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Try every waiting write now (once more for one that failed), waiting at most `timeout_s`. True when
        nothing is left unsaved."""
        if not self.enabled or not self._queue:
            return self.unsaved_count == 0
        self._flushing = True
        try:
            self._start_pump()
            if self._pump is not None:
                await asyncio.wait({self._pump}, timeout=timeout_s)
        finally:
            self._flushing = False
        return self.unsaved_count == 0

    def close(self) -> None:
        """Finish the queue here and now (the app is closing: nothing waits on the event loop any more), then stop
        the history thread. Bounded: a write waits at most the store's lock timeout, and the first one that
        fails stops it; what is left stays in `unsaved_sessions()`."""
        if self._pump is not None:
            self._pump.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # the write in flight, if any, ends (done or failed)
            self._executor = None
        self._write_all_now()

    # ---- the queue ------------------------------------------------------------------------------------------

    def _report(self, text: str, kind: str = "warning") -> None:
        try:
            self._report_to_user(text, kind)
        except Exception:  # the screen may be gone while the app closes; saving must go on regardless
            pass

    def _enqueue(self, write: _Write) -> None:
        self._queue.append(write)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a plain test): write now, on this thread
            self._write_all_now()
            return
        self._start_pump()

    def _start_pump(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run_queue(), name="history writes")

    def _write_all_now(self) -> None:
        """Do the queue on this thread, in order, stopping at the first write that fails."""
        while self._queue:
            write = self._queue[0]
            error = None if write.done else self._do(write)
            if error is not None and error.kind == "not-found" and self._conversation_gone(write):
                continue
            if error is not None and not write.optional and error.kind != "not-found":
                self._report_failure(write, error)
                return
            self._queue.popleft()

    @staticmethod
    def _do(write: _Write):
        """Run `write`; the StoreError it raised (a bug's exception becomes one, so the turn is kept), or None."""
        from mlxchat.store import StoreError

        try:
            write()
        except StoreError as exc:
            return exc
        except Exception as exc:
            return StoreError(f"Cannot save ({exc.__class__.__name__}: {exc}).", "other")
        return None

    async def _run_queue(self) -> None:
        """Do the queued writes in order; a failed one is retried (later, or when woken) before anything behind
        it. Ends when the queue is empty, or after one failed round while flushing."""
        delay = self.retry_after_s[0]
        while self._queue:
            self._wake.clear()
            write = self._queue[0]
            error = await self._attempt(write)
            if error is not None and error.kind == "not-found" and self._conversation_gone(write):
                continue
            if error is None or write.optional or error.kind == "not-found":
                self._queue.popleft()
                deleted_here = write.session is not None and write.session.stored_id in self.history.deleted_here
                if error is not None and not write.optional and not deleted_here:
                    self._report(f"History not saved ({write.what}): {error}")
                delay = self.retry_after_s[0]
                continue
            self._report_failure(write, error)
            if self._flushing:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, self.retry_after_s[1])
        self.last_problem = ""
        if self._troubled:
            self._troubled = False
            self._report("History saved again: everything on screen is in it now.", "info")

    def _conversation_gone(self, write: _Write) -> bool:
        """When `write`'s conversation was deleted meanwhile (another window's F2): save the session whole, in
        order, as a new conversation instead, in place of its queued writes. False when that is not the case."""
        session = write.session
        if session is None or session.stored_id is None or session.stored_id in self.history.deleted_here:
            return False  # deleted from this window: it stays deleted
        if self.exists(session.stored_id):
            return False
        self._known_ids.pop(session.stored_id, None)
        session.stored_id = None
        for turn in session.turns:
            turn.stored_id = None
        self._queue = deque(queued for queued in self._queue if queued.session is not session)
        self._queue.appendleft(_Write("the conversation", lambda: self._write_whole(session), session))
        self._report(
            "This conversation was deleted in another window; what is on screen is saved again as a new conversation.",
            "info",
        )
        return True

    def _write_whole(self, session: ChatSession) -> None:
        """Every turn of `session` with text (a streaming answer as stopped so far), into a new conversation."""
        for turn in session.turns:
            if turn.role == "user":
                stored = self.history.add_message(self._conversation_id(session), "user", turn.text, images=turn.images)
                turn.stored_id = stored.id
                self._know(stored.conversation_id, stored.id)
            elif turn.text:
                self._write_answer(session, turn)

    async def _attempt(self, write: _Write):
        """Run one write on the history thread; the StoreError it raised, or None. A long wait is named."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-writer")
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._do, write)
        done, _ = await asyncio.wait({future}, timeout=self.lock_notice_after_s)
        if not done and not write.optional:
            self._troubled = True
            self._report(
                "Saving to the history is waiting: another program (another mlxchat window?) holds its lock. "
                "The conversation stays on screen and is saved when the lock is free."
            )
        return await future

    def _report_failure(self, write: _Write, error) -> None:
        """Say it once per problem: a retry that fails the same way stays quiet."""
        if str(error) != self.last_problem:
            waiting = "" if self.read_only else " and saving is tried again"
            self._report(f"History not saved ({write.what}): {error} The conversation stays on screen{waiting}.")
        self.last_problem = str(error)
        self._troubled = True
