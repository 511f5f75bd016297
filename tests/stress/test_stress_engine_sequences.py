"""Random sequences on the real engine (hypothesis): chats, image turns with good and bad files, model switches
between a tiny text model and a tiny vision model, failed loads, unloads, cancels, submits during a drain, and
close at any moment.

Invariants, whatever the sequence:
- no crash: every call returns, the engine answers every accepted request with exactly one `Finished` and none
  for a refused one, and it is idle (or closed) at the end;
- no MLX call off the owner thread, and never two threads inside MLX (`probe_mlx`);
- a submit right after a successful cancel is refused as busy (phase draining) unless the cancelled request's
  `Finished` was already out: nothing runs beside a draining request;
- failures are the expected ones, in words: a bad image fails naming its file, never reaches an answer, and a
  20000×20000 PNG is refused by its size; a text turn fails only when no model is loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from events import EventLog
from hypothesis import HealthCheck, given, settings
from hypothesis import event as count_event
from hypothesis import strategies as st
from mlx_probe import probe_mlx
from stress_files import BAD_IMAGE_KINDS

from mlxchat.engine import (
    Busy,
    ChatRequest,
    Engine,
    EngineClosed,
    Finished,
    LoadModel,
    Message,
    SamplingParams,
    UnloadModel,
)

MODELS = ("text", "vision")
BROKEN_MODELS = ("missing", "corrupt")
IMAGES = ("good",) + BAD_IMAGE_KINDS

action = st.one_of(
    st.tuples(st.just("chat"), st.integers(1, 120)),
    st.tuples(st.just("image"), st.sampled_from(IMAGES), st.integers(1, 24)),
    st.tuples(st.just("image"), st.sampled_from(IMAGES), st.integers(1, 24)),
    st.tuples(st.just("image"), st.sampled_from(IMAGES), st.integers(1, 24)),
    st.tuples(st.just("long_prompt"), st.integers(40, 250)),
    st.tuples(st.just("switch"), st.sampled_from(MODELS)),
    st.tuples(st.just("bad_load"), st.sampled_from(BROKEN_MODELS)),
    st.just(("unload",)),
    st.just(("cancel",)),
    st.just(("cancel_then_submit",)),
    st.tuples(st.just("pause"), st.floats(0, 0.08)),
    st.just(("wait",)),
    st.just(("close",)),
)
# Half the steps wait for the engine to be idle afterwards, so requests run to their end as often as they race.
waited = st.tuples(action, st.booleans()).map(lambda pair: [pair[0], ("wait",)] if pair[1] else [pair[0]])
scripts = st.lists(waited, min_size=2, max_size=8).map(lambda steps: [step for group in steps for step in group])


@dataclass
class Models:
    text: Path
    vision: Path
    corrupt: Path
    images: dict[str, Path]
    missing: Path = field(default_factory=lambda: Path("/nonexistent/mlxchat/model"))


@dataclass
class Run:
    log: EventLog = field(default_factory=EventLog)
    accepted: dict[str, tuple] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    closed: bool = False


def chat(text: str, max_tokens: int, images: tuple[Path, ...] = ()) -> ChatRequest:
    return ChatRequest((Message("user", text, images),), sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens))


def request_for(step: tuple, models: Models):
    kind = step[0]
    if kind == "chat":
        return chat("hello " * 5, step[1])
    if kind == "image":
        return chat("What is in this picture?", step[2], (models.images[step[1]],))
    if kind == "long_prompt":
        return chat("The cat sat on the mat. " * step[1], 4)
    if kind == "switch":
        return LoadModel(str(models.text if step[1] == "text" else models.vision))
    if kind == "bad_load":
        return LoadModel(str(models.missing if step[1] == "missing" else models.corrupt))
    if kind == "unload":
        return UnloadModel()
    return None


def submit(engine: Engine, run: Run, request, step: tuple) -> Busy | None:
    try:
        answer = engine.submit(request)
    except EngineClosed:
        assert run.closed, "EngineClosed before close()"
        return None
    if isinstance(answer, Busy):
        run.refused.append(request.request_id)
        assert answer.active_request_id in run.accepted, answer
    else:
        run.accepted[request.request_id] = step
    return answer


def play(engine: Engine, run: Run, script: list[tuple], models: Models) -> None:
    for step in script:
        kind = step[0]
        if kind == "cancel":
            engine.cancel()
        elif kind == "cancel_then_submit":
            active = engine.state().active_request_id
            if engine.cancel():
                request = chat("right after the cancel", 8)
                answer = submit(engine, run, request, ("chat", 8))
                if answer is None and not run.closed:
                    # Accepted: only possible when the cancelled request had already finished (under the lock).
                    assert any(isinstance(e, Finished) and e.request_id == active for e in run.log.drain()), (
                        f"{request.request_id} was accepted while {active} was still draining"
                    )
                elif answer is not None:
                    assert answer.phase == "draining", answer
        elif kind == "pause":
            time.sleep(step[1])
        elif kind == "wait":
            assert run.closed or engine.wait_idle(timeout_s=60), f"not idle: {engine.waiting_on()}"
        elif kind == "close":
            run.closed = True
            assert engine.close(timeout_s=30), engine.waiting_on()
        else:
            submit(engine, run, request_for(step, models), step)


def check_outcomes(run: Run, models: Models) -> None:
    events = run.log.drain()
    counts = run.log.terminal_counts()
    assert all(counts.get(rid) == 1 for rid in run.accepted), counts
    assert not [e for e in events if e.request_id in run.refused], "a refused request got events"
    for event in events:
        if isinstance(event, Finished) and event.request_id in run.accepted:
            step = run.accepted[event.request_id]
            check_one(step, event, models)
            note(f"{step[0]} {step[1] if step[0] in ('image', 'switch') else ''} → {event.reason}")
    if run.refused:
        note("some submit refused as busy")


def note(text: str) -> None:
    """Count what ran (pytest --hypothesis-show-statistics); outside a hypothesis test it does nothing."""
    try:
        count_event(text)
    except Exception:
        pass


def check_one(step: tuple, finished: Finished, models: Models) -> None:
    kind, reason, error = step[0], finished.reason, finished.error or ""
    if reason == "error":
        assert "\n" not in error.strip() and error, f"{step}: error is not one line: {error!r}"
    if kind == "image" and step[1] != "good":
        assert reason != "stop" and reason != "length", f"{step}: a bad image reached an answer"
        if reason == "error" and "text-only" not in error and "No model" not in error:
            image = models.images[step[1]]
            assert image.name in error, f"{step}: the error does not name the file: {error}"
            if step[1].startswith("huge"):
                assert "too large" in error, error
    elif kind in ("chat", "long_prompt") and reason == "error":
        assert "No model is loaded" in error, f"{step}: unexpected failure: {error}"
    elif kind == "image" and reason == "error":
        assert "text-only" in error or "No model" in error, f"{step}: a good image failed: {error}"
    elif kind == "switch":
        assert reason != "error", f"{step}: a good model failed to load: {error}"
    elif kind == "bad_load":
        assert reason != "stop", f"{step}: a broken model loaded"


def check_sequence(models: Models, script: list[tuple], first_model: str = "text") -> Run:
    run = Run()
    with probe_mlx() as probe:
        engine = Engine(run.log).start()
        first = request_for(("switch", first_model), models)
        engine.submit(first)
        assert run.log.finished(first.request_id).reason == "stop"
        run.accepted[first.request_id] = ("switch", first_model)
        play(engine, run, script, models)
        if not run.closed:
            assert engine.wait_idle(timeout_s=60), f"not idle: {engine.waiting_on()}"
            assert engine.state().phase == "idle"
            assert engine.close(timeout_s=30)
    assert engine.owner_thread.is_alive(), "the owner thread must park, never return"
    assert probe.threads_seen <= {engine.owner_thread.ident}, f"MLX entered off the owner thread: {probe.thread_names}"
    assert probe.max_concurrent <= 1, "two threads were inside MLX at once"
    check_outcomes(run, models)
    return run


@pytest.fixture(scope="module")
def models(tiny_model, tiny_vlm, corrupt_model, bad_files) -> Models:
    return Models(text=tiny_model, vision=tiny_vlm, corrupt=corrupt_model, images=bad_files)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(first_model=st.sampled_from(MODELS), script=scripts)
def test_random_sequences_with_model_switches_and_bad_files(models, first_model, script):
    check_sequence(models, script, first_model)


def test_every_kind_of_step_once(models):
    """A fixed pass through every step kind, each run to its end, so every path runs whatever hypothesis draws."""
    steps = [("switch", "vision")] + [("image", kind, 4) for kind in IMAGES]
    steps += [("chat", 30), ("bad_load", "corrupt"), ("chat", 5), ("bad_load", "missing"), ("switch", "text")]
    steps += [("image", "good", 4), ("long_prompt", 200), ("unload",), ("chat", 3), ("switch", "vision")]
    script = [item for step in steps for item in (step, ("wait",))]
    script += [("chat", 100_000), ("pause", 0.05), ("cancel_then_submit",), ("wait",)]
    script += [("image", "good", 100_000), ("pause", 0.05), ("close",)]
    run = check_sequence(models, script)
    reasons = [(step, finished.reason, finished.error) for rid, step in run.accepted.items()
               for finished in [run.log.finished(rid, timeout_s=0)]]
    outcome = {(step[0], step[1] if len(step) > 1 else None): (reason, error) for step, reason, error in reasons}
    assert outcome[("image", "good")][0] in ("length", "shutdown")
    for kind in BAD_IMAGE_KINDS:
        reason, error = outcome[("image", kind)]
        assert reason == "error" and models.images[kind].name in error, (kind, reason, error)
    assert outcome[("bad_load", "corrupt")][0] == "error" and outcome[("bad_load", "missing")][0] == "error"
    assert run.refused, "the submit right after the cancel was refused while draining"


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(first_model=st.sampled_from(MODELS), script=st.lists(waited, min_size=5, max_size=40).map(
    lambda steps: [step for group in steps for step in group]))
def test_soak_long_random_sequences(models, first_model, script):
    check_sequence(models, script, first_model)
