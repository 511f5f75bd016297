"""Bad input through the chat screen (Pilot, the real engine, tiny models): each gives a specific message, nothing
the user typed is lost, and the app stays alive (a fresh question still gets a complete answer).

Images go in the two ways a person attaches them: `/attach PATH` typed and sent, and a terminal paste (what a
dropped file becomes) of the path followed by the question.
"""

from __future__ import annotations

import builtins
import os
import shlex
import time
from pathlib import Path

import pytest
from stress_app import (
    SIZE,
    RealApps,
    answer_works,
    idle,
    loaded,
    paste,
    send,
    settled_load,
    type_text,
    until,
)
from stress_files import big_paste, huge_png, running_as_root


REFUSALS = {
    "missing": "no such file",
    "zero_byte": "not an image",
    "truncated_png": "damaged",
    "not_an_image": "not an image",
    "folder": "folder",
    "unreadable": "permission denied",
}
HUGE = {"huge_header": "too large", "huge_sparse": "too large"}


@pytest.fixture
def apps():
    factory = RealApps()
    yield factory
    factory.close()


@pytest.fixture
def unreadable(bad_files, monkeypatch) -> Path:
    """The mode-000 file; as root (who may read anything) opening it is made to fail as it would for a user."""
    path = bad_files["unreadable"]
    if running_as_root():
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)
        real_os_open = os.open

        def refusing_os_open(file, *args, **kwargs):  # the image reader opens with os.open (never blocks on a FIFO)
            if isinstance(file, (str, os.PathLike)) and Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_os_open(file, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_os_open)
    return path


def attach_line(path: Path) -> str:
    return f"/attach {shlex.quote(str(path))}"


async def attach_by_command(pilot, path: Path, expected: str) -> list[str]:
    """`/attach PATH` with a bad file: the reason names the file, the command stays in the prompt, nothing is
    attached. Returns what went wrong."""
    chat = pilot.app.chat
    chat.prompt.clear()
    line = attach_line(path)
    await send(pilot, line)
    notice = chat.notice_text()
    problems = []
    if expected not in notice.lower() or path.name not in notice:
        problems.append(f"notice {notice!r}")
    if chat.prompt.text != line:
        problems.append(f"prompt {chat.prompt.text!r}: the typed command must stay, to be corrected")
    if chat.attachments:
        problems.append("attached anyway")
    return problems


async def attach_by_paste(pilot, path: Path, expected: str) -> list[str]:
    """A pasted (dropped) bad path before a question: the reason is shown, the question and what was typed before
    stay in the prompt, nothing is attached. Returns what went wrong."""
    chat = pilot.app.chat
    chat.prompt.clear()
    await type_text(pilot, "Look: ")
    await paste(pilot, f"{shlex.quote(str(path))} what is in this picture?")
    notice, text = chat.notice_text(), chat.prompt.text
    problems = []
    if path.exists() and (expected not in notice.lower() or path.name not in notice):
        problems.append(f"notice {notice!r}")
    if not path.exists() and str(path) not in text:  # a path that does not exist is pasted as plain text
        problems.append(f"the pasted path is not in the prompt: {text!r}")
    if not text.startswith("Look: ") or "what is in this picture?" not in text:
        problems.append(f"prompt {text!r}: the typed text and the question must stay")
    if chat.attachments:
        problems.append("attached anyway")
    return problems


@pytest.mark.parametrize("attach", [attach_by_command, attach_by_paste], ids=["/attach", "paste"])
async def test_each_bad_image_is_refused_with_its_reason_and_nothing_is_lost(apps, tiny_vlm, bad_files, unreadable, attach):
    app = apps(tiny_vlm)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        failures = {kind: problems for kind, expected in REFUSALS.items()
                    if (problems := await attach(pilot, bad_files[kind], expected))}
        assert not failures, failures
        await answer_works(pilot)


@pytest.mark.parametrize("attach", [attach_by_command, attach_by_paste], ids=["/attach", "paste"])
async def test_a_20000_pixel_square_png_is_refused_by_its_size(apps, tiny_vlm, bad_files, attach):
    app = apps(tiny_vlm)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        failures = {kind: problems for kind, expected in HUGE.items()
                    if (problems := await attach(pilot, bad_files[kind], expected))}
        assert not failures, failures
        await answer_works(pilot)


async def test_a_good_image_after_the_bad_ones_is_answered(apps, tiny_vlm, bad_files, unreadable):
    app = apps(tiny_vlm)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for kind in ("zero_byte", "truncated_png", "not_an_image", "folder"):
            app.chat.prompt.clear()
            await send(pilot, attach_line(bad_files[kind]))
        app.chat.prompt.clear()
        await send(pilot, attach_line(bad_files["good"]))
        assert [a.path for a in app.chat.attachments] == [bad_files["good"]]
        await send(pilot, "What is in this picture?")
        await idle(pilot)
        answer = app.chat.session.turns[-1]
        assert answer.status == "complete", answer.error
        assert app.chat.session.turns[-2].images == (bad_files["good"],)


QUOTINGS = {
    "single quotes": lambda path: shlex.quote(str(path)),
    "double quotes": lambda path: '"' + str(path).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"',
    "backslash escapes": lambda path: "".join("\\" + c if c in " '\"\\$;&()\u202f" else c for c in str(path)),
    "file URI": lambda path: path.as_uri(),
}


async def test_odd_file_names_attach_however_they_are_quoted(apps, tiny_vlm, odd_files):
    app = apps(tiny_vlm)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        problems = []
        for quoting, quote in QUOTINGS.items():
            for kind, path in odd_files.items():
                app.chat.attachment_pane.clear()
                app.chat.prompt.clear()
                await send(pilot, f"/attach {quote(path)}")
                if [a.path for a in app.chat.attachments] != [path]:
                    problems.append((quoting, kind, quote(path), app.chat.notice_text()))
            app.chat.attachment_pane.clear()
            app.chat.prompt.clear()
            some = list(odd_files.values())[:3]
            await paste(pilot, " ".join(quote(path) for path in some) + " compare these")
            if [a.path for a in app.chat.attachments] != some or app.chat.prompt.text.strip() != "compare these":
                problems.append((quoting, "paste of three", app.chat.prompt.text, app.chat.notice_text()))
        assert not problems, problems


async def test_a_100_kb_paste_is_kept_and_too_long_a_prompt_is_explained(apps, tiny_model):
    app = apps(tiny_model)
    text = big_paste(100_000)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        seconds = await paste(pilot, text)
        assert app.chat.prompt.text == text, "the paste arrives whole"
        assert seconds < 5, f"a 100 KB paste took {seconds:.1f}s to handle"
        await pilot.press("enter")
        await idle(pilot)
        user, answer = app.chat.session.turns[-2:]
        assert user.text == text.strip(), "what was sent is in the conversation"
        assert answer.status == "error"
        assert "reads at most" in answer.error and "tokens" in answer.error, answer.error
        assert app.chat.status.phase == "error"


@pytest.mark.parametrize("spec", ["no-such-model-anywhere", "/nonexistent/models/llama"])
async def test_an_unknown_model_is_named_and_a_prompt_sent_anyway_is_kept(apps, spec):
    app = apps(spec)
    async with app.run_test(size=SIZE) as pilot:
        await settled_load(pilot)
        notice = app.chat.notice_text()
        assert "Could not load" in notice and spec in notice, notice
        assert app.chat.status.phase == "error"
        await send(pilot, "hello?")
        await idle(pilot)
        user, answer = app.chat.session.turns[-2:]
        assert user.text == "hello?"
        assert answer.status == "error" and "No model is loaded" in answer.error


@pytest.mark.parametrize("which", ["corrupt_model", "bad_config_model"])
async def test_a_broken_model_folder_is_explained(apps, request, which):
    folder = request.getfixturevalue(which)
    app = apps(folder)
    async with app.run_test(size=SIZE) as pilot:
        await settled_load(pilot)
        notice = app.chat.notice_text()
        assert "Could not load" in notice and folder.name in notice, notice
        assert "Traceback" not in notice and "\n" not in notice.strip()
        assert app.chat.model is None and app.chat.status.phase == "error"
        await type_text(pilot, "kept")
        assert app.chat.prompt.text == "kept"


@pytest.mark.parametrize("data", ["read_only_data_dir", "full_data_dir"])
async def test_a_data_folder_that_takes_no_writes(apps, tiny_model, request, monkeypatch, data):
    """The chat works and choosing a theme (remembered in the data folder) fails quietly."""
    folder = request.getfixturevalue(data)
    monkeypatch.setenv("MLXCHAT_DATA_DIR", str(folder))
    from mlxchat.ui.app import remember_theme

    app = apps(tiny_model, on_theme_change=remember_theme)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.theme = "textual-light" if app.theme != "textual-light" else "gruvbox"
        await pilot.pause()
        await answer_works(pilot)


async def test_sending_while_the_model_loads_is_refused_and_kept(apps, tiny_vlm):
    """Enter during the load is refused at once and the prompt keeps the text. The load may end before the Enter
    on a fast machine; then the question is sent, and answering makes the app busy too, so whether it was refused
    is read from the conversation, not from `busy` (which failed a CI run: busy with the answer, no notice). A load
    that ends right after the refusal replaces its notice with the one that says the prompt can go now."""
    app = apps(tiny_vlm)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.chat.busy, 30, "the load to start")
        app.chat.prompt.insert("too early")  # at once: typing key by key left the load time to end
        await pilot.press("enter")
        if not any(turn.text == "too early" for turn in app.chat.session.turns):
            notice = app.chat.notice_text()  # the refusal, or (the load over since) the word that follows it
            assert "Engine busy" in notice or "The engine is free again" in notice, notice
            assert app.chat.prompt.text == "too early"
        else:
            assert app.chat.model is not None, "a question was sent before the model had loaded"
        await loaded(pilot)


@pytest.mark.slow
async def test_soak_a_12000_pixel_square_png_does_not_freeze_the_screen(apps, tiny_vlm, tmp_path):
    """Under Pillow's hard limit (179 Mpx) but far over what any processor reads: refuse it by its size or
    attach it quickly; either way within a second."""
    path = huge_png(tmp_path / "big.png", 12_000, 12_000)
    app = apps(tiny_vlm)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        started = time.perf_counter()
        await send(pilot, attach_line(path))
        seconds = time.perf_counter() - started
        assert app.chat.attachments or "too large" in app.chat.notice_text().lower()
        assert seconds < 1.0, f"the screen was frozen {seconds:.1f}s attaching {path.name}"
