"""The text batcher: the first text goes out at once, later text at most once per interval, held text goes out when
the producer goes quiet for an interval, nothing is lost."""

from __future__ import annotations

from mlxchat.engine.batching import TextBatcher


def test_the_first_text_is_handed_on_at_once_and_later_text_waits_for_the_interval():
    flushed: list[tuple[str, int]] = []
    batcher = TextBatcher(lambda text, tokens: flushed.append((text, tokens)), interval_s=60)
    batcher.add("", 1)  # half a character: counted, nothing to show yet
    assert flushed == []
    batcher.add("Hel")
    assert flushed == [("Hel", 2)]
    batcher.add("lo")
    batcher.add(" world")
    assert flushed == [("Hel", 2)]
    batcher.flush()
    assert flushed == [("Hel", 2), ("lo world", 2)]


def test_with_no_interval_every_piece_goes_out_alone():
    flushed: list[tuple[str, int]] = []
    batcher = TextBatcher(lambda text, tokens: flushed.append((text, tokens)), interval_s=0)
    for piece in ("a", "b", "c"):
        batcher.add(piece)
    assert flushed == [("a", 1), ("b", 1), ("c", 1)]


class FakeClock:
    """`time` for the batcher: the interval passes when the test says so, with no sleep."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def test_flush_if_due_hands_on_held_text_once_the_interval_has_passed(monkeypatch):
    from mlxchat.engine import batching

    clock = FakeClock()
    monkeypatch.setattr(batching, "time", clock)
    flushed: list[tuple[str, int]] = []
    batcher = TextBatcher(lambda text, tokens: flushed.append((text, tokens)), interval_s=0.03)
    batcher.add("Once")
    batcher.add(" upon")  # within the interval: held
    batcher.flush_if_due()
    assert flushed == [("Once", 1)]
    clock.now += 0.03
    batcher.flush_if_due()  # the producer found nothing new for an interval: the held text goes out
    assert flushed == [("Once", 1), (" upon", 1)]
    clock.now += 1
    batcher.flush_if_due()  # nothing held: nothing sent
    assert flushed == [("Once", 1), (" upon", 1)]


def test_decode_flushes_held_text_at_a_quiet_step_and_counts_no_token(monkeypatch):
    """A producer that goes silent (a server) says QUIET; text held in the batch goes out then, not at the end."""
    from mlxchat.engine import batching
    from mlxchat.engine.control import RequestControl
    from mlxchat.engine.events import TextDelta
    from mlxchat.engine.requests import ChatRequest, Message
    from mlxchat.engine.streaming import QUIET, TurnClock, decode

    clock = FakeClock()
    monkeypatch.setattr(batching, "time", clock)
    emitted: list = []
    said_during_silence: list[str] = []

    def steps():
        yield "Once", 0
        yield " upon", 0
        clock.now += 0.03
        yield "", QUIET
        said_during_silence.append("".join(e.text for e in emitted if isinstance(e, TextDelta)))
        yield " a time", 0

    request = ChatRequest((Message("user", "story"),))
    turn = TurnClock(0.0, 0, 0, 0)
    decoded = decode(
        steps(),
        request=request,
        control=RequestControl(request.request_id, "chat", "generating"),
        clock=turn,
        emit=emitted.append,
        eos_token_ids=(),
        stop_at_max_tokens=False,
    )
    assert said_during_silence == ["Once upon"]
    assert decoded.text == "".join(e.text for e in emitted if isinstance(e, TextDelta)) == "Once upon a time"
    assert turn.generated == 3 and len(decoded.tokens) == 3


def test_no_answer_delta_goes_out_before_the_thinking_it_follows_is_closed(monkeypatch):
    """Thinking a server sends apart (THOUGHT steps), then the answer after a pause of a batch interval: the first
    answer step's token count must not go out (as an empty TextDelta, which ends the thinking block for `ask`)
    before the held thinking text and `ThinkingDone`; nor at the end, when the answer's first piece was held as
    the possible start of a marker."""
    from mlxchat.engine import batching
    from mlxchat.engine.events import TextDelta, ThinkingDelta, ThinkingDone
    from mlxchat.engine.streaming import THOUGHT

    clock = FakeClock()
    monkeypatch.setattr(batching, "time", clock)
    emitted: list = []

    def answered():
        yield "The user asks ", THOUGHT
        yield "about France.", THOUGHT  # held: within the interval of the first thinking flush
        clock.now += 0.03
        yield "Paris", 0
        yield " it is.", 0

    def ended_on_a_held_marker_start():  # the answer's first "<" may start a marker: held until the end
        yield "The user asks ", THOUGHT
        yield "about France.", THOUGHT
        clock.now += 0.03
        yield "<", 0

    for steps, answer in ((answered, "Paris it is."), (ended_on_a_held_marker_start, "<")):
        emitted.clear()
        run_decode(steps, emitted)
        kinds = [type(e).__name__ for e in emitted if isinstance(e, (TextDelta, ThinkingDelta, ThinkingDone))]
        done = kinds.index("ThinkingDone")
        assert set(kinds[:done]) == {"ThinkingDelta"} and set(kinds[done + 1 :]) == {"TextDelta"}, (steps, kinds)
        thought = "".join(e.text for e in emitted if isinstance(e, ThinkingDelta))
        said = "".join(e.text for e in emitted if isinstance(e, TextDelta))
        assert (thought, said) == ("The user asks about France.", answer)


def run_decode(steps, emitted: list) -> None:
    """Decode `steps()` as a remote thinking model's stream is decoded, emitting into `emitted`."""
    from mlxchat.engine.control import RequestControl
    from mlxchat.engine.requests import ChatRequest, Message
    from mlxchat.engine.streaming import TurnClock, decode
    from mlxchat.engine.thinking import TAGGED_THINKING, ThinkingSplitter

    request = ChatRequest((Message("user", "Capital?"),))
    decode(
        steps(),
        request=request,
        control=RequestControl(request.request_id, "chat", "generating"),
        clock=TurnClock(0.0, 0, 0, 0),
        emit=emitted.append,
        eos_token_ids=(),
        stop_at_max_tokens=False,
        thinking=ThinkingSplitter(TAGGED_THINKING, trim_start=False),
    )
