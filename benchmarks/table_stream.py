"""What a streaming table costs the UI thread (issue 11, round 9): the realistic answer's table section streamed
into an `AnswerMarkdown` 12 characters at a time, a frame after each write, UI-thread CPU summed, 5 runs.

`--textual-table` measures Textual's own table (the last row's cells removed and mounted again at every update)
instead of `AnswerTable` (the last row updated in place while it keeps its cells).

    python benchmarks/table_stream.py [--textual-table]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownTable

from mlxchat.bench.realistic import REALISTIC_ANSWER
from mlxchat.ui.widgets.code_stream import AnswerMarkdown, AnswerStream, CodeStream

TEXT = REALISTIC_ANSWER[REALISTIC_ANSWER.index("## How the lookups") : REALISTIC_ANSWER.index("Prices are stored")]


class TableApp(App):
    CSS_PATH = str(Path(__file__).resolve().parents[1] / "mlxchat" / "ui" / "app.tcss")

    def __init__(self, markdown_class) -> None:
        super().__init__()
        self.markdown_class = markdown_class

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield self.markdown_class()
            yield CodeStream()


async def one_run(markdown_class) -> tuple[float, float]:
    app = TableApp(markdown_class)
    async with app.run_test(size=(100, 32)) as pilot:
        stream = AnswerStream(app.query_one(Markdown), app.query_one(CodeStream), frame_interval_s=0)
        await pilot.pause()
        total, worst = 0.0, 0.0
        for start in range(0, len(TEXT), 12):
            started = time.thread_time()
            await stream.write(TEXT[start : start + 12])
            await pilot.pause()
            took = time.thread_time() - started
            total, worst = total + took, max(worst, took)
        await stream.stop()
    return total, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--textual-table", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    markdown_class = AnswerMarkdown
    if args.textual_table:
        markdown_class = type("TextualTables", (AnswerMarkdown,), {"BLOCKS": {**AnswerMarkdown.BLOCKS, "table_open": MarkdownTable}})
    runs = [asyncio.run(one_run(markdown_class)) for _ in range(args.runs)]
    label = "Textual's table" if args.textual_table else "AnswerTable"
    print(f"{label}: UI CPU streaming the table section, median {statistics.median(r[0] for r in runs) * 1000:.0f} ms; "
          f"slowest write + frame, median {statistics.median(r[1] for r in runs) * 1000:.1f} ms ({args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
