"""Random submit / cancel / close sequences at random moments against the real engine (hypothesis).

Invariants, whatever the sequence: no crash; exactly one `Finished` per accepted request and none for a refused
one; never two threads inside MLX, and none but the owner; the engine is idle (or closed) at the end.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxchat.engine import Busy, ChatRequest, Engine, EngineClosed, LoadModel, Message, SamplingParams
from events import EventLog
from mlx_probe import probe_mlx

actions = st.lists(
    st.one_of(
        st.tuples(st.just("chat"), st.integers(1, 400), st.integers(1, 60)),
        st.tuples(st.just("long_prompt"), st.integers(50, 300)),
        st.just(("cancel",)),
        st.just(("cancel_other",)),
        st.tuples(st.just("pause"), st.floats(0, 0.05)),
        st.just(("reload",)),
        st.just(("close",)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=actions)
def test_random_sequences_keep_the_contract(tiny_model, script):
    log = EventLog()
    accepted: list[str] = []
    refused: list[str] = []
    with probe_mlx() as probe:
        engine = Engine(log).start()
        load = LoadModel(str(tiny_model))
        engine.submit(load)
        log.finished(load.request_id)
        closed = False
        for action in script:
            kind = action[0]
            request = None
            if kind == "chat":
                _, max_tokens, words = action
                request = ChatRequest(
                    (Message("user", "hello " * words),),
                    sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens),
                )
            elif kind == "long_prompt":
                request = ChatRequest((Message("user", "The cat sat on the mat. " * action[1]),))
            elif kind == "reload":
                request = LoadModel(str(tiny_model))
            elif kind == "cancel":
                engine.cancel()
            elif kind == "cancel_other":
                assert engine.cancel("chat-unknown") is False
            elif kind == "pause":
                time.sleep(action[1])
            elif kind == "close":
                assert engine.close(timeout_s=30)
                closed = True
            if request is not None:
                try:
                    answer = engine.submit(request)
                except EngineClosed:
                    assert closed
                    continue
                if isinstance(answer, Busy):
                    refused.append(request.request_id)
                    assert answer.active_request_id in accepted
                else:
                    accepted.append(request.request_id)
        if not closed:
            assert engine.wait_idle(timeout_s=60)
            assert engine.state().phase == "idle"
            engine.close(timeout_s=30)
    counts = log.terminal_counts()
    assert all(counts.get(rid) == 1 for rid in accepted), counts
    assert not any(rid in counts for rid in refused)
    assert not [e for e in log.events if e.request_id in refused]
    assert probe.threads_seen <= {engine.owner_thread.ident}, probe.thread_names
    assert probe.max_concurrent <= 1
