"""A FIFO, a socket or a device named like an image is never opened for reading: attaching `fifo.png` used to
block until something wrote to the pipe (a frozen chat). The engine's own image reader refuses them the same way."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from mlxchat.engine.errors import RequestError
from mlxchat.engine.vision_inputs import load_image
from mlxchat.ui.attachment_files import AttachmentError, open_attachment


def within_seconds(call, seconds: float = 10.0):
    """Run `call` on a daemon thread; fail (instead of hanging the suite) if it has not returned in time."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:  # the refusal we expect
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked on a special file"
    return outcome


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo.png"
    os.mkfifo(path)
    return path


def test_attaching_a_fifo_is_refused_at_once(fifo):
    outcome = within_seconds(lambda: open_attachment(fifo))
    assert isinstance(outcome.get("error"), AttachmentError)
    assert str(outcome["error"]) == "Cannot attach fifo.png: it is a named pipe (FIFO), not an image file."


def test_the_engine_refuses_a_fifo_at_once(fifo):
    outcome = within_seconds(lambda: load_image(fifo))
    assert isinstance(outcome.get("error"), RequestError)
    assert "is a named pipe (FIFO), not an image file" in str(outcome["error"])


def test_a_socket_and_a_device_are_refused(tmp_path):
    path = tmp_path / "sock.png"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        # A socket cannot be opened with open() at all; the refusal must still be the plain sentence.
        outcome = within_seconds(lambda: open_attachment(path))
    assert str(outcome["error"]) == "Cannot attach sock.png: it is a socket, not an image file."
    device = within_seconds(lambda: open_attachment("/dev/zero"))
    assert str(device["error"]) == "Cannot attach zero: it is a device, not an image file."
