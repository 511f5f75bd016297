"""A small file system mounted for one test: the only faithful "read-only data folder" when tests run as root
(`chmod` does not stop root). Import the fixture: `from mounts import mounted  # noqa: F401 (fixture)`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


class Mount:
    """A 2 MB tmpfs at `folder`, writable until `read_only()`. Skips the test where mounting is not allowed."""

    def __init__(self, folder: Path, registry: list[Path]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a file system here ({done.stderr.decode().strip() or 'no permission'})")
        registry.append(folder)
        self.folder = folder

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.folder)], check=True, capture_output=True)


@pytest.fixture
def mounted():
    """`mounted(folder) -> Mount`; every mount is undone after the test."""
    registry: list[Path] = []
    yield lambda folder: Mount(folder, registry)
    for folder in registry:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
