"""Attaching images: pasted (dropped) paths in every form, /attach, removal, and every bad file the user may
drop. Paste tests run one app on the real engine and tiny model; the rest need no model."""

from __future__ import annotations

import os

import pytest
from textual import events

from mlxchat.ui.attachment_files import AttachmentError, open_attachment
from staged import VISION_INFO
from mlxchat.ui.widgets.attachments import AttachmentItem, AttachmentPane

from conftest import SIZE, loaded, staged_loaded, until


def pasted_forms(images) -> list[tuple[str, str, list[str]]]:
    sunset, spaced, shot = images["sunset"], images["spaced"], images["screenshot"]
    escaped_shot = str(shot).replace(" ", "\\ ")
    url = "file://" + str(spaced).replace(" ", "%20")
    return [
        ("plain", f"{sunset}", ["sunset.png"]),
        ("trailing space", f"{sunset} ", ["sunset.png"]),
        ("single quotes", f"'{spaced}'", [spaced.name]),
        ("double quotes", f'"{spaced}"', [spaced.name]),
        ("backslash spaces", str(spaced).replace(" ", "\\ "), [spaced.name]),
        ("file url", url, [spaced.name]),
        ("macOS screenshot", escaped_shot, [shot.name]),
        ("several", f"{sunset} {images['flag']}\n", ["sunset.png", "flag.png"]),
    ]


def names(app) -> list[str]:
    return [attachment.name for attachment in app.chat.attachments]


async def paste(pilot, text: str) -> None:
    pilot.app.post_message(events.Paste(text))
    await settled(pilot)


async def settled(pilot) -> None:
    """Wait until the files being attached have been read (that happens off the event loop)."""
    await pilot.pause()
    await until(pilot, lambda: not pilot.app.chat.attaching, what="the attachment")


async def test_each_pasted_path_form_becomes_an_attachment(real_app, images):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for label, text, expected in pasted_forms(images):
            await paste(pilot, text)
            assert names(app) == expected, label
            assert app.chat.prompt.text == "", label
            assert len(app.chat.query(AttachmentItem)) == len(expected), label
            for _ in expected:
                await pilot.press("f8")
            assert names(app) == [], label
        assert not app.chat.query_one(AttachmentPane).display


async def test_a_path_followed_by_a_prompt_attaches_and_keeps_the_text(real_app, images):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press(*"Look: ")
        await paste(pilot, f"{images['sunset']} what is in this picture?")
        assert names(app) == ["sunset.png"]
        assert app.chat.prompt.text == "Look: what is in this picture?"
        assert "text-only model" in str(app.chat.query_one("#attachments-title").content)


async def test_sending_images_to_a_text_only_model_says_so_and_keeps_everything(real_app, images):
    app = real_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await paste(pilot, str(images["sunset"]))
        await pilot.press(*"describe it", "enter")
        assert "text-only model" in app.chat.notice_text()
        assert app.chat.prompt.text == "describe it"
        assert names(app) == ["sunset.png"]
        assert app.chat.session.turns == []


BAD = [
    ("missing", "no such file"),
    ("fake", "not an image"),
    ("corrupt", "damaged"),
    ("folder", "folder"),
]


@pytest.mark.parametrize(("key", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_get_a_reason(images, key, words):
    with pytest.raises(AttachmentError, match=words):
        open_attachment(images[key])


def test_a_text_file_is_attached_as_a_document(images):
    """Issue 15: a dropped .txt no longer says "not an image"; it is a document with its estimated tokens."""
    attachment = open_attachment(images["text"])
    assert attachment.is_document and attachment.tokens > 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_gets_a_reason(tmp_path, images):
    locked = tmp_path / "locked.png"
    locked.write_bytes(images["sunset"].read_bytes())
    locked.chmod(0)
    with pytest.raises(AttachmentError, match="permission denied"):
        open_attachment(locked)


def test_a_file_the_user_may_not_read_gets_a_reason(images, monkeypatch):
    """Tests run as root here, which reads any file, so the refusal the OS would give is stood in for."""
    import PIL.Image

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    with pytest.raises(AttachmentError, match="permission denied"):
        open_attachment(images["sunset"])


async def test_bad_drops_show_a_message_and_leave_the_prompt_alone(staged_app, images):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine, VISION_INFO)
        await pilot.press(*"my question")
        for key in ("missing", "corrupt", "fake"):
            before = app.chat.prompt.text
            await paste(pilot, str(images[key]))
            assert "Cannot attach" in app.chat.notice_text(), key
            assert app.chat.prompt.text.startswith(before), f"{key}: the prompt was changed"
            assert names(app) == [], key
            app.chat.prompt.set_text("my question")
        await paste(pilot, f"{images['text']}")
        assert names(app) == ["notes.txt"], "a text file is a document now, not a bad image"


async def test_attach_command_and_typed_paths(staged_app, images):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine, VISION_INFO)
        app.chat.prompt.set_text(f"/attach '{images['spaced']}' {images['flag']}")
        await pilot.press("enter")
        await settled(pilot)
        assert names(app) == [images["spaced"].name, "flag.png"]
        assert app.chat.prompt.text == ""
        app.chat.prompt.set_text(f"/attach {images['missing']}")
        await pilot.press("enter")
        await settled(pilot)
        assert "no such file" in app.chat.notice_text()
        assert app.chat.prompt.text == f"/attach {images['missing']}"
        app.chat.prompt.set_text(f"{images['sunset']} what is this?")  # a terminal that types the dropped path
        await pilot.press("enter")
        await until(pilot, lambda: len(app.chat.session.turns) == 2, what="the send")
        sent = engine.submitted[-1].messages[-1]
        assert sent.content == "what is this?"
        assert [p.name for p in sent.images] == [images["spaced"].name, "flag.png", "sunset.png"]
        assert names(app) == []


async def test_the_focused_attachment_is_removed_with_delete(staged_app, images):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine, VISION_INFO)
        await paste(pilot, f"{images['sunset']} {images['flag']}")
        app.chat.query(AttachmentItem).first().focus()
        await pilot.press("delete")
        assert names(app) == ["flag.png"]
        assert app.chat.prompt.has_focus


async def test_two_images_go_to_a_vision_model_with_the_prompt(tiny_vlm, images):
    """The real engine with a tiny random SmolVLM: both images and the text reach the vision route."""
    from mlxchat.engine import Started
    from conftest import RealAppFactory, idle

    factory = RealAppFactory(tiny_vlm)
    app = factory(max_tokens=6)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            assert app.chat.model.kind == "vision"
            await paste(pilot, f"{images['sunset']} {images['flag']} compare these")
            await pilot.press("enter")
            await until(pilot, lambda: len(app.chat.session.turns) == 2, what="the send")
            await idle(pilot)
            user, answer = app.chat.session.turns
            assert [p.name for p in user.images] == ["sunset.png", "flag.png"] and user.text == "compare these"
            assert answer.status == "complete", answer.error
            assert [e.route for e in factory.finished(Started)] == ["vision"]
    finally:
        for engine in factory.engines:
            engine.close(timeout_s=30)


def huge_header_png(path, width: int, height: int):
    """A few hundred bytes whose header claims `width`×`height` pixels (what a decompression bomb looks like)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [12_000, 20_000], ids=["over-our-limit", "over-pillows-limit"])
def test_an_image_too_large_is_refused_by_its_header(tmp_path, side, recwarn):
    import time

    path = huge_header_png(tmp_path / "bomb.png", side, side)
    started = time.perf_counter()
    with pytest.raises(AttachmentError, match=r"bomb\.png: the image is too large"):
        open_attachment(path)
    assert time.perf_counter() - started < 0.5
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


async def test_a_typed_path_that_fails_keeps_the_prompt_and_sends_nothing(staged_app, images):
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await staged_loaded(pilot, engine, VISION_INFO)
        typed = f"{images['missing']} what is this?"
        app.chat.prompt.set_text(typed)
        await pilot.press("enter")
        await settled(pilot)
        assert "no such file" in app.chat.notice_text()
        assert app.chat.prompt.text == typed
        assert app.chat.session.turns == [] and len(engine.submitted) == 1  # only the model load
