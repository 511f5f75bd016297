"""The model picker: what it lists, filtering, Enter, and downloading (real library, loopback Hub) with cancel."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from textual.app import App

from conftest import generating, loaded, staged_loaded
from mlxchat.models import hub
from mlxchat.models.discovery import ModelRef
from mlxchat.ui.screens.model_picker import ModelPickerScreen, PickerChoice, memory_fit
from mlxchat.ui.widgets.model_download import ModelDownload

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from hub_server import FakeRepo, HubServer  # noqa: E402

GB = 1_000_000_000
SIZE = (120, 24)
MODELS = [
    ModelRef("SmolLM2-135M-Instruct-Q4_1", Path("/m/demo"), "text", "4-bit (q4_1)", 114_000_000, "demo", 8192, False, 23_040),
    ModelRef("qwen-0.5b", Path("/m/qwen"), "text", "4-bit (q4_0)", 352_000_000, "imported", 32768, False, 12_288),
    ModelRef("mlx-community/Qwen3-4B-4bit", Path("/m/q3"), "text", "4-bit", 2_260_000_000, "hf-cache", 40960, True, 147_456),
    ModelRef("mlx-community/SmolVLM-256M-Instruct-bf16", Path("/m/vlm"), "vision", "bf16", 513_000_000, "hf-cache", 8192, False, 18_432),
    ModelRef("mlx-community/gemma-3-12b-it-8bit", Path("/m/g"), "vision", "8-bit", 12_400_000_000, "hf-cache", 131072, False, 393_216),
    ModelRef("mlx-community/Llama-3.3-70B-Instruct-4bit", Path("/m/l"), "text", "4-bit", 39_700_000_000, "hf-cache", 131072, False, 327_680),
]


class PickerHost(App[None]):
    """Opens the picker on mount and keeps what it dismissed with."""

    def __init__(self, **options) -> None:
        super().__init__()
        self.options = {"context_tokens": 4096, "memory_bytes": 16 * GB, "models": list(MODELS), **options}
        self.picked: list[PickerChoice | None] = []

    def on_mount(self) -> None:
        self.push_screen(ModelPickerScreen(**self.options), callback=self.picked.append)

    @property
    def picker(self) -> ModelPickerScreen:
        return self.screen  # type: ignore[return-value]


async def until(pilot, condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


# ---- what the rows say -----------------------------------------------------------------------------------


def test_fit_counts_weights_and_the_kv_cache_at_the_conversations_context():
    qwen3 = MODELS[2]  # 2.26 GB weights + 147 kB per token
    assert memory_fit(qwen3, 4096, 4 * GB) == "fits"  # 2.86 GB within 3 GB usable
    assert memory_fit(qwen3, 32768, 4 * GB) == "too big"  # 7.1 GB
    assert memory_fit(qwen3, 8192, 4 * GB) == "tight"  # 3.47 GB: more than 3 GB usable, less than 4 GB


# ---- snapshots -------------------------------------------------------------------------------------------


def test_picker_lists_every_model(snap_compare):
    """You should see six models in columns: name, kind (one "text · thinking", two "vision"), quantization,
    size, context ("8k ctx" … "128k ctx") and a green "fits" on four, a yellow "tight" on gemma-3-12b and a red
    "too big" on the 70B; the demo row has a "●" (the model in use)."""
    app = PickerHost(current="demo")
    assert snap_compare(app, terminal_size=SIZE)


def test_picker_filtered(snap_compare):
    """You should see "smol" in the filter box and only the two SmolLM2/SmolVLM rows."""
    assert snap_compare(PickerHost(), terminal_size=SIZE, press=[*"smol"])


def test_picker_offers_a_download(snap_compare):
    """You should see "mlx-community/Qwen3-8B-4bit" typed, and one highlighted row "↓ Download
    mlx-community/Qwen3-8B-4bit from the Hugging Face Hub" (no local model has that name)."""
    assert snap_compare(PickerHost(), terminal_size=SIZE, press=[*"mlx-community/Qwen3-8B-4bit"])


def test_download_progress_above_the_status_pane(snap_compare, staged_app, monkeypatch):
    """You should see the chat screen and, just above the status pane, the line "model.safetensors 1.2 GB / 4.6 GB
    · 25.0 MB/s · 2m 16s left │ total 1.2 GB / 4.6 GB (3/7 files) · 2m 16s left" with a bar at 26%."""
    release = threading.Event()
    report = hub.DownloadProgress(
        repo_id="mlx-community/Qwen3-8B-4bit", file="model.safetensors", file_done=1_200_000_000,
        file_total=4_600_000_000, done=1_200_000_000, total=4_600_000_000, files_done=3, files_total=7,
        bytes_per_s=25_000_000,
    )  # fixed numbers, so the picture does not depend on timing

    laid_out = threading.Event()

    def download(repo_id, progress, cancel):
        # The first report comes once the download line is laid out, as a real one comes after the Hub answers:
        # Textual's Bar rounds a percentage to its width at the moment it is set.
        laid_out.wait(10)
        progress(report)
        release.wait(10)  # held until the picture is taken

    monkeypatch.setattr(hub, "download_model", download)
    app, engine = staged_app()

    async def run_before(pilot) -> None:
        await staged_loaded(pilot, engine)
        app.chat.download_model("mlx-community/Qwen3-8B-4bit")
        await until(pilot, lambda: "Asking the Hugging Face Hub" in str(app.chat.model_download.query_one("#download-line").render()))
        await pilot.pause()
        laid_out.set()
        await until(pilot, lambda: "2m 16s" in str(app.chat.model_download.query_one("#download-line").render()))

    try:
        assert snap_compare(app, terminal_size=(120, 24), run_before=run_before)
    finally:
        release.set()


def test_switching_while_an_answer_runs_asks_to_stop_it(snap_compare, staged_app):
    """You should see the half-written answer behind a dialog that quotes the engine's busy answer ("Engine busy:
    answering in …") and asks "Stop it and switch to other?" with "Stop and switch" and "Cancel"; the same busy
    answer is in the notice above the prompt."""
    import staged

    app, engine = staged_app()

    async def run_before(pilot) -> None:
        await staged.streaming_scene(pilot, engine)
        app.chat.switch_model("other")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 32), run_before=run_before)


def test_a_conversation_held_with_another_model_says_so_in_its_header(snap_compare, staged_app, tmp_path):
    """You should see the title "Cats  · held with other — ctrl+t, Enter switches back" above the two stored
    messages, and the status pane loading the demo model (the app was started with --model demo)."""
    from mlxchat.settings import ChatSettings
    from mlxchat.store import History

    history = History(tmp_path / "history")
    stored = history.create_conversation(title="Cats", settings=ChatSettings(model="other"))
    history.add_message(stored.id, "user", "Tell me about cats")
    history.add_message(stored.id, "assistant", "Cats purr.")
    app, engine = staged_app(model="demo", history=history, conversation=history.last_conversation())

    async def run_before(pilot) -> None:
        await until(pilot, lambda: bool(engine.submitted))  # the demo model loading, as `mlxchat -c --model demo`

    try:
        assert snap_compare(app, terminal_size=(120, 24), run_before=run_before)
    finally:
        history.close()


# ---- behaviour -------------------------------------------------------------------------------------------


async def test_enter_loads_the_highlighted_model_and_the_filter_narrows_the_list():
    app = PickerHost()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"qwen thinking")
        await pilot.press("enter")
    assert app.picked == [PickerChoice("mlx-community/Qwen3-4B-4bit")]


async def test_the_demo_model_and_folders_are_picked_as_the_model_option_takes_them():
    folder = ModelRef("my-model", Path("/home/me/my-model"), "text", "bf16", 1, "folder")
    app = PickerHost(models=[MODELS[0], folder])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "enter")
    assert app.picked == [PickerChoice("/home/me/my-model")]
    app = PickerHost(models=[MODELS[0], folder])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
    assert app.picked == [PickerChoice("demo")]


async def test_escape_closes_without_a_choice():
    app = PickerHost()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
    assert app.picked == [None]


async def test_enter_on_the_download_offer_closes_the_picker_with_the_repo_to_download():
    app = PickerHost()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"org/new-model", "enter")
    assert app.picked == [PickerChoice("org/new-model", download=True)]


async def test_escape_cancels_a_download_in_flight_and_says_it_resumes(staged_app, monkeypatch):
    started = threading.Event()

    def download(repo_id, progress, cancel):
        started.set()
        assert cancel.wait(10)
        raise hub.DownloadCancelled(f"Download of {repo_id} cancelled; `mlxchat pull {repo_id}` resumes it.")

    monkeypatch.setattr(hub, "download_model", download)
    app, engine = staged_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await staged_loaded(pilot, engine)
        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        await pilot.press(*"org/big", "enter")
        await until(pilot, started.is_set)
        assert app.chat.model_download.running and app.screen is app.chat
        await pilot.press("escape")
        await until(pilot, lambda: not app.chat.model_download.running)
        assert "cancelled" in app.chat.notice_text() and "resumes" in app.chat.notice_text()
        assert app.chat.model_download.display is False or not app.chat.model_download.has_class("-running")


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    from huggingface_hub import constants as hf_constants

    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    yield server
    server.stop()


async def test_typing_a_repo_id_downloads_it_beside_the_chat_and_then_loads_it(real_app, hub_server, tiny_model):
    hub_server.repos["org/tiny"] = FakeRepo({p.name: p.read_bytes() for p in tiny_model.iterdir()})
    remembered: list[str] = []
    app = real_app(on_model_change=remembered.append)
    async with app.run_test(size=(120, 32)) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        await pilot.press(*"org/tiny", "enter")
        await until(pilot, lambda: app.chat.model is not None and app.chat.model.name == "org/tiny" and not app.chat.busy)
        assert remembered == ["org/tiny"] and not app.chat.model_download.running


async def test_a_download_that_fails_says_why_in_the_notice(staged_app, hub_server):
    app, engine = staged_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await staged_loaded(pilot, engine)
        app.chat.download_model("org/missing")
        await until(pilot, lambda: not app.chat.model_download.running and app.chat.notice_text())
        assert app.chat.notice_text().startswith("No model org/missing on http://127.0.0.1")


# ---- switching from the chat screen (a real engine with the tiny model) ---------------------------------


@pytest.fixture
def second_model(tiny_model, tmp_path, monkeypatch) -> str:
    """The tiny model imported a second time as "other" (an imported model: the picker lists it)."""
    import shutil

    monkeypatch.setenv("MLXCHAT_DATA_DIR", str(tmp_path / "data"))
    shutil.copytree(tiny_model, tmp_path / "data" / "models" / "other")
    return "other"


async def test_a_picked_model_loads_without_restart_and_new_chats_use_it(real_app, second_model):
    remembered: list[str] = []
    app = real_app(on_model_change=remembered.append)
    async with app.run_test(size=(120, 32)) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        await pilot.press(*"other", "enter")
        await until(pilot, lambda: app.chat.model is not None and app.chat.model.name == "other" and not app.chat.busy)
        assert remembered == ["other"] and app.chat.session.settings.model == "other"
        await pilot.press("ctrl+n")
        assert app.chat.session.settings.model == "other" and app.chat.model_spec == "other"


async def test_switching_while_an_answer_runs_shows_the_busy_answer_and_stop_drains_before_loading(real_app, second_model):
    from mlxchat.engine import Finished, ModelLoaded
    from mlxchat.ui.screens.dialogs import ConfirmScreen

    app = real_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await loaded(pilot)
        await pilot.press(*"hello", "enter")
        await generating(pilot)
        real_app.gate.close()  # the answer holds at its next event, however slow the steps below (it would end at the context)
        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        await pilot.press(*"other", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.question.startswith("Engine busy: answering") and "Stop it and switch to other?" in app.screen.question
        assert "Engine busy" in app.chat.notice_text()

        await pilot.press("n")  # keep answering: nothing changes
        assert app.chat.busy and app.chat.status.phase == "generating" and app.chat.model_after_drain is None

        await pilot.press("ctrl+t")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        await pilot.press(*"other", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        real_app.gate.open()
        await until(pilot, lambda: app.chat.model is not None and app.chat.model.name == "other" and not app.chat.busy)

    chat_end = next(i for i, e in enumerate(real_app.events) if isinstance(e, Finished) and e.reason == "cancelled")
    other_loaded = next(i for i, e in enumerate(real_app.events) if isinstance(e, ModelLoaded) and e.info.name == "other")
    assert chat_end < other_loaded, "the answer drains before the new model loads"


async def test_a_conversation_held_with_another_model_says_so_and_the_picker_opens_on_it(
    staged_app, second_model, tmp_path
):
    from mlxchat.settings import ChatSettings
    from mlxchat.store import History

    history = History(tmp_path / "history")
    stored = history.create_conversation(title="Cats", settings=ChatSettings(model="other"))
    history.add_message(stored.id, "user", "Tell me about cats")
    history.add_message(stored.id, "assistant", "Cats purr.")
    app, _engine = staged_app(model="demo", history=history, conversation=history.last_conversation())  # mlxchat -c --model demo
    try:
        async with app.run_test(size=(120, 32)) as pilot:
            assert str(app.chat.title_label.render()) == "Cats  · held with other — ctrl+t, Enter switches back"
            await pilot.press("ctrl+t")
            await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
            options = app.screen.query_one("#picker-list")
            assert options.get_option_at_index(options.highlighted).id == "other"
    finally:
        history.close()


def test_the_picked_model_is_remembered_for_the_next_start_unless_it_was_deleted(second_model, tmp_path):
    import shutil

    from mlxchat.ui.app import remember_model, remember_theme, remembered_model, remembered_theme

    remember_theme("textual-light")
    remember_model("other")
    assert remembered_model() == "other" and remembered_theme() == "textual-light"
    shutil.rmtree(tmp_path / "data" / "models" / "other")
    assert remembered_model() is None and remembered_theme() == "textual-light"
