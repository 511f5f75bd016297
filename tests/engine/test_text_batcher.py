"""The text batcher: the first text goes out at once, later text at most once per interval, nothing is lost."""

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
