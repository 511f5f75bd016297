"""The prefill chunk size follows the device's measured rate, but not a size's first chunk, which on MLX's CUDA
build includes compiling that shape's kernels."""

from __future__ import annotations

from mlxchat.engine.local.generation import PrefillChunker


def test_a_slow_first_chunk_of_a_size_does_not_shrink_the_chunks():
    chunker = PrefillChunker(size=512)
    chunker.learn(512, 5.0)  # kernels compiled for this shape: 100 tok/s would mean chunks of 8
    assert chunker.size == 512
    chunker.learn(512, 0.012)  # the size's real rate: ~43k tok/s, so the largest chunk fits 0.15 s
    assert chunker.size == 2048


def test_a_size_that_stays_slow_is_shrunk_on_its_second_chunk():
    chunker = PrefillChunker(size=32)
    chunker.learn(32, 3.5)
    chunker.learn(32, 3.5)  # ~9 tok/s, a busy CPU: a chunk of 8 keeps a cancel within about a second
    assert chunker.size == 8
