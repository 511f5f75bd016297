"""Draw the SVG screenshots in `screenshots/`: the main states of the chat screen.

Run from the repository root:  .venv/bin/python scripts/screenshots.py [--out screenshots] [--size 110x34]

The states are the staged scenes the snapshot tests use (`tests/staged.py`): real engine event types with
fixed numbers, so the pictures are the same on every machine and rerunning the script changes nothing unless
the UI changed. No model is loaded and MLX is never imported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted engine is test code

import staged  # noqa: E402 (needs the path above)

from mlxchat.ui.app import make_app  # noqa: E402

SCENES = [
    ("01-loading", staged.loading_scene, {}),
    ("02-ready", staged.loaded_scene, {}),
    ("03-streaming", staged.streaming_scene, {}),
    ("04-draining", staged.draining_scene, {}),
    ("05-stopped", staged.stopped_scene, {}),
    ("06-busy", staged.busy_scene, {}),
    ("07-answer", staged.answered_scene, {}),
    ("08-attachments", staged.attachments_scene, {}),
    ("09-help", staged.help_scene, {}),
    ("13-conversations", "conversations", {}),
    ("14-settings", "settings", {}),
    ("15-reading-elsewhere", staged.reading_elsewhere_scene, {}),
    ("10-theme-paper", staged.answered_scene, {"theme": "mlxchat-paper"}),
    ("11-theme-phosphor", staged.answered_scene, {"theme": "mlxchat-phosphor"}),
    ("12-theme-ember", staged.answered_scene, {"theme": "mlxchat-ember"}),
]


async def draw(name: str, scene, options: dict, out: Path, size: tuple[int, int], images: list[Path]) -> Path:
    holder = {}
    clock = [100.0]

    def engine_factory(sink):
        holder["engine"] = staged.StagedEngine(sink)
        return holder["engine"]

    history = None
    if scene == "conversations":
        history = example_history(images[0].parent / "history")
        options = {**options, "history": history}
    elif scene is staged.reading_elsewhere_scene:  # the status names the answering conversation by its title
        from mlxchat.store import History

        history = History(images[0].parent / f"history-{name}")
        options = {**options, "history": history}
    app = make_app(engine_factory=engine_factory, animate=False, clock=lambda: clock[0], **options)
    app.test_clock = clock
    async with app.run_test(size=size) as pilot:
        if scene == "conversations":
            await staged.loaded_scene(pilot, holder["engine"])
            await pilot.press("f2")
            await staged.until(pilot, lambda: len(getattr(app.screen, "summaries", [])) == 3, what="the list")
        elif scene == "settings":
            await staged.loaded_scene(pilot, holder["engine"])
            await pilot.press("f3")
        else:
            args = (images,) if scene is staged.attachments_scene else ()
            await scene(pilot, holder["engine"], *args)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        target = out / f"{name}.svg"
        target.write_text(app.export_screenshot(title=f"mlxchat — {name[3:]}"), encoding="utf-8")
    if history is not None:
        history.close()
    return target


def example_history(folder: Path):
    """The shared three-conversation history, listed with a fixed date so the picture never changes."""
    from mlxchat.ui.screens import conversations

    conversations.when_label = lambda moment: "2024-05-01 14:03"
    return staged.example_history(folder)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "screenshots")
    parser.add_argument("--size", default="110x34", help="terminal size, COLUMNSxROWS")
    args = parser.parse_args()
    columns, rows = (int(n) for n in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        images = staged.sample_images(Path(folder))
        for name, scene, options in SCENES:
            path = await draw(name, scene, options, args.out, (columns, rows), images)
            print(path)


if __name__ == "__main__":
    asyncio.run(main())
