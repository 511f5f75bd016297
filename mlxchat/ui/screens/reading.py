"""Provides the chat screen's reading actions: copy a message or code block (OSC 52), scroll, focus."""

from __future__ import annotations

from ..widgets.message import MessageView, code_blocks


class ReadingMixin:
    """`ChatScreen`'s copy, scroll and focus actions."""

    def _message_for_copy(self) -> MessageView | None:
        if isinstance(self.focused, MessageView):
            return self.focused
        answers = [view for view in self.conversation.views() if view.turn.role == "assistant"]
        return answers[-1] if answers else None

    def action_copy_message(self) -> None:
        view = self._message_for_copy()
        if view is None or not view.text:
            self.notify("There is no message to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(view.text)
        self.notify(f"Copied the message ({len(view.text)} characters).")

    def action_copy_code(self) -> None:
        view = self._message_for_copy()
        blocks = code_blocks(view.text) if view is not None else []
        if not blocks:
            self.notify("No code block to copy in that message.", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify(f"Copied the code block ({len(blocks[-1].splitlines())} lines).")

    def action_scroll_conversation(self, pages: int) -> None:
        conversation = self.conversation
        if pages < 0:
            conversation.scroll_page_up(animate=False)
        elif conversation.scroll_y >= conversation.max_scroll_y:
            conversation.anchor()  # already at the bottom: paging down must not let go of the answer
        else:
            conversation.scroll_page_down(animate=False)  # reaching the bottom re-anchors (Widget.anchor)

    def action_focus_prompt(self) -> None:
        self.prompt.focus()
