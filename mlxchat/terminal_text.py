"""Provides `visible()`: text from a model or a server made safe to write to a terminal.

One rule for every place that puts someone else's text on a terminal (the chat screen's messages, `mlxchat ask`
on a terminal, its error lines): a terminal reads ESC, CSI, OSC, BEL or CAN as commands, so a hostile server or
broken weights could set the clipboard (OSC 52), retitle the window or clear the screen. Plain Python, so both the
UI and the headless command line use it.
"""

from __future__ import annotations

# C0 controls become their visible symbols (U+2400 block), DEL its symbol, C1 controls (0x80–0x9F, which
# include the 8-bit CSI and OSC) U+FFFD. Newline and tab are text.
_VISIBLE = {code: chr(0x2400 + code) for code in range(32) if chr(code) not in "\n\t"}
_VISIBLE.update({0x7F: "\u2421", **{code: "\ufffd" for code in range(0x80, 0xA0)}})


def visible(text: str) -> str:
    """`text` safe to draw: control characters replaced by visible stand-ins (newline and tab kept)."""
    return text.translate(_VISIBLE)
