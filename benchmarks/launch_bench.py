"""Launch → first frame of two source trees, alternating launch by launch, in a pseudo-terminal.

    python benchmarks/launch_bench.py --rounds 12 before=/tmp/before after=.   [--bytecode as-is]

Each side is a folder holding an `mlxchat` package (put first on PYTHONPATH for that side's launches); each
launch is `python -m mlxchat` with empty config and data folders, timed from spawn to the bytes that complete the
welcome line (the UI benchmark's criterion, `ui_probes.launch_to_first_frame`), then killed. One untimed launch
per side comes first. `--bytecode cached` (the default) gives the launches a bytecode cache, as an installed
mlxchat has; `as-is` keeps the environment's setting (PYTHONDONTWRITEBYTECODE=1 compiles every module each time).
Prints each side's median, min, max and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from mlxchat.bench.pty_app import PtyApp, mlxchat_command
from mlxchat.bench.ui_probes import WELCOME_TEXT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sides", nargs=2, metavar="NAME=FOLDER", help="two source trees to compare")
    parser.add_argument("--rounds", type=int, default=10, help="timed launches per side")
    parser.add_argument("--bytecode", choices=("cached", "as-is"), default="cached")
    args = parser.parse_args()
    sides = dict(side.split("=", 1) for side in args.sides)
    times: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="mlxchat-launch-") as tmp:
        for round_index in range(-1, args.rounds):  # -1: the untimed launches
            order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
            for name in order:
                env = {
                    "PYTHONPATH": os.pathsep.join([str(Path(sides[name]).resolve()), os.environ.get("PYTHONPATH", "")]),
                    "MLXCHAT_CONFIG_DIR": f"{tmp}/config-{name}-{round_index}",
                    "MLXCHAT_DATA_DIR": f"{tmp}/data-{name}-{round_index}",
                }
                if args.bytecode == "cached":
                    env.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=f"{tmp}/bytecode")
                with PtyApp(mlxchat_command(), env=env, columns=100, rows=32, cwd=Path(tmp)) as app:
                    first_frame_s = app.wait_for(WELCOME_TEXT, 60) - app.started_at
                if round_index >= 0:
                    times[name].append(first_frame_s * 1000)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.0f} ms, min {min(values):.0f}, max {max(values):.0f}, "
              f"n={len(values)}: {' '.join(f'{v:.0f}' for v in values)}")
    first, second = times
    print(f"{second} ÷ {first} (medians): {statistics.median(times[second]) / statistics.median(times[first]):.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
