"""Provides the app factory `make_app` and `run_tui`, the entry point the CLI calls.

The app paints first and only then starts the engine and asks it to load the model, so the window is up before
`import mlx_lm` (about 1.3 s) happens on the engine's owner thread. The engine's sink posts each event to the
chat screen (`post_message` is thread-safe and never blocks the engine), which handles them in order; a closed
screen takes no more messages, so late events after quitting go nowhere. Quitting while the engine works
cancels, waits for the screen's `Idle` (the request's `Finished`; the drain is shown), then exits.

The launch imports only what the first frame draws: the other screens (help, the unsaved question, and the chat
screen's modals) are imported where they are first shown.

`make_app` takes its collaborators — engine factory, theme, keymap, chat settings, history, a clock — so the CLI,
the tests and the screenshot script build the same app.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

from textual import on
from textual.app import App, SystemCommand
from textual.reactive import Initialize, Reactive
from textual.screen import Screen

from mlxchat import paths
from mlxchat.engine import Engine, Event, Finished, ModelLoaded, Started
from mlxchat.engine.client import EngineClient, EngineFactory
from mlxchat.exit import EXIT_OK
from mlxchat.settings import AppConfig, ChatSettings

from .chat_model import ChatSession
from .collector import CollectorPolicy
from .session_store import SessionStore, session_from
from .keys import ACTIONS, bindings, checked_keymap, keys_for
from .warmup import AnswerWarmup
from .messages import EngineEvent
from .screens.chat import ChatScreen
from .switching import SwitchIntervalPolicy
from .terminal import QuitRequested, driver_for
from .themes import DEFAULT_THEME, all_themes

QUIT_SAVE_TIMEOUT_S = 8.0
"""At quit, how long the history's last writes may take (a lock held elsewhere, a retried write)."""


COLLECT_AFTER_ANSWER_S = 1.0
"""How long after an answer ends the full collection it held back runs (`CollectorPolicy`): past its last frames."""


class MlxChatApp(App[int]):
    """mlxchat's Textual app. Build it with `make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "mlxchat"
    BINDINGS = bindings("app")

    def _starting_theme(self) -> str:
        """The theme asked for at start (or the default), after registering every theme file.

        Textual calls this the first time `theme` is read, inside `App.__init__`, so the stylesheet, the dark or
        light class and the ANSI colours are made for this theme from the start. Setting `theme` after
        `super().__init__()` instead runs its watcher, which makes Textual parse all the CSS a second time right
        after the first (~10 % of the launch under the profiler)."""
        files = all_themes()
        for registered in files.themes:
            self.register_theme(registered)
        self.theme_problems = files.problems
        asked = self._asked_theme
        self._unknown_theme = asked if asked and asked not in self.available_themes else None
        return asked if asked in self.available_themes else DEFAULT_THEME

    theme: Reactive[str] = Reactive(Initialize(_starting_theme))
    """The name of the current theme (Textual's `App.theme`, started as `_starting_theme` says)."""

    def __init__(
        self,
        *,
        engine_factory: EngineFactory = Engine,
        model: str | None = None,
        load_model: bool = True,
        theme: str | None = None,
        keymap: Mapping[str, str] | None = None,
        chat_settings: ChatSettings | None = None,
        history=None,
        conversation=None,
        on_theme_change: Callable[[str], None] | None = None,
        on_model_change: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        animate: bool = True,
        startup_notices: Iterable[str] = (),
    ) -> None:
        self._asked_theme = theme
        super().__init__()
        # A keymap entry whose keys Textual cannot parse would lose the action's keys (the quit key, once):
        # it is left out, and said so at start.
        self.keymap, keymap_problems = checked_keymap(keymap or {})
        self._startup_notices = (*startup_notices, *keymap_problems)
        self.history = history
        self.model_spec = model
        self._load_model = load_model
        self._on_theme_change = on_theme_change
        self._on_model_change = on_model_change
        self._quitting = False
        self._exit_code = EXIT_OK
        self._asking = True
        """Whether quitting may ask about unsaved turns: not after a signal or a lost terminal."""
        self._leaving = False
        """True from the last history writes until the exit (or until the user chooses to stay)."""
        self.farewell: list[str] = []
        """Lines for stderr once the screen has closed (what was not saved, where it was exported)."""
        self._collector = CollectorPolicy()
        self._switching = SwitchIntervalPolicy()
        self.answer_warmup = AnswerWarmup()
        """Imports the message view's modules and builds the common fence languages' lexers on its own thread once a
        model has loaded, so neither the first send nor the first code block pays them on the UI thread (issue 11)."""
        self.engine: EngineClient = engine_factory(self._engine_sink)
        defaults = chat_settings or ChatSettings(model=model)
        self.session = ChatSession(settings=defaults)
        if conversation is not None:  # resume: its own settings and model, unless a model was asked for
            self.session = session_from(conversation)
            self.model_spec = model or self.session.settings.model
        store = SessionStore(history, report=lambda text, kind: self.chat.show_notice(text, kind))
        store.know(self.session)
        self.chat = ChatScreen(
            self.engine,
            self.session,
            store=store,
            default_settings=defaults,
            model_spec=self.model_spec,
            keymap=self.keymap,
            clock=clock,
            animate=animate,
        )
        self._last_theme = self.theme  # registered with the theme files in `App.__init__` (`_starting_theme`)
        if self.keymap:
            self.set_keymap(self.keymap)

    def _engine_sink(self, event: Event) -> None:
        """Called on the engine's owner thread: enqueue on the chat screen and return at once."""
        if isinstance(event, Started):
            self._collector.answering(event.request_id)
            self.answer_warmup.hold()
        elif isinstance(event, Finished):
            self.answer_warmup.release()
            if self._collector.answered(event.request_id):
                self.call_later(self.set_timer, COLLECT_AFTER_ANSWER_S, self._collector.collect_between_answers)
        if isinstance(event, ModelLoaded):
            self._collector.settle()  # the model's objects leave every later collection
            # Started on the UI thread (`call_later` posts, never blocks): the engine is idle now, and no answer
            # can have started yet; during the load the warm-up would compete with the engine's imports.
            self.call_later(self.answer_warmup.start)
        self.chat.post_message(EngineEvent(event))

    def get_default_screen(self) -> Screen:
        return self.chat

    def on_mount(self) -> None:
        for notice in self._startup_notices:
            self.notify(notice, title="mlxchat", severity="warning", timeout=8)
        for problem in self.theme_problems:
            self.notify(problem, title="Theme file skipped", severity="warning", timeout=8)
        if self._unknown_theme:
            self.notify(f"Theme {self._unknown_theme!r} is not installed; using {self.theme}.", severity="warning")
        self.call_after_refresh(self._start_engine)

    def _start_engine(self) -> None:
        self._collector.start()  # after the first frame: what start-up made stays, and leaves collection
        self._switching.start()  # the owner thread gets the GIL back soon after each step
        self.engine.start()
        if self._load_model:
            self.chat.load_model(self.model_spec)

    @on(ChatScreen.ModelPicked)
    def _model_picked(self, message: ChatScreen.ModelPicked) -> None:
        """Report the model the user picked so the caller can make it the default at the next start."""
        if self._on_model_change is not None:
            self._on_model_change(message.spec)

    @on(ChatScreen.Idle)
    async def _engine_idle(self) -> None:
        if self._quitting:
            await self._leave()

    def watch_theme(self, theme: str) -> None:
        """Report a theme the user chose (not the one we started with) so the caller can remember it."""
        if theme != self._last_theme and self._on_theme_change is not None:
            self._on_theme_change(theme)
        self._last_theme = theme

    # ---- actions --------------------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        await self._quit(EXIT_OK, interactive=True)

    @on(QuitRequested)
    async def _quit_requested(self, message: QuitRequested) -> None:
        """A signal or a lost terminal: end as Ctrl+Q does, with no question asked (nobody may be there)."""
        await self._quit(message.exit_code, interactive=False)

    async def _quit(self, exit_code: int, *, interactive: bool) -> None:
        """Quit; a running request is cancelled and drained first, so MLX is idle when the process exits and the
        partial answer is saved as stopped. The first non-zero `exit_code` asked for is the one the app exits
        with."""
        from .screens.unsaved import UnsavedScreen

        if self._exit_code == EXIT_OK:
            self._exit_code = exit_code
        self._asking = self._asking and interactive
        if not interactive and isinstance(self.screen, UnsavedScreen):
            self.screen.dismiss("export")  # nobody may be there to answer: export, as after any signal
            return
        if self._leaving:
            return
        if not self.chat.busy:
            await self._leave()
            return
        if self._quitting:
            if interactive:
                self.notify(f"Still waiting for the engine to stop ({self.engine.waiting_on() or 'finishing'}).")
            return
        self._quitting = True
        self.chat.cancel(reason="shutdown")

    async def _leave(self) -> None:
        """Finish the history's writes, then exit. What it could not take is offered as an export (asked when
        quitting by key; done at once for a signal or a lost terminal)."""
        if self._leaving:
            return
        self._leaving = True
        store = self.chat.store
        if await store.flush(QUIT_SAVE_TIMEOUT_S):
            self.exit(self._exit_code)
            return
        if not self._asking:
            self._export_unsaved()
            self.exit(self._exit_code)
            return
        from .screens.unsaved import UnsavedScreen, unsaved_question

        question = unsaved_question(
            store.unsaved_count, [session.title for session in store.unsaved_sessions()], store.last_problem
        )

        def answered(choice: str | None) -> None:
            if choice is None:  # stay: the turns remain on screen and saving is tried again
                self._quitting, self._leaving, self._exit_code, self._asking = False, False, EXIT_OK, True
                return
            if choice == "export":
                self._export_unsaved()
            else:
                self.farewell.append(f"mlxchat: {store.unsaved_count} unsaved change(s) discarded at your request.")
            self.exit(self._exit_code)

        self.push_screen(UnsavedScreen(question), answered)

    def _export_unsaved(self) -> None:
        """Write what the history could not take to a Markdown file: in the data folder if it takes one, else in
        the home folder, the current folder or the temporary folder. Says where on stderr after the screen."""
        store = self.chat.store
        folders = [store.history.data_dir, Path.home(), Path.cwd(), Path(tempfile.gettempdir())]
        try:
            written = store.export_unsaved(folders)
        except OSError as exc:
            self.farewell.append(f"mlxchat: {store.unsaved_count} change(s) could not be saved or exported ({exc}).")
            return
        for path in written:
            self.farewell.append(f"mlxchat: the history could not be saved; the conversation is in {path}")

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap))

    def action_change_theme(self) -> None:
        self.search_themes()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action from the one action table, with its keys, then Textual's own commands we keep."""
        for spec in ACTIONS:
            if spec.id in ("command_palette", "history"):
                continue
            target = {"app": self, "chat": self.chat, "prompt": None}[spec.scope]
            help_text = f"{spec.help} ({keys_for(spec, self.keymap)})"
            yield SystemCommand(spec.title, help_text, self._runner(spec.action, target))
        yield SystemCommand("Screenshot", "Save an SVG screenshot of the screen", lambda: self.deliver_screenshot())

    def _runner(self, action: str, target) -> Callable[[], object]:
        async def run() -> None:
            namespace = target if target is not None else self.chat.prompt
            await self.run_action(action, namespace)

        return run

    def on_unmount(self) -> None:
        """Close the history and the engine; the process-wide policies (collector, switch interval) are given
        back whatever closing raises, so a process that runs on (the test suite, a host app) keeps its own."""
        self.answer_warmup.close()
        try:
            try:
                self.chat.store.close()
            finally:
                self.engine.close(timeout_s=10.0)
        finally:
            try:
                self._collector.stop()
            finally:
                self._switching.stop()


def make_app(**options) -> MlxChatApp:
    """Build the app. Options are `MlxChatApp`'s keyword arguments; see its `__init__`."""
    return MlxChatApp(**options)


def _remembered_theme_file() -> Path:
    return paths.data_dir() / "ui-state.json"


def _remembered(key: str) -> str | None:
    try:
        value = json.loads(_remembered_theme_file().read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _remember(key: str, value: str) -> None:
    """Keep one choice for the next start, beside the others. Failing to write must never disturb the chat."""
    target = _remembered_theme_file()
    try:
        state = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    state = state if isinstance(state, dict) else {}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({**state, key: value}), encoding="utf-8")
    except OSError:
        pass


def remembered_theme() -> str | None:
    """The theme last chosen in the app (kept in `<data_dir>/ui-state.json`), or None."""
    return _remembered("theme")


def remember_theme(name: str) -> None:
    _remember("theme", name)


def remembered_model() -> str | None:
    """The model last picked in the app's model picker, or None (also when it has been deleted since: a start
    must not fail on a model that `mlxchat rm` removed)."""
    spec = _remembered("model")
    if spec is None:
        return None
    from mlxchat.models import demo  # only when a model was picked: a first start does not load model discovery
    from mlxchat.models.discovery import resolve_model
    from mlxchat.models.errors import ModelError

    if spec.strip().lower() in ("demo", demo.DEMO_MODEL_NAME.lower()):
        return spec  # resolving the demo would convert it here; the engine does that
    try:
        resolve_model(spec)  # reads its config only
    except (ModelError, OSError):
        return None
    return spec


def remember_model(spec: str) -> None:
    _remember("model", spec)


def local_engine_factory(config: AppConfig) -> EngineFactory:
    """The chat screen's local engine, as `config` places it. Conversations resume from their saved prompt caches
    (mlxchat -c after a restart, switching back). In a process of its own (the default) the UI's frames never take
    the GIL its owner thread needs between tokens (engine/process.py)."""
    from functools import partial

    from mlxchat.engine.process import process_engine_factory
    from mlxchat.settings import saved_cache_folder

    local = partial(Engine, saved_caches=saved_cache_folder(config))
    if config.engine == "thread":
        return local
    return process_engine_factory(local, log_path=paths.engine_log())


def run_tui(
    model: str | None = None,
    theme: str | None = None,
    resume: bool = False,
    endpoint: str | None = None,
    api_key_env: str | None = None,
) -> int:
    """Run the chat in this terminal; returns the exit code.

    Theme precedence: `theme` (a flag) > the theme last chosen in the app > `config.toml` > the default; the
    model for new chats likewise: `model` > the model last picked in the app > `config.toml` > the demo model.
    With an `endpoint` (flag or `config.toml`) the chat runs on a remote OpenAI-compatible server through the
    same engine contract; nothing else in the app changes.
    """
    from mlxchat.settings import load_config
    from mlxchat.store import History, StoreError

    config = load_config()
    picked = remembered_model() if model is None and not (endpoint or config.endpoint) else None
    chat_settings = config.chat.merged(model=model or picked)
    history = History()
    notices = list(config.problems)
    if history.read_only:
        notices.append(
            f"History is read-only: {history.data_dir} cannot be written. Conversations are shown (F2); "
            "nothing new is saved."
        )
    conversation = None
    if resume:
        try:
            conversation = history.last_conversation()
        except StoreError as exc:
            notices.append(f"Cannot resume: {exc}")
    remote = {}
    endpoint = endpoint or config.endpoint
    if endpoint:
        from mlxchat.engine.remote import remote_engine_factory

        from mlxchat.engine.remote.request import plain_http_key_warning

        remote["engine_factory"] = remote_engine_factory(
            endpoint,
            api_key_env or config.api_key_env,
            model or chat_settings.model,
            context_sizes=config.remote_context_sizes,
        )
        warning = plain_http_key_warning(endpoint, api_key_env or config.api_key_env)
        notices += [warning] if warning else []
    else:
        remote["engine_factory"] = local_engine_factory(config)
    app = make_app(
        **remote,
        model=model if conversation is not None else chat_settings.model,
        history=history,
        conversation=conversation,
        theme=theme or remembered_theme() or config.theme,
        keymap=config.keymap,
        chat_settings=chat_settings,
        on_theme_change=remember_theme,
        on_model_change=remember_model,
        startup_notices=notices,
    )
    app.driver_class = driver_for(app.driver_class)  # signals and a lost terminal end the chat as Ctrl+Q does
    try:
        return_code = app.run()
    finally:
        history.close()
    for line in app.farewell:
        print(line, file=sys.stderr)
    return int(return_code or 0)
