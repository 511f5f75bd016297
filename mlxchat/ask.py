"""Provides `mlxchat ask`: one question, answered through the engine, streamed to stdout.

It uses the engine exactly as the TUI does: requests in, events out through a queue, one owner thread. Ctrl+C
(SIGINT) does not raise into the middle of anything: the handler only sets a flag, and the loop that waits for
events turns it into `Engine.cancel()` and keeps waiting for the request's `Finished`, so the engine is drained
before the process ends (exit code 130). A second Ctrl+C leaves at once.

With an endpoint, the engine is the `RemoteEngine` (an OpenAI-compatible server answers), and everything else is
the same: the remote backend keeps the engine's contract.
"""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, TextIO

from mlxchat.engine import (
    ChatRequest,
    ContextWindow,
    Engine,
    Event,
    Finished,
    LoadModel,
    Message,
    ModelInfo,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    Stats,
    TextDelta,
    ThinkingDelta,
    ThinkingDone,
)
from mlxchat.engine.core import EngineCore
from mlxchat.engine.errors import RequestError
from mlxchat.engine.vision_inputs import images_refused, load_image
from mlxchat.exit import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, exit_process
from mlxchat.settings import ChatSettings
from mlxchat.terminal_text import visible

if TYPE_CHECKING:
    from mlxchat.engine.saved_caches import SavedCacheFolder
    from mlxchat.store import Conversation

POLL_S = 0.05


@dataclass(frozen=True)
class AskJob:
    """What `mlxchat ask` was asked to do, with flags, config and defaults already merged into `settings`."""

    prompt: str
    images: tuple[Path, ...] = ()
    settings: ChatSettings = ChatSettings()
    json_output: bool = False
    show_stats: bool = False
    show_thinking: bool = False
    """Print a reasoning model's thinking on stdout before the answer (otherwise: dimmed on a terminal's stderr)."""
    endpoint: str | None = None
    """An OpenAI-compatible server to ask instead of a local model (`settings.model` names one of its models)."""
    api_key_env: str | None = None
    """The environment variable holding the server's API key."""
    documents: tuple[Path, ...] = ()
    """Text or PDF files whose text goes into the question (checked by `check_documents`)."""
    conversation: "Conversation | None" = None
    """The stored conversation this question continues (`ask -c`, `ask --conversation ID`); the question and its
    answer are saved to it. None: a one-off question, not saved."""
    saved_caches: "SavedCacheFolder | None" = None
    """Where the engine keeps conversations' prompt caches, so a continued conversation does not read its whole
    history again."""
    remote_context_sizes: Mapping[str, int] = field(default_factory=dict)
    """`config.toml`'s `remote_context_size`: model id (or "*") → the context size of a remote model."""
    summarize: bool = False
    """`--summarize`: the model first summarizes `conversation`, a new conversation starts from the summary (saved
    to the history; the old one stays as it is), and the question is asked and saved there. For a conversation
    that outgrew the model's context under the "stop" policy."""


@dataclass
class AskResult:
    rc: int
    finished: Finished | None = None
    model: ModelInfo | None = None
    error: str | None = None


class BadInput(Exception):
    """Something the user can fix before anything runs (exit code 2)."""


def check_images(images: tuple[Path, ...]) -> tuple[Path, ...]:
    """Absolute paths of readable, decodable image files; raises `BadInput` naming the first one that is not."""
    checked = []
    for image in images:
        path = Path(image).expanduser()
        if not path.exists():
            raise BadInput(f"image not found: {image}")
        if not path.is_file():
            raise BadInput(f"not an image file: {image}")
        try:  # the engine's own check, made up front: a damaged image is bad input too (exit 2), not a failure
            load_image(path)
        except RequestError as exc:
            raise BadInput(str(exc)) from None
        checked.append(path.resolve())
    return tuple(checked)


def read_prompt_from(stream) -> str:
    """The prompt piped into `mlxchat ask -`, decoded as UTF-8; raises `BadInput` for bytes that are not text.

    The bytes are read and decoded here, strictly, because a text-mode stdin hands undecodable bytes on as lone
    surrogates (surrogateescape) that only fail deep in the tokenizer, with a `TypeError` nobody can act on.
    """
    raw = getattr(stream, "buffer", None)
    try:
        data = raw.read() if raw is not None else stream.read().encode("utf-8", "surrogateescape")
    except OSError as exc:
        raise BadInput(f"cannot read the prompt from stdin ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"stdin is not text: byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid UTF-8; "
            "mlxchat ask - expects UTF-8 text"
        ) from None
    if "\x00" in text:
        offset = data.index(b"\x00")
        raise BadInput(f"stdin is not text (a NUL byte at offset {offset}); mlxchat ask - expects UTF-8 text")
    return text


def check_documents(documents: tuple[Path, ...]) -> tuple[Path, ...]:
    """Absolute paths of readable documents; raises `BadInput` naming the first that is not (binary, not UTF-8,
    a PDF without text)."""
    from mlxchat.engine.documents import DocumentError, read_document

    checked = []
    for document in documents:
        try:
            read_document(document)
        except DocumentError as exc:
            raise BadInput(str(exc)) from None
        checked.append(Path(document).expanduser().resolve())
    return tuple(checked)


def find_conversation(conversation_id: str | None) -> "Conversation":
    """The stored conversation to continue: `conversation_id`, or the last one used when None. Raises `BadInput`
    when there is none (or the history cannot be read)."""
    from mlxchat.store import History, StoreError

    history = History()
    try:
        conversation = history.get_conversation(conversation_id) if conversation_id else history.last_conversation()
    except StoreError as exc:
        raise BadInput(str(exc)) from None
    finally:
        history.close()
    if conversation is None:
        raise BadInput("there is no conversation to continue yet; ask without -c, or chat in mlxchat first.")
    return conversation


def check_model(spec: str | None) -> None:
    """Fail fast (without importing MLX) on a model that does not exist; the engine checks again as it loads."""
    if spec is None:
        return
    from mlxchat.models import demo
    from mlxchat.models.discovery import resolve_model
    from mlxchat.models.errors import ModelError

    if spec.strip().lower() in ("demo", demo.DEMO_MODEL_NAME.lower()):
        return  # resolving the demo converts it: leave that to the engine thread
    try:
        resolve_model(spec)
    except ModelError as exc:
        raise BadInput(str(exc)) from None


def run_ask(job: AskJob, out: TextIO | None = None, err: TextIO | None = None) -> None:
    """Answer `job` and end the process through `exit_process` (this never returns)."""
    out, err = out or sys.stdout, err or sys.stderr
    interrupts = _Interrupts()
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    engine = _engine_for(job, events.put)
    with interrupts:
        engine.start()
        result = _Session(job, engine, events, interrupts, out, err).run()
        if result.error:
            _say(err, f"mlxchat: error: {result.error}")
        if job.json_output:
            _say(out, json.dumps(_json_document(result), ensure_ascii=False))
        elif job.show_stats and result.finished is not None and result.finished.stats is not None:
            _say(err, describe_stats(result.finished))
        exit_process(result.rc, engine)


def _engine_for(job: AskJob, sink) -> EngineCore:
    if job.endpoint is None:
        saved = job.saved_caches if job.conversation is not None else None
        return Engine(sink, name="mlxchat-ask-engine", saved_caches=saved)
    from mlxchat.engine.remote import RemoteEngine

    return RemoteEngine(
        sink, job.endpoint, job.api_key_env, context_sizes=job.remote_context_sizes, name="mlxchat-ask-engine"
    )


class _Session:
    """One load and one chat request, waited for on the main thread."""

    def __init__(
        self,
        job: AskJob,
        engine: EngineCore,
        events: queue.SimpleQueue,
        interrupts: "_Interrupts",
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.job, self.engine, self.events, self.interrupts = job, engine, events, interrupts
        self.out, self.err = out, err
        self.out_is_terminal = _isatty(out)  # then model text is neutralised; a pipe gets the bytes unchanged
        self.progress = _Progress(err)
        self.line_open = False  # streamed text that does not end with a newline yet
        self.thinking = _ThinkingOutput(out if job.show_thinking else err, job.show_thinking, job.json_output)
        self.window: ContextWindow | None = None

    def run(self) -> AskResult:
        load = LoadModel(self.job.settings.model)
        if self.interrupts.count:
            return AskResult(EXIT_INTERRUPTED)
        self.engine.submit(load)
        loaded = self._wait(load.request_id)
        self.progress.clear()
        if loaded.reason in ("cancelled", "shutdown") or self.interrupts.count:
            return AskResult(EXIT_INTERRUPTED, error=None)
        if loaded.reason != "stop":
            return AskResult(EXIT_BAD_INPUT, error=_one_line(loaded.error or "the model could not be loaded"))
        model = self.engine.model
        refusal = images_refused(model) if self.job.images else None
        if refusal is not None:
            return AskResult(EXIT_BAD_INPUT, model=model, error=f"{refusal} Choose a vision model with --model.")

        if self.job.summarize:
            problem = self._continue_from_summary()
            if problem is not None:
                return problem
        request = ChatRequest(
            messages=self._messages(),
            conversation_id=self.job.conversation.id if self.job.conversation is not None else "ask",
            sampling=self.job.settings.sampling(),
            overflow=self.job.settings.overflow,
            kv_bits=self.job.settings.kv_bits,
            thinking=self.job.settings.thinking,
            thinking_budget=self.job.settings.thinking_budget,
        )
        self.engine.submit(request)
        finished = self._wait(request.request_id)
        self.thinking.end()
        if self.line_open:
            _write(self.out, "\n")
        if finished.reason == "length" and finished.reasoning and not finished.text and not self.job.json_output:
            _say(
                self.err,
                f"mlxchat: the answer ran out of tokens while the model was still thinking (max tokens "
                f"{self.job.settings.max_tokens}); raise --max-tokens or cap the thinking with --thinking-budget.",
            )
        if self.window is not None and self.window.hidden and not self.job.json_output:
            _say(
                self.err,
                f"mlxchat: {len(self.window.hidden)} earlier messages are not in the model's view "
                f"(overflow: {self.window.policy}); they stay in the history.",
            )
        save_problem = self._save(finished)
        if save_problem:
            _say(self.err, f"mlxchat: warning: {save_problem}")
        if self.interrupts.pipe_closed:
            return AskResult(EXIT_BROKEN_PIPE, finished, model)
        if self.interrupts.count:
            return AskResult(EXIT_INTERRUPTED, finished, model)
        if finished.reason == "error":
            error = _one_line(finished.error or "generation failed")
            if finished.overflow_refused:
                error += " Here: ask again with --overflow truncate-middle (or rolling-window), or with --summarize."
            return AskResult(EXIT_FAILURE, finished, model, error)
        return AskResult(EXIT_OK, finished, model)

    def _continue_from_summary(self) -> AskResult | None:
        """Summarize the continued conversation (nothing of it is printed), save a new conversation that opens
        with the summary, and continue that one from here. An `AskResult` when it could not: the old conversation
        stays as it was and no new one is made."""
        from mlxchat.engine.summary import continued_title, summary_intro, summary_problem, summary_request
        from mlxchat.store import History, StoreError

        source, settings = self.job.conversation, self.job.settings
        request = summary_request(
            replace(source, settings=settings).engine_messages(),
            conversation_id=source.id,
            sampling=settings.sampling(),
            title=source.title,
            thinking_switch=self.engine.model is not None and self.engine.model.thinking_switch,
            kv_bits=settings.kv_bits,
            thinking=settings.thinking,
            thinking_budget=settings.thinking_budget,
        )
        self.engine.submit(request)
        finished = self._wait(request.request_id, show=False)
        problem = summary_problem(finished)
        if self.interrupts.count or finished.reason in ("cancelled", "shutdown"):
            return AskResult(EXIT_INTERRUPTED, finished, self.engine.model)
        if problem is not None:
            return AskResult(EXIT_FAILURE, finished, self.engine.model, f"{problem}; nothing was changed.")
        history = History()
        try:
            new = history.create_conversation(continued_title(source.title), settings=settings)
            history.add_message(new.id, "user", summary_intro(source.title, source.id))
            history.add_message(new.id, "assistant", finished.text.strip(), stats=finished.stats)
            new = history.get_conversation(new.id)
        except StoreError as exc:
            return AskResult(EXIT_FAILURE, finished, self.engine.model, f"the summary could not be saved: {exc}")
        finally:
            history.close()
        self.job = replace(self.job, conversation=new)
        if not self.job.json_output:
            _say(self.err, f"mlxchat: continuing in “{new.title}” ({new.id}), from a summary of “{source.title}”.")
        return None

    def _save(self, finished: Finished) -> str | None:
        """Save the question and its answer to the continued conversation, as the chat screen does. Returns a
        problem to report, or None."""
        conversation = self.job.conversation
        if conversation is None or finished.reason not in ("stop", "length", "cancelled"):
            return None
        from mlxchat.store import History, StoreError

        history = History()
        try:
            attachments = self.job.images + self.job.documents
            history.add_message(conversation.id, "user", self.job.prompt, images=attachments)
            status = "stopped" if finished.reason == "cancelled" else "complete"
            history.add_message(
                conversation.id,
                "assistant",
                finished.text,
                status=status,
                stats=finished.stats,
                thinking=finished.reasoning,
            )
        except StoreError as exc:
            return f"the answer was not saved to the history: {exc}"
        finally:
            history.close()
        return None

    def _messages(self) -> tuple[Message, ...]:
        conversation = self.job.conversation
        if conversation is not None:
            earlier = replace(conversation, settings=self.job.settings).engine_messages()
            return earlier + (Message("user", self.job.prompt, self.job.images, self.job.documents),)
        messages = []
        if self.job.settings.system_prompt:
            messages.append(Message("system", self.job.settings.system_prompt))
        messages.append(Message("user", self.job.prompt, self.job.images, self.job.documents))
        return tuple(messages)

    def _wait(self, request_id: str, show: bool = True) -> Finished:
        """Handle events until the request's `Finished`; a Ctrl+C becomes a cancel, and we keep waiting. With
        `show` False, the answer and its thinking are not printed (a summary the new conversation keeps)."""
        cancelled_at = 0
        while True:
            if self.interrupts.count > cancelled_at:
                cancelled_at = self.interrupts.count
                self.progress.clear()
                self.engine.cancel(request_id)
            try:
                event = self.events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if event.request_id != request_id:
                continue
            if not show and isinstance(event, (ThinkingDelta, ThinkingDone, TextDelta)):
                continue
            if isinstance(event, ThinkingDelta):
                self.thinking.write(event.text)
            elif isinstance(event, ThinkingDone):
                self.thinking.end()
                if event.by_budget and not self.job.json_output:
                    budget_note = f"thinking reached its budget ({event.tokens} tokens); the model answered from there."
                    _say(self.err, f"mlxchat: {budget_note}")
            elif isinstance(event, TextDelta):
                self.thinking.end()
                if not self.job.json_output and event.text:
                    text = visible(event.text) if self.out_is_terminal else event.text
                    if _write(self.out, text):
                        self.line_open = not event.text.endswith("\n")
                    else:
                        self.interrupts.broken_pipe()
            elif isinstance(event, ModelLoading):
                self.progress.show(f"{event.step}…", event.fraction)
            elif isinstance(event, (ModelLoaded, ModelLoadFailed)):
                self.progress.clear()
            elif isinstance(event, ContextWindow):
                self.window = event
            elif isinstance(event, Finished):
                return event


class _Interrupts:
    """SIGINT → a counter the event loop reads. The second Ctrl+C exits at once (no drain)."""

    def __init__(self) -> None:
        self.count = 0
        self.pipe_closed = False
        self._previous = None

    def __enter__(self) -> "_Interrupts":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        self.count += 1
        if self.count >= 2:
            _say(sys.stderr, "\nmlxchat: interrupted again; leaving without waiting for the model.")
            exit_process(EXIT_INTERRUPTED)

    def broken_pipe(self) -> None:
        """stdout was closed by its reader (`| head`): stop generating, as for a Ctrl+C."""
        if not self.pipe_closed:
            self.pipe_closed = True
            self.count += 1


class _Progress:
    """Model-loading progress on stderr, only when stderr is a terminal (never in pipes or logs)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.enabled = _isatty(err)
        self.shown = False

    def show(self, text: str, fraction: float | None) -> None:
        if not self.enabled:
            return
        percent = f" {fraction:4.0%}" if fraction is not None else ""
        self.err.write(f"\r\x1b[2K{text}{percent}")
        self.err.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.err.write("\r\x1b[2K")
            self.err.flush()
            self.shown = False


def describe_stats(finished: Finished) -> str:
    """One line for stderr: tokens, speed, time to first token, memory, why it stopped."""
    stats = finished.stats
    parts = [f"{stats.prompt_tokens} prompt tokens"]
    if stats.cached_tokens:
        parts[-1] += f" ({stats.cached_tokens} cached)"
    parts.append(f"{stats.generation_tokens} generated")
    if stats.ttft_s is not None:
        parts.append(f"first token {stats.ttft_s:.2f} s")
    parts += [f"prefill {stats.prompt_tps:.1f} tok/s", f"decode {stats.decode_tps:.1f} tok/s"]
    if stats.peak_memory_bytes:  # a remote model's memory is not ours to measure
        parts.append(f"peak memory {stats.peak_memory_bytes / 2**20:.0f} MiB")
    parts.append(f"finish: {finished.reason}")
    return "stats: " + " · ".join(parts)


def _json_document(result: AskResult) -> dict:
    finished = result.finished
    stats: Stats | None = finished.stats if finished else None
    reason = finished.reason if finished else ("cancelled" if result.rc == EXIT_INTERRUPTED else "error")
    return {
        "text": finished.text if finished else "",
        "reasoning": finished.reasoning if finished else "",
        "finish_reason": reason,
        "usage": asdict(finished.usage) if finished else None,
        "stats": {k: v for k, v in asdict(stats).items() if k != "request_id"} if stats else None,
        "model": asdict(result.model) if result.model else None,
        "error": result.error,
    }


def _write(stream: TextIO, text: str) -> bool:
    """Write and flush; False when the reader has gone away (broken pipe)."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except BrokenPipeError:
        _silence_stdout()
        return False
    except (OSError, ValueError):
        return False


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so later flushes (and exit) stay quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _say(stream: TextIO, line: str) -> None:
    """Write one line; on a terminal, control sequences in it (a server's words) are shown, not obeyed."""
    _write(stream, (visible(line) if _isatty(stream) else line) + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _ThinkingOutput:
    """Where a reasoning model's thinking goes: stdout with --show-thinking (framed, so a reader can tell it from the
    answer), else dimmed on stderr when that is a terminal, else nowhere (it stays in --json's `reasoning`).
    stdout carries only the answer by default, so `mlxchat ask … | tool` gets the answer alone."""

    DIM, RESET = "\x1b[2m", "\x1b[0m"

    def __init__(self, stream: TextIO, on_stdout: bool, json_output: bool) -> None:
        self.stream = stream
        self.on_stdout = on_stdout
        self.terminal = _isatty(stream)
        self.enabled = not json_output and (on_stdout or self.terminal)
        self.open = False

    def write(self, text: str) -> None:
        if not self.enabled or not text:
            return
        shown = visible(text) if self.terminal else text
        if not self.open:
            self.open = True
            _write(self.stream, "Thinking…\n" if self.on_stdout else self.DIM + "Thinking…\n")
        _write(self.stream, shown if self.on_stdout else self.DIM + shown + self.RESET)

    def end(self) -> None:
        """Close the thinking block (once) before the answer starts."""
        if self.open:
            self.open = False
            _write(self.stream, "\n…done thinking.\n\n" if self.on_stdout else self.RESET + "\n\n")
