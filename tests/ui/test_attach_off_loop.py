"""Attaching reads the file off the screen's event loop (a slow or stuck file never freezes the chat), and
`/attach` finds a path with plain spaces exactly as a paste of it does."""

from __future__ import annotations

import threading
from pathlib import Path

from PIL import Image
from textual import events

from mlxchat.ui.paths_in_text import paths_to_attach
from mlxchat.ui.widgets import attachments
from staged import loaded_scene

from conftest import SIZE, until


def an_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (10, 120, 200)).save(path)
    return path


def test_attach_takes_an_unquoted_path_with_spaces_as_one_file(tmp_path, monkeypatch):
    photo = an_image(tmp_path / "Screen Shot 2024-05-01 at 9.41.07 AM.png")
    assert paths_to_attach(f" {photo}") == [photo]
    assert paths_to_attach(f"'{photo}'") == [photo]
    monkeypatch.chdir(tmp_path)
    assert paths_to_attach("Screen Shot 2024-05-01 at 9.41.07 AM.png") == [Path("Screen Shot 2024-05-01 at 9.41.07 AM.png")]
    two = an_image(tmp_path / "b c.png")
    assert paths_to_attach(f"{photo} {two}") == [photo, two]
    assert paths_to_attach(f"{tmp_path}/missing.png") == [tmp_path / "missing.png"]  # named in the error


async def test_slash_attach_with_an_unquoted_path_with_spaces_attaches_it(staged_app, tmp_path):
    photo = an_image(tmp_path / "my holiday photo.png")
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine)
        app.chat.prompt.insert(f"/attach {photo}")
        await pilot.press("enter")
        await until(pilot, lambda: not app.chat.attaching, what="the attach")
        assert [a.path for a in app.chat.attachments] == [photo], app.chat.notice_text()
        assert app.chat.prompt.text == ""


async def test_the_chat_keeps_answering_keys_while_a_file_is_being_read(staged_app, tmp_path, monkeypatch):
    photo = an_image(tmp_path / "slow.png")
    reading, release, returned = threading.Event(), threading.Event(), threading.Event()
    real_open = attachments.open_attachment

    def slow_open(path):
        reading.set()
        release.wait(10)  # a stuck network mount, bounded so a failing test cannot hang the suite
        try:
            return real_open(path)
        finally:
            returned.set()

    monkeypatch.setattr(attachments, "open_attachment", slow_open)
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine)
        app.chat.prompt.post_message(events.Paste(str(photo)))
        await until(pilot, reading.is_set, what="the read to start")
        await pilot.press(*"still typing")
        await until(pilot, lambda: app.chat.prompt.text == "still typing", timeout_s=5, what="the keys")
        assert not returned.is_set(), "the keys were handled while the file was still being read"
        release.set()
        await until(pilot, lambda: bool(app.chat.attachments), what="the attachment")
        assert [a.path for a in app.chat.attachments] == [photo] and app.chat.prompt.text == "still typing"


async def test_edit_last_gives_the_images_back_read_off_the_event_loop(staged_app, tmp_path):
    from staged import VISION_INFO, play_answer_end

    photo = an_image(tmp_path / "cat.png")
    app, engine = staged_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded_scene(pilot, engine, VISION_INFO)
        app.chat.prompt.post_message(events.Paste(f"{photo} what is this?"))
        await until(pilot, lambda: bool(app.chat.attachments) and not app.chat.attaching, what="the attachment")
        await pilot.press("enter")
        await until(pilot, lambda: app.chat.busy, what="the send")
        play_answer_end(engine, "A cat.", 3)
        await until(pilot, lambda: not app.chat.busy, what="the answer")
        await pilot.press("f9")
        await until(pilot, lambda: app.chat.prompt.text == "what is this?", what="the edit")
        await until(pilot, lambda: bool(app.chat.attachments) and not app.chat.attaching, what="the images back")
        assert [a.path for a in app.chat.attachments] == [photo]
