"""Documents by drag and drop: a dropped text file is attached with its size and estimated tokens, goes to the
engine as a document (any model reads it), and a binary file is refused by name with the prompt kept."""

from __future__ import annotations

from textual import events

import staged
from staged import until


def notes_file(folder):
    path = folder / "notes.md"
    path.write_text("# Trip notes\n\nParis: the Louvre, the Orsay. Rome: the Forum.\n" * 20)
    return path


async def test_a_dropped_document_is_attached_and_sent_as_a_document(staged_app, tmp_path):
    app, engine = staged_app()
    notes = notes_file(tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        await staged.loaded_scene(pilot, engine)  # a text-only model: documents are text, so no refusal
        app.post_message(events.Paste(str(notes)))
        await until(pilot, lambda: len(app.chat.attachments) == 1, what="the attachment")
        item = app.chat.attachment_pane.attachments[0]
        assert item.is_document and item.tokens > 100 and app.chat.attachment_pane.refusal() is None
        await pilot.press(*"Summarise", "enter")
        await until(pilot, lambda: len(engine.submitted) == 2, what="the request")
        message = engine.submitted[-1].messages[-1]
        assert message.documents == (notes,) and message.images == ()


async def test_a_binary_file_is_refused_by_name_and_nothing_is_attached(staged_app, tmp_path):
    app, engine = staged_app()
    blob = tmp_path / "data.json"
    blob.write_bytes(b"\x00\x01\x02 not json")
    async with app.run_test(size=(100, 40)) as pilot:
        await staged.loaded_scene(pilot, engine)
        app.post_message(events.Paste(str(blob)))
        await until(pilot, lambda: app.chat.notice.display, what="the notice")
        assert "data.json: a binary file" in str(app.chat.notice.content)
        assert app.chat.attachments == ()


def test_document_attached_snapshot(snap_compare, staged_app, tmp_path):
    """You should see the attachment pane above the prompt titled "1 document for the next message", with a small
    document icon and "notes.md", "document · 1.2 KB", "~305 tokens" beside it, on a text-only model."""
    app, engine = staged_app()
    notes = notes_file(tmp_path)

    async def run_before(pilot) -> None:
        await staged.loaded_scene(pilot, engine)
        pilot.app.post_message(events.Paste(str(notes)))
        await until(pilot, lambda: len(pilot.app.chat.attachments) == 1, what="the attachment")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
