"""Provides `ProcessEngine`: an engine in a child process of its own, driven through the same contract.

Why a process: the engine's owner thread spends most of a fast model's step in Python, building the step's graph,
and Python runs one thread at a time per process (the GIL). In one process the UI thread's frames (15 ms of
Python each on the H200 while an answer streams) were taken out of decode: the 1B model reached 0.65–0.75 of raw
mlx-lm inside the TUI however the frames were cut (issue 11, BENCHMARKS.md). In a process of its own the owner
thread has a GIL of its own, and the UI draws as often as it likes.

Nothing else about the engine changes. The child builds the engine from the factory it is given (the local
`Engine`, pickled as a reference with its arguments) and starts it: one owner thread does every MLX call there,
cancel drains as before, a busy engine refuses at once. Each call the contract names (`submit`, `cancel`, `state`,
`waiting_on`, `close`) is a round trip over a socket answered by the child's main thread, never queued behind the
owner thread; `prepare`, and a `submit` while none of ours is open (the child is idle then and will accept), are
sent without waiting. Events come back in the order the engine emitted them and reach the sink on a reader thread
here, so a `Draining` still arrives before `cancel` returns, and every accepted request still ends with one
`Finished`: when the child dies (a GPU abort, the OOM killer), the requests it held end with an error that says
so; later submits raise `EngineClosed` with it, and `cancel`, `state` and `waiting_on` answer as for a closed
engine. The child ends when this side closes it or goes away
(its socket reads end-of-file), and it ignores the terminal's signals: the app decides when the engine stops.

The child's output goes to a log file (`engine.log` in the cache folder), never to the terminal the TUI draws on.

Threads on this side: the caller's (the UI thread), which pickles a message and queues it, never waiting on the
socket; a writer, which sends the queue in order; a reader, which delivers events and answers. A sink that calls
the engine runs on the reader, so such a call reads on in place until its answer comes (as the in-process engine
answers a call made from its sink at once).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from .client import EngineClient, EngineFactory
from .core import EngineState, Sink
from .errors import EngineClosed, describe_error
from .events import Busy, Finished
from .requests import PrepareConversation, Request

log = logging.getLogger(__name__)

CALLS = ("submit", "prepare", "cancel", "state", "waiting_on", "close")
"""The engine methods the child answers: the `EngineClient` contract, nothing else."""

CANCEL_WAIT_S = 5.0
"""How long a cancel (asked on the UI thread) waits for the child: one that cannot say it has started to drain by
then is stuck, and is ended rather than left holding the GPU and the screen."""

_CLOSED = EngineState("closed", None, None, 0.0, None)
_STOP_WRITING = object()


@dataclass
class _Call:
    """A call waiting for the child's answer."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class ProcessEngine(EngineClient):
    """An `EngineClient` whose engine runs in a child process (see the module docstring).

    `factory` builds the engine in the child from its sink (`partial(Engine, saved_caches=...)`); it must pickle,
    so it is a class or module-level function with picklable arguments, not a lambda."""

    def __init__(
        self,
        sink: Sink,
        factory: EngineFactory,
        *,
        log_path: Path | str | None = None,
        answer_timeout_s: float = 30.0,
    ) -> None:
        """`log_path` takes the child's output (None: discarded). `answer_timeout_s` bounds a call's round trip: a
        child that does not answer by then is treated as gone."""
        self._sink = sink
        self._factory = factory
        self.log_path = Path(log_path) if log_path is not None else None
        self._answer_timeout_s = answer_timeout_s
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._numbers = itertools.count()
        self._open: set[str] = set()  # accepted requests whose `Finished` has not come back
        self._gone: str | None = None  # why the child can take no more calls
        self._failure: str | None = None  # what the child said when it could not build its engine
        self._closing = False
        self._conn: Connection | None = None
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    # ---- the contract ---------------------------------------------------------------------------------------

    def start(self) -> "ProcessEngine":
        if self.process is not None:
            raise RuntimeError("ProcessEngine.start called twice")
        ours, theirs = socket.socketpair()
        output = self._open_log()
        try:
            self.process = subprocess.Popen(
                # -P: the folder mlxchat was started in is not put first on the child's import path (a `logging.py`
                # there would replace the real one in the engine alone); the app's own process has none either.
                [sys.executable, "-P", "-m", "mlxchat.engine.process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # the terminal's signals (Ctrl+C, a closed window) go to the app alone
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            if output is not subprocess.DEVNULL:
                output.close()
        self._conn = Connection(ours.detach())
        try:
            self._conn.send(("start", self._factory))  # here, so a factory that does not pickle is said at once
        except BaseException as exc:  # no engine, and no child left waiting for one
            self._gone = f"The engine process could not start: {exc}"
            self.process.kill()
            self._reap()
            raise
        threading.Thread(target=self._write, name="mlxchat-engine-calls", daemon=True).start()
        self._reader = threading.Thread(target=self._read, name="mlxchat-engine-events", daemon=True)
        self._reader.start()
        return self

    def submit(self, request: Request) -> Busy | None:
        """While no request of ours is open the child is idle (it clears its active request before it emits the
        `Finished` we saw), so it will accept: the request is sent without waiting, and a click never waits for
        the child (nor for its start-up, the first load). Otherwise the child decides, and names what runs."""
        message = _pickled(("call", None, "submit", (request,), {}))
        with self._lock:  # decided and queued in one order: a submit decided after this one is sent after it
            if self._closing:
                raise EngineClosed("The engine is closed.")
            if self._gone is not None:
                raise EngineClosed(self._gone)
            idle = not self._open
            self._open.add(request.request_id)  # before the call: its Finished can come back before the answer
            if idle:
                self._outbox.put(message)
                return None
        try:
            refusal = self._call("submit", request)
        except BaseException:
            with self._lock:
                self._open.discard(request.request_id)
            raise
        if refusal is not None:
            with self._lock:
                self._open.discard(request.request_id)
        return refusal

    def prepare(self, hint: PrepareConversation) -> None:
        if self._gone is None:
            self._outbox.put(_pickled(("call", None, "prepare", (hint,), {})))  # a hint never waits

    def cancel(self, request_id: str | None = None, *, reason: str = "cancel") -> bool:
        try:
            return self._call("cancel", request_id, reason=reason, wait_s=CANCEL_WAIT_S)
        except EngineClosed:
            return False  # nothing runs in a child that is gone: its requests have ended

    def state(self) -> EngineState:
        try:
            return self._call("state")
        except EngineClosed:
            return _CLOSED

    def waiting_on(self) -> str | None:
        """Asked while the person waits for a slow quit, on the UI thread: it waits a second at most, and a child
        that is slow to say is not treated as gone (a close is already under way)."""
        try:
            return self._call("waiting_on", wait_s=1.0, patient=True)
        except EngineClosed:
            return None
        except TimeoutError:
            return "the engine process, which has not answered for a second"

    def close(self, timeout_s: float = 30.0) -> bool:
        with self._lock:
            self._closing = True
        if self._reader is None:  # never started, or its start failed: nothing to ask
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
            self._reap()
            return self.process is None or self.process.poll() is not None
        try:
            parked = self._call("close", timeout_s, wait_s=timeout_s + self._answer_timeout_s)
        except EngineClosed:
            parked = False  # it was gone already, or stopped answering
        self._outbox.put(_pickled(("exit",)))
        self._outbox.put(_STOP_WRITING)
        self._reap()
        return parked

    # ---- this side --------------------------------------------------------------------------------------------

    def _call(self, method: str, *args, wait_s: float | None = None, patient: bool = False, **kwargs) -> Any:
        """The child's answer to `method(*args, **kwargs)`. A child that does not answer within `wait_s` (default:
        the answer timeout) is treated as gone, unless `patient`: then this raises `TimeoutError` and the answer,
        when it comes, is dropped. Called from the sink (the reader thread), it reads on in place."""
        number, call = next(self._numbers), _Call()
        message = _pickled(("call", number, method, args, kwargs))
        with self._lock:
            if self._gone is not None:
                raise EngineClosed(self._gone)
            self._calls[number] = call
            self._outbox.put(message)
        wait_s = wait_s or self._answer_timeout_s
        answered = self._read_until(call, wait_s) if self._on_reader() else call.done.wait(wait_s)
        if not answered:
            if patient:
                with self._lock:
                    self._calls.pop(number, None)
                raise TimeoutError(f"the engine process did not answer {method} within {wait_s:g} s")
            self._lost(f"The engine process did not answer {method} within {wait_s:.0f} s.")
        if call.error is not None:
            raise call.error
        return call.value

    def _on_reader(self) -> bool:
        return threading.current_thread() is self._reader

    def _write(self) -> None:
        """The writer thread: sends what the callers queued, in their order. A child that stops reading blocks
        this thread, never a caller (whose call then times out)."""
        assert self._conn is not None
        while True:
            message = self._outbox.get()
            if message is _STOP_WRITING:
                return
            try:
                self._conn.send_bytes(message)
            except (OSError, ValueError):
                return  # the child is gone: the reader sees it and says why

    def _read(self) -> None:
        """The reader thread: events to the sink in the order the engine emitted them, answers to their calls."""
        while self._read_one():
            pass
        self._end_held()

    def _read_until(self, call: _Call, wait_s: float) -> bool:
        """On the reader thread (a sink that calls the engine): read and deliver until `call` is answered."""
        assert self._conn is not None
        while not call.done.is_set():
            try:
                ready = self._conn.poll(wait_s)
            except (OSError, ValueError):
                ready = True  # closed: the read below says so
            if not ready:
                return False
            if not self._read_one():
                return call.done.is_set()
        return True

    def _read_one(self) -> bool:
        """Read one message and act on it. False when the child is gone (or can no longer be understood)."""
        assert self._conn is not None
        try:
            message = self._conn.recv()
        except (EOFError, OSError, ValueError):
            self._lost(None)
            return False
        except Exception as exc:  # a message that does not unpickle: nothing after it can be trusted
            self._lost(f"The engine process sent a message that cannot be read ({describe_error(exc)}).")
            return False
        if self._gone is not None:
            return True  # declared gone (it stopped answering): what it still sends is not delivered
        kind = message[0]
        if kind == "event":
            event = message[1]
            if isinstance(event, Finished):
                with self._lock:
                    self._open.discard(event.request_id)
            self._deliver(event)
        elif kind == "answer":
            _, number, ok, value = message
            with self._lock:
                call = self._calls.pop(number, None)
            if call is not None:
                call.value, call.error = (value, None) if ok else (None, value)
                call.done.set()
        elif kind == "failed":
            self._failure = message[1]
        return True

    def _deliver(self, event) -> None:
        try:
            self._sink(event)
        except Exception:  # a broken consumer must not stop the events after it
            log.exception("event sink failed on %r", event)

    def _lost(self, why: str | None) -> None:
        """The child can take no more calls: fail the calls waiting, and end the child if it still runs. Its open
        requests are ended by the reader (`_end_held`), which sees it go, so the sink is called from one thread."""
        if self._gone is not None:
            return
        why = why or self._why_gone()  # outside the lock: it may wait for the child's exit
        with self._lock:
            if self._gone is not None:
                return
            self._gone = why
            calls, self._calls = list(self._calls.values()), {}
        for call in calls:
            call.error = EngineClosed(why)
            call.done.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # it stopped answering: it cannot be trusted with the GPU any more

    def _end_held(self) -> None:
        """After the child has gone: each request it held ends with one `Finished` saying why (a close that drained
        leaves none)."""
        with self._lock:
            held, self._open = sorted(self._open), set()
            closing = self._closing
        if not closing:
            log.error("%s", self._gone)
        for request_id in held:
            self._deliver(Finished(request_id, "error", error=self._gone))

    def _why_gone(self) -> str:
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
        where = f" Its log: {self.log_path}." if self.log_path is not None else ""
        if self._failure is not None:
            return f"The engine process could not start its engine: {self._failure}.{where}"
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        elif code is not None:
            how = f"exit code {code}"
        else:
            how = "its connection closed"
        return f"The engine process stopped unexpectedly ({how}).{where}"

    def _open_log(self):
        """The child's output file, or nowhere when it cannot be written (a read-only or full disk): the engine
        runs without its log rather than not at all."""
        if self.log_path is None:
            return subprocess.DEVNULL
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.log_path, "wb")
        except OSError as exc:
            log.warning("the engine's log %s cannot be written (%s): its output is discarded", self.log_path, exc)
            self.log_path = None
            return subprocess.DEVNULL

    def _reap(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._reader is not None and not self._on_reader():
            self._reader.join(timeout=5.0)
        if self._conn is not None:
            self._conn.close()


def _pickled(message: tuple) -> bytes:
    """The message as the socket carries it, pickled on the caller's thread: one that does not pickle is the
    caller's error, said at once."""
    return bytes(ForkingPickler.dumps(message))


def process_engine_factory(factory: EngineFactory, log_path: Path | None = None) -> EngineFactory:
    """An engine factory (`sink → engine`) that runs `factory`'s engine in a child process."""

    def build(sink: Sink) -> ProcessEngine:
        return ProcessEngine(sink, factory, log_path=log_path)

    return build


# ---- the child -------------------------------------------------------------------------------------------------


def serve(fd: int) -> None:
    """The child's main thread: build and start the engine, answer calls until told to exit or the parent is gone,
    then close the engine and leave without interpreter teardown (MLX threads and teardown do not mix: core.py)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(fd, False)  # a process the engine starts must not keep the socket open after this one ends
    conn = Connection(fd)
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    def sink(event) -> None:
        send(("event", event))

    engine, code = None, 0
    try:
        try:
            kind, factory = conn.recv()  # unpickling imports the factory's module: it can fail here
            engine = factory(sink).start()
        except (EOFError, OSError):
            raise
        except Exception as exc:  # said to the parent, which ends the first request with it
            log.exception("the engine could not be built")
            send(("failed", describe_error(exc)))
            code = 1
            return
        while True:
            message = conn.recv()
            if message[0] == "exit":
                break
            _, number, method, args, kwargs = message
            try:
                if method not in CALLS:
                    raise AttributeError(f"not an engine call: {method}")
                ok, value = True, getattr(engine, method)(*args, **kwargs)
            except Exception as exc:
                ok, value = False, exc if isinstance(exc, EngineClosed) else RuntimeError(describe_error(exc))
                if number is None:  # sent without waiting: nobody reads an answer
                    log.exception("engine call %s failed", method)
                    if method == "submit":  # the request was counted as accepted: it still ends, once
                        sink(Finished(args[0].request_id, "error", error=describe_error(exc)))
            if number is None and method == "submit" and isinstance(value, Busy):
                # Cannot happen (the parent posts only to an idle engine), but if it did, the request still ends.
                sink(Finished(args[0].request_id, "error", error=value.message))
            if number is not None:
                try:
                    send(("answer", number, ok, value))
                except Exception as exc:  # an answer that does not pickle
                    send(("answer", number, False, RuntimeError(f"{method}: {describe_error(exc)}")))
    except (EOFError, OSError):
        pass  # the parent is gone: stop as a close would
    except Exception:
        log.exception("the engine process failed")
        code = 1
    finally:
        if engine is not None:
            engine.close(timeout_s=30.0)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    serve(int(sys.argv[1]))
