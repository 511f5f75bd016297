"""`python -m mlxchat.bench [--model M] [--json PATH] [--quick]`: run the engine benchmark, print a table."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .engine_bench import EngineBenchConfig, run
from .report import format_engine_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlxchat.bench", description=__doc__)
    parser.add_argument("--model", default=None, help="model folder, cached repo id or imported name (default: demo)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer tokens and trials (a smoke run)")
    args = parser.parse_args(argv)
    config = EngineBenchConfig(model=args.model)
    if args.quick:
        config = EngineBenchConfig(model=args.model, decode_tokens=32, decode_runs=1, turns=10, turn_tokens=8, cancel_trials=4)
    rc = 0
    try:
        result = run(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
        print(format_engine_table(result))
        if args.json:
            args.json.write_text(json.dumps({"model": result.model, "device": result.device, **result.numbers}, indent=2))
    except Exception as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # never run MLX teardown at interpreter exit after engine-thread generation (NOTES-MLX.md)


if __name__ == "__main__":
    main()
