"""Provides the answer's Markdown lists, which a streamed update changes in place instead of building them again.

`Markdown.append` re-parses the document's last block on every update and hands the new block to the old one's
`_update_from_block`. A paragraph takes the new text in place; a list (`MarkdownBlock`'s default) is removed and
mounted again whole, every row of it: bullet, containers and blocks. Measured on this CPU (an `AnswerMarkdown`, 40
updates of a few words to the last item): 8 ms of UI-thread CPU an update for a paragraph, 54 ms for a 4-item
list, 143 ms for 12 items, 302 ms for 30. A model writing a long list held the UI thread (and the GIL the engine's
owner thread needs between tokens) for a third of a second at every update.

Appended text can change only the last item of a list: a new item's marker closes the one before it, and within
an item only its last block is open. So `update_in_place` keeps every row but the last, updates the last row's
last block through that block's own `_update_from_block` (a paragraph's text, a nested list the same way, a
fence), mounts the rows that are new, and sets the bullets again (an ordered list's numbers widen at 10, 100 …).
Anything it does not expect goes back to Textual's way: fewer items, the last item's blocks changed kind, and the
one exception to the rule, a link reference definition (`[label]: url` turns `[label]` into a link in any item
before it: `may_define_links`). The widgets are Textual's own, so the answer looks exactly as Textual's Markdown
draws the same text (tests/ui/test_answer_lists.py compares screens).
"""

from __future__ import annotations

import re

from textual.containers import Horizontal, Vertical
from textual.widgets._markdown import (
    MarkdownBlock,
    MarkdownBullet,
    MarkdownBulletList,
    MarkdownListItem,
    MarkdownOrderedList,
    MarkdownOrderedListItem,
    MarkdownParagraph,
)

from .steady_update import laid_out_virtual_size


async def update_in_place(shown: MarkdownBlock, new: MarkdownBlock, symbols: list[str]) -> bool:
    """Make the mounted list `shown` show `new` (a freshly parsed list of the same kind, not mounted), whose items'
    bullets are `symbols`. False when it cannot (nothing has changed then): the caller builds the list again."""
    rows = [child for child in shown.children if isinstance(child, Horizontal)]
    items = [block for block in new._blocks if isinstance(block, MarkdownListItem)]
    if not rows or len(items) < len(rows) or len(symbols) != len(items) or may_define_links(shown):
        return False
    last_row, last_item = rows[-1], items[len(rows) - 1]
    body = last_row.children[-1]
    old_blocks, new_blocks = list(body.children), list(last_item._blocks)
    if not isinstance(body, Vertical) or len(new_blocks) < len(old_blocks) or not old_blocks:
        return False
    if any(type(old) is not type(block) for old, block in zip(old_blocks[:-1], new_blocks)):
        return False
    # Only the last block of the last item can have changed: the ones before it were closed by what followed.
    await update_block(old_blocks[-1], new_blocks[len(old_blocks) - 1])
    if len(new_blocks) > len(old_blocks):
        await body.mount_all(new_blocks[len(old_blocks) :])
    for row, symbol in zip(rows, symbols):
        bullet = row.children[0]
        if isinstance(bullet, MarkdownBullet) and bullet.symbol != symbol:
            widens = len(symbol) != len(bullet.symbol)
            bullet.symbol = symbol
            if widens:
                bullet.refresh(layout=True)  # the reactive repaints only; its width is the symbol's
    added = []
    for item, symbol in zip(items[len(rows) :], symbols[len(rows) :]):
        bullet = MarkdownBullet()
        bullet.symbol = symbol
        added.append(Horizontal(bullet, Vertical(*item._blocks)))
    if added:
        await shown.mount_all(added)
    shown._token = new._token
    return True


def may_define_links(shown: MarkdownBlock) -> bool:
    """Whether the text from the list's first line to the end of the document may define a link reference
    (`[label]: url`), which makes every `[label]` before it a link, in any item: the one way appended text changes
    rows before the last. `Markdown.append` re-parses from the list's first line, so Textual's way draws those links;
    kept rows would show `[label]` as it was (a fast model's update can bring a whole definition at once).

    A definition holds `]:`, and its first line starts with `[` after the markers of the quotes and items it is in:
    without both there is none. Either alone is common (`-> list[int]:` in an item's code, `- [x] done`), and would
    send every update of the list back to the slow way; both, without a definition, cost a rebuild, not a wrong
    screen.

    The top-level list's range is the document's (`Markdown.append` sets it before the update); a nested list's
    counts from the first line of the text parsed when it was made (at or before its top-level list's first line),
    so the text searched starts earlier, never later, and the top-level list has been checked first anyway."""
    lines = shown._markdown.source.splitlines(keepends=True)
    text = "".join(lines[shown.source_range[0] :])
    return "]:" in text and _DEFINITION_START.search(text) is not None


_DEFINITION_START = re.compile(r"^(?:[ \t]*(?:>|(?:[-+*]|\d{1,9}[.)])(?=[ \t])))*[ \t]*\[", re.MULTILINE)
"""A line that starts with `[` after any markers of block quotes and list items: where a link definition can begin."""


async def update_block(shown: MarkdownBlock, new: MarkdownBlock) -> None:
    """Make the mounted block `shown` show `new`: in place where its class takes new text in place (a paragraph, an
    answer's list), else `new` replaces it where it stands.

    Not `_update_from_block` for the rest: Textual's default (a heading, a quote, a table that is no longer one)
    mounts the new block at the end of the document, right for its last top-level block and wrong inside a list
    item; and a fence's in-place update looks for Textual's own code label, which `AnswerFence` draws otherwise."""
    if type(shown) is type(new) and isinstance(shown, (MarkdownParagraph, AnswerBulletList, AnswerOrderedList)):
        await shown._update_from_block(new)
    else:
        await replace_block(shown, new)


class AnswerBulletList(MarkdownBulletList):
    """Textual's bullet list, updated in place while an answer streams (see the module docstring)."""

    virtual_size = laid_out_virtual_size()

    async def _update_from_block(self, block: MarkdownBlock) -> None:
        if type(block) is type(self):
            symbols = [item.bullet for item in block._blocks if isinstance(item, MarkdownListItem)]
            if await update_in_place(self, block, symbols):
                return
        await replace_block(self, block)


class AnswerOrderedList(MarkdownOrderedList):
    """Textual's ordered list, updated in place while an answer streams (see the module docstring)."""

    virtual_size = laid_out_virtual_size()

    async def _update_from_block(self, block: MarkdownBlock) -> None:
        if type(block) is type(self) and await update_in_place(self, block, ordered_symbols(block._blocks)):
            return
        await replace_block(self, block)


async def replace_block(shown: MarkdownBlock, new: MarkdownBlock) -> None:
    """`new` in place of the mounted block `shown`, where it stands: in a list item too, where Textual's default
    (`MarkdownBlock._update_from_block`) would mount it at the end of the document."""
    await shown.parent.mount(new, after=shown)
    await shown.remove()


def ordered_symbols(blocks: list[MarkdownBlock]) -> list[str]:
    """The numbers `MarkdownOrderedList.compose` gives the items among `blocks`, right-aligned as it aligns them."""
    suffix, start = ". ", 1
    if blocks and isinstance(blocks[0], MarkdownOrderedListItem):
        try:
            start = int(blocks[0].bullet)
        except ValueError:
            pass
    numbered = list(enumerate(blocks, start))
    size = max((len(f"{number}{suffix}") for number, block in numbered if isinstance(block, MarkdownListItem)), default=0)
    return [f"{number}{suffix}".rjust(size + 1) for number, block in numbered if isinstance(block, MarkdownListItem)]
