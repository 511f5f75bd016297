"""Provides the chat screen's conversation actions: new, switch, settings, edit-and-resend, and saving turns.

Nothing here talks to the engine except through the screen's own `load_model`; switching conversations or
editing history while an answer runs is refused with a line saying so (the engine would refuse the next request
anyway, and a half-switched screen would lie about what the model is answering).
"""

from __future__ import annotations

from textual.widgets import Label

from ..chat_model import ChatSession, Turn
from .conversations import ConversationsResult, ConversationsScreen
from .settings import SettingsScreen


class HistoryMixin:
    """`ChatScreen`'s history actions. Uses `self.store` (a `SessionStore`) and `self.session`."""

    # ---- hooks the sending code calls ------------------------------------------------------------------------

    def on_user_sent(self, turn: Turn) -> None:
        self.store.save_user(self.session, turn)
        self.show_title()

    async def on_turn_finished(self, turn: Turn) -> None:
        self.store.save_answer(self.session, turn)

    def on_turns_dropped(self, first: Turn) -> None:
        self.store.drop_from(first)

    # ---- showing a session -----------------------------------------------------------------------------------

    def show_title(self) -> None:
        if self.has_panes:
            self.query_one("#chat-title", Label).update(self.session.title)

    async def show_session(self, session: ChatSession) -> None:
        """Replace what the screen shows with `session`, loading its model when it names another one."""
        self.session = session
        self.show_title()
        self.clear_notice()
        conversation = self.conversation
        await conversation.clear_turns()
        views = [
            conversation.new_view(turn, label="you" if turn.role == "user" else self._assistant_label())
            for turn in session.turns
        ]
        if views:
            await conversation.show(*views)
        for view in views:
            view.refresh_from_turn(self._stopped_hint(view.turn) if view.turn.status == "stopped" else "")
        conversation.anchor()
        if session.settings.model != self.model_spec:
            self.load_model(session.settings.model)

    def _refused_while_busy(self, what: str) -> bool:
        if self.busy:
            self.show_notice(f"The engine is busy: stop it first (Esc), then {what}.", "warning")
            return True
        return False

    # ---- actions ---------------------------------------------------------------------------------------------

    async def action_new_conversation(self) -> None:
        if self._refused_while_busy("start a new conversation"):
            return
        await self.show_session(ChatSession(settings=self.default_settings))
        self.prompt.focus()

    def action_conversations(self) -> None:
        if not self.store.enabled:
            self.show_notice("History is off in this session, so there is no list of conversations.", "info")
            return

        async def chosen(result: ConversationsResult | None) -> None:
            if result is not None and (result.new or result.open_id):
                if self._refused_while_busy("switch conversations"):
                    return
                if result.new:
                    await self.show_session(ChatSession(settings=self.default_settings))
                elif result.open_id != self.session.stored_id:
                    session = self.store.load(result.open_id)
                    if session is not None:
                        await self.show_session(session)
            elif self.session.stored_id is not None and not self.store.exists(self.session.stored_id):
                await self.show_session(ChatSession(settings=self.default_settings))  # it was deleted
            elif self.session.stored_id is not None:
                fresh = self.store.load(self.session.stored_id)
                if fresh is not None:
                    self.session.title = fresh.title
                    self.show_title()
            self.prompt.focus()

        self.app.push_screen(ConversationsScreen(self.store.history, self.session.stored_id), chosen)

    def action_conversation_settings(self) -> None:
        def chosen(settings) -> None:
            if settings is None:
                return
            model_changed = settings.model != self.session.settings.model
            self.store.save_settings(self.session, settings)
            if model_changed and settings.model != self.model_spec:
                self.load_model(settings.model)
            self.prompt.focus()

        self.app.push_screen(SettingsScreen(self.session.settings, self.session.title), chosen)

    async def action_edit_last(self) -> None:
        """Take back the last message: it returns to the prompt (with its images) for editing and resending."""
        if self._refused_while_busy("edit the last message"):
            return
        last_user = self.session.last_user()
        if last_user is None:
            self.show_notice("There is no message to edit yet.", "info")
            return
        dropped = self.session.truncate_from(last_user)
        self.on_turns_dropped(last_user)
        for view in self.conversation.views():
            if any(view.turn is turn for turn in dropped):
                await view.remove()
        self.attachments.clear()
        for path in last_user.images:
            self.attach(path)
        self._show_attachments()
        self.prompt.set_text(last_user.text)
        self.prompt.focus()
