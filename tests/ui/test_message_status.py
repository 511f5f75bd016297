"""An answer's status on its view (issue 11, round 9): the end of every answer must not restyle the whole answer.

Textual restyles a node with everything inside it when one of its classes changes. With the status as a class on
the `MessageView`, the end of a realistic answer (79 widgets) restyled all of them: 68–77 ms on this CPU, a 62.5 ms
stall on the H200 host (`benchmarks/status_restyle.py`, `benchmarks/ui_stalls.py`)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label

from mlxchat.bench.realistic import REALISTIC_ANSWER
from mlxchat.ui.chat_model import Turn
from mlxchat.ui.widgets.message import MessageView


class OneAnswer(App):
    CSS_PATH = "../../mlxchat/ui/app.tcss"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield MessageView(Turn("assistant", REALISTIC_ANSWER, status="streaming"), label="assistant")


async def test_the_end_of_an_answer_restyles_its_header_alone():
    app = OneAnswer()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        view = app.query_one(MessageView)
        header = view.query_one(".message-header", Label)
        assert len(list(view.walk_children())) > 50
        assert header.has_class("-streaming") and header.styles.text_style.italic
        restyled = []
        update_nodes = app.stylesheet.update_nodes

        def recording(nodes, **kwargs):
            nodes = list(nodes)
            restyled.extend(nodes)
            return update_nodes(nodes, **kwargs)

        app.stylesheet.update_nodes = recording
        view.status = "complete"
        await pilot.pause()
        assert restyled == [header]
        assert not header.has_class("-streaming") and not header.styles.text_style.italic


async def test_a_stopped_or_failed_answer_marks_the_whole_view():
    """Its border says so (`.message.-stopped`, `.message.-error`): those classes stay on the view."""
    app = OneAnswer()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        view = app.query_one(MessageView)
        view.status = "stopped"
        await pilot.pause()
        assert view.has_class("-stopped") and not view.has_class("-error")
        view.status = "error"
        await pilot.pause()
        assert view.has_class("-error") and not view.has_class("-stopped")
        view.status = "streaming"
        await pilot.pause()
        assert not view.has_class("-error") and view.query_one(".message-header").has_class("-streaming")
