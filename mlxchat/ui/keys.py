"""Provides the one table of user actions: its key bindings, command palette entries and help screen rows.

Every action is declared once here, so a binding, its palette command and its help line cannot drift apart.
Each binding has an id (the `[keymap]` table of `config.toml` remaps keys by id through `App.set_keymap`).
`scope` says where the action runs: "app" (anywhere), "chat" (the chat screen) or "prompt" (the prompt box;
listed for help and the palette, bound in `PromptInput`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

from textual.binding import Binding
from textual.keys import KEY_NAME_REPLACEMENTS, Keys, key_to_character

Scope = Literal["app", "chat", "prompt"]


@dataclass(frozen=True)
class ActionSpec:
    id: str
    """Binding id, the name used in a keymap."""
    keys: str
    action: str
    title: str
    help: str
    scope: Scope = "chat"
    footer: bool = False
    priority: bool = False
    key_display: str | None = None

    def binding(self) -> Binding:
        return Binding(
            self.keys,
            self.action,
            self.title,
            show=self.footer,
            priority=self.priority,
            id=self.id,
            key_display=self.key_display,
            tooltip=self.help,
        )


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("send", "enter", "submit", "Send", "Send the prompt (with the attached images)", "prompt"),
    ActionSpec(
        "newline", "ctrl+j,shift+enter,alt+enter", "newline", "New line",
        "Insert a line break. Ctrl+J works in every terminal; Shift+Enter and Alt+Enter only where the terminal "
        "reports them (kitty keyboard protocol: kitty, WezTerm, foot, Ghostty); elsewhere they may send",
        "prompt",
    ),
    ActionSpec(
        "history", "up,down", "cursor_up", "Earlier prompts", "Up on the first line / Down on the last recall prompts",
        "prompt",
    ),
    ActionSpec("cancel", "escape", "cancel", "Stop", "Stop the answer (or model load); the partial answer stays", footer=True),
    ActionSpec(
        "cancel_generation", "ctrl+c", "cancel_generation", "Stop (Ctrl+C)",
        "While an answer is generating, Ctrl+C stops it too; otherwise it copies as usual", priority=True,
    ),
    ActionSpec("continue_answer", "ctrl+r", "continue_answer", "Continue", "Continue the stopped answer", footer=True),
    ActionSpec("retry_answer", "f5", "retry_answer", "Retry", "Answer the last message again, replacing the answer"),
    ActionSpec("attach_file", "ctrl+o", "attach_file", "Attach", "Pick an image or a document", footer=True),
    ActionSpec("remove_attachment", "f8", "remove_attachment", "Remove image", "Remove the focused or last attached image"),
    # Priority: TextArea binds F6/F7 to select line/all, which a one-box prompt has little use for.
    ActionSpec(
        "copy_message", "f6", "copy_message", "Copy message", "Copy the focused message, or the last answer",
        priority=True,
    ),
    ActionSpec(
        "copy_code", "f7", "copy_code", "Copy code", "Copy the last code block of the focused message or answer",
        priority=True,
    ),
    ActionSpec(
        "scroll_up", "shift+pageup,ctrl+up", "scroll_conversation(-1)", "Scroll up",
        "Scroll the conversation up a page (it stops following the answer)",
    ),
    ActionSpec(
        "scroll_down", "shift+pagedown,ctrl+down", "scroll_conversation(1)", "Scroll down",
        "Scroll the conversation down a page (at the bottom it follows the answer again)",
    ),
    ActionSpec("focus_prompt", "ctrl+l", "focus_prompt", "Prompt", "Put the cursor back in the prompt"),
    ActionSpec("new_conversation", "ctrl+n", "new_conversation", "New chat", "Start a new conversation", footer=True),
    ActionSpec(
        "conversations", "f2", "conversations", "Conversations",
        "List, search, open, rename and delete saved conversations", footer=True,
    ),
    ActionSpec(
        "conversation_settings", "f3", "conversation_settings", "Settings",
        "This conversation's system prompt, temperature, top-p, max tokens, seed and model",
    ),
    ActionSpec(
        "pick_model", "ctrl+t", "pick_model", "Models",
        "Pick a model to load, or type org/name to download one; it becomes the default for new chats",
    ),
    ActionSpec(
        "toggle_thinking", "ctrl+b", "toggle_thinking", "Thinking on/off",
        "Turn a reasoning model's thinking on or off for this conversation",
    ),
    ActionSpec(
        "show_thinking", "alt+t", "show_thinking", "Show thinking",
        "Expand or collapse the thinking of the focused message, or of the last answer (a click does it too)",
    ),
    ActionSpec("edit_last", "f9", "edit_last", "Edit last", "Take the last message back into the prompt to edit and resend"),
    ActionSpec("help", "f1", "help", "Help", "Show every key", "app", footer=True),
    ActionSpec("change_theme", "f4", "change_theme", "Theme", "Choose a theme (remembered)", "app"),
    ActionSpec("command_palette", "ctrl+p", "command_palette", "Commands", "Search every action", "app"),
    ActionSpec("quit", "ctrl+q", "quit", "Quit", "Quit; a running answer is stopped and drained first", "app", footer=True, priority=True),
)


MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
_NAMED_KEYS = frozenset(key.value.rpartition("+")[2] for key in Keys if not key.value.startswith("<")) | frozenset(
    KEY_NAME_REPLACEMENTS.values()
)


def key_problem(key: str) -> str | None:
    """Why `key` ("ctrl+shift+up", "f5", "question_mark") is not a key Textual can bind, or None when it is."""
    *modifiers, name = key.strip().lower().split("+")
    if any(modifier not in MODIFIERS for modifier in modifiers):
        bad = next(modifier for modifier in modifiers if modifier not in MODIFIERS)
        return f"{bad!r} is not a modifier (ctrl, shift, alt, meta, super)" if bad else "a '+' with no key beside it"
    if name in _NAMED_KEYS or (len(name) == 1 and name.isprintable()) or key_to_character(name) is not None:
        return None
    return f"{name!r} is not a key name (examples: ctrl+n, f5, escape, pageup, question_mark)"


def checked_keymap(keymap: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The keymap entries whose keys are all valid, and one problem line per entry left out.

    An entry with a key Textual cannot parse would replace the action's keys with nothing usable (the quit key
    was lost that way): it is rejected whole, and the action keeps its default keys.
    """
    kept, problems = {}, []
    for binding_id, keys in keymap.items():
        why = next((key_problem(key) for key in keys.split(",") if key_problem(key)), None)
        if why:
            spec = next((spec for spec in ACTIONS if spec.id == binding_id), None)
            default = f"; {binding_id} keeps {keys_for(spec, {})}" if spec else ""
            problems.append(f"config.toml: keymap.{binding_id} = {keys!r} ignored: {why}{default}.")
        else:
            kept[binding_id] = keys
    return kept, problems


def bindings(scope: Scope, actions: Iterable[ActionSpec] = ACTIONS) -> list[Binding]:
    return [spec.binding() for spec in actions if spec.scope == scope]


def keys_for(spec: ActionSpec, keymap: Mapping[str, str]) -> str:
    """The keys that run `spec` now, as a person reads them ("ctrl+r", "f5")."""
    keys = keymap.get(spec.id, spec.keys)
    return ", ".join(key.strip() for key in keys.split(",") if key.strip())


def first_key(action_id: str, keymap: Mapping[str, str]) -> str:
    spec = next(spec for spec in ACTIONS if spec.id == action_id)
    return keys_for(spec, keymap).split(",")[0].strip()
