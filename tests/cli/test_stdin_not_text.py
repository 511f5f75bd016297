"""`mlxchat ask -` with bytes that are not text on stdin: one line that says so and names the encoding expected
(it used to end in `TypeError: TextEncodeInput must be …` from deep inside the tokenizer)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import assert_one_line_error


def ask_with_stdin(data: bytes, tmp_path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "mlxchat", "ask", "-", "--endpoint", "http://127.0.0.1:9/v1"],
        input=data, capture_output=True, timeout=60,
        env={**os.environ, "MLXCHAT_CONFIG_DIR": str(tmp_path), "LC_ALL": "C", "PYTHONIOENCODING": ""},
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"caf\xe9 au lait", "byte 0xe9 at offset 3 is not valid UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "byte 0x89 at offset 0 is not valid UTF-8"),
        (b"text\x00with a NUL", "a NUL byte at offset 4"),
    ],
)
def test_bytes_that_are_not_text_on_stdin_are_named_with_the_encoding_expected(data, needle, tmp_path):
    assert_one_line_error(ask_with_stdin(data, tmp_path), "stdin is not text", needle, "expects UTF-8 text")


def test_utf8_text_with_a_byte_order_mark_is_read(tmp_path):
    result = ask_with_stdin("\ufeffcafé".encode(), tmp_path)  # gets past stdin, to the (absent) server
    assert "stdin" not in result.stderr and "Cannot connect to http://127.0.0.1:9/v1" in result.stderr
