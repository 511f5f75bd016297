"""What an answer's end costs the UI thread in restyling (issue 11, round 9).

`ui_stalls.py` on the H200 found one 62.5 ms callback at the end of a realistic answer, in Textual's
`Stylesheet.update_nodes`: a class changed on the answer's `MessageView` (`-streaming` → `-complete`), and Textual
restyles a node with every node inside it (a descendant selector may depend on the class). This times that change
on a mounted view holding the realistic answer (paragraphs, a list, a table, the 500-line code block), median of
`--rounds`, from the status change to the end of the restyle it causes.

    python benchmarks/status_restyle.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll

from mlxchat.bench.realistic import REALISTIC_ANSWER
from mlxchat.ui.chat_model import Turn
from mlxchat.ui.widgets.message import MessageView


class Probe(App):
    CSS_PATH = "../mlxchat/ui/app.tcss"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield MessageView(Turn("assistant", REALISTIC_ANSWER, status="streaming"), label="assistant")


async def measure(rounds: int) -> list[float]:
    app = Probe()
    times = []
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause(0.5)
        view = app.query_one(MessageView)
        print(f"widgets in the answer's view: {len(list(view.walk_children()))}")
        for i in range(rounds * 2):
            started = time.perf_counter()
            view.status = "complete" if i % 2 == 0 else "streaming"  # Textual restyles at once, in the class change
            took = time.perf_counter() - started
            if i % 2 == 0:
                times.append(took)
            await pilot.pause()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    times = asyncio.run(measure(args.rounds))
    print(f"streaming → complete: median {statistics.median(times) * 1000:.1f} ms, "
          f"min {min(times) * 1000:.1f} ms (n {len(times)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
