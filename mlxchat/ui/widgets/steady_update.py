"""Provides `steady_update`: new content for a `Static` (a `Label`, a Markdown block) that is a repaint only while it
keeps the widget's size; and `laid_out_virtual_size`, for widgets whose resize by a layout pass must not ask for
another.

`Static.update` asks for a layout (`refresh(layout=True)`) on every call, and Textual's layout pass re-arranges the
whole screen: Python on the UI thread, holding the GIL the engine's owner thread needs (issue 11). Text drawn many
times a second (live thinking, its clock, the paragraph an answer is writing) mostly keeps its size: the same rows,
the same width. `steady_update` measures the new text the way the layout pass does (`get_content_width` for an
auto width, `get_content_height` at the width laid out now) and asks for a layout only when the widget's size would
change; otherwise the widget repaints where it stands. The widget itself is Textual's own, so it looks exactly as it
did.
"""

from __future__ import annotations

from textual.content import Content
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import Static


def steady_update(widget: Static, text: str | Content) -> None:
    """Show `text` in `widget`: a repaint where it stands if the text keeps its size, a layout if not."""
    if isinstance(text, str) and isinstance(widget.content, str) and widget.content == text:
        return  # nothing new to draw (a `Content` compares its plain text only, so it is always drawn)
    widget.update(text, layout=False)  # also clears the cached measures `keeps_size` reads
    if not keeps_size(widget):
        widget.refresh(layout=True)


def keeps_size(widget: Static) -> bool:
    """Whether the widget's content now has the size laid out, measured as the layout pass measures it: an auto
    width from the content (unless the parent's width caps it: the layout's to find), the height at the width laid
    out. A width the layout gives (`1fr`, a percentage, cells: a Markdown block's) does not follow the content, so
    only the height is measured. Not laid out yet, hidden, or a height that is not auto: False (a layout, as
    `update` would)."""
    shown = widget.content_size
    parent = widget.parent
    if not widget.is_mounted or not widget.display or not shown or parent is None:
        return False
    room, styles = parent.content_size, widget.styles
    if styles.height is None or not styles.height.is_auto:
        return False
    if styles.width is not None and styles.width.is_auto:
        width = widget.get_content_width(room, widget.app.size)
        if width != shown.width or width >= room.width:
            return False
    return widget.get_content_height(room, widget.app.size, shown.width) == shown.height


def laid_out_virtual_size() -> Reactive[Size]:
    """`Widget.virtual_size` for a widget whose virtual size only Textual's layout pass sets (a container: its
    children's extent; the open code fence's view: its reserved height), without the layout and the repaint it
    asks for.

    The pass hands each widget it resized its new virtual size through this reactive, which Textual declares
    `layout=True` (and repaint): so each pass that grew the answer asked for a second one, which found nothing to
    move, and then a frame that drew the resized widgets again. While a code block streamed, half the layout
    passes were these echoes (38 of 76 over the fence's last 300 lines: the code view, its message view and the
    conversation, once each per step). The pass needs neither: it marks every region whose geometry changed for
    drawing (`Compositor.reflow`), a widget whose size changed is redrawn (`_size_updated`), and a scrollable one
    gets its scrollbars and scroll limits there too; a scrollbar that appears asks for its own pass, and the
    anchor is kept by the pass. Declared per class (`virtual_size = laid_out_virtual_size()`): a reactive is named
    by the class it is in."""
    return Reactive(Size(0, 0), layout=False, repaint=False)
