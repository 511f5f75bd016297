"""Provides the UI benchmark: what the chat screen costs on top of the model, measured on the real app.

`run_ui_bench(model)` measures, in one process on one model (`None`: the bundled demo model):

- **Decode through the TUI ÷ raw mlx-lm**, on realistic text (`realistic.py`: paragraphs, a list, a table and a
  500-line code block, forced through the real model by `ForcedTokens`, so each token costs a full forward pass).
  Raw: `mlx_lm.stream_generate` on this thread with the same forcing processor, the same prompt tokens, the same
  token count. Each round runs raw then the TUI back to back, after one untimed round; the ratio is the median
  of the rounds' ratios (a shared machine's drift hits both sides of a round alike), with best ÷ best beside it.
  `--one-launch` also runs raw once more after the last answer and reports each TUI run against the mean of the
  raw runs just before and just after it (bracketed: a drift during the round cancels to first order, where raw
  before alone leaves it all on one side).
  TUI: a fresh headless app (`App.run_test`) per run on the real engine, in its own process as `mlxchat` runs it
  (`--engines process,thread` adds, in the same rounds, the app with its engine on an owner thread in the app's
  process: what the process buys; `--one-launch` puts every round's TUI answer in one app, each in a new
  conversation, so a round's raw run comes seconds before its TUI run, not a child start); the prompt is typed
  into the real prompt and sent with Enter; the answer streams into the real widgets. Speed is tokens over the
  time between the first and the last *rendered* text: a text counts as rendered at the first frame composed
  after `Markdown.append` has put it into the block widgets (`frames.SettledText`), the frame serialised to
  escape sequences (`frames.FrameRecorder`). tok/s = (tokens − tokens already shown in the first frame) ÷
  (last frame − first frame), the definition raw and engine speeds use. Target ≥ 0.95.
- **Launch → first painted frame.** The real `mlxchat --model M` in a pseudo-terminal of a fixed size
  (`pty_app.PtyApp`), from spawn to the arrival of the bytes that complete the first frame's text (the welcome
  line), with the alternate-screen switch and "model ready" times beside it. Then Ctrl+Q; the exit code is kept.
  Target < 1 s.
- **Keypress → repaint while an answer streams.** While the realistic answer streams, `ui_probes.KeyProbe` sends a
  letter through the driver's `send_message(Key)`, the path a terminal's input takes, without waiting for the
  app to settle (as `Pilot.press` does); latency runs from the send to the first composed frame, serialised to
  escape sequences, that writes the prompt's rows with the whole typed line (and the prompt holds it). The next
  key follows 30–150 ms (random) after the last was painted, so presses do not lock onto the screen's update
  timer; they run through one whole answer, so they land in every part of the 500-line code block; presses made
  while a fence is open are reported apart, by the lines it held. The stream is paced to each of `key_rates`
  tok/s (`realistic.paced`) where the model is faster. Target p99 < 50 ms.
- **An image turn** on a tiny random VLM through the UI: `/attach`, then a question; Enter → last text rendered,
  with the engine's TTFT and decode tok/s.
- **Peak memory** against the model's size: MLX's peak while a long answer streams (reset after the raw copy of
  the model is released), and the process's peak RSS (Python, Textual, both copies of the model: everything).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from .realistic import REALISTIC_ANSWER
from .stats import median
from .ui_probes import (
    RawMlxLm,
    UIBenchConfig,
    image_turn,
    keypress_latencies,
    launch_to_first_frame,
    photo,
    STREAM_VARIANTS,
    rate_label,
    stream_variant,
    tui_decode_once,
    tui_decode_rounds,
    engine_kind,
    layout_echo,
    typing_first,
)

__all__ = ["UIBenchConfig", "format_ui_table", "main", "run_ui_bench"]


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_ui_bench(
    model: str | None, config: UIBenchConfig | None = None, progress=print, checkpoint=lambda numbers: None
) -> dict[str, Any]:
    """Measure the UI on `model` (None: the demo model). Returns the numbers (see the module docstring);
    `checkpoint(numbers)` is called after each measurement, so a run cut short still leaves what it measured."""
    import mlx.core as mx

    from mlxchat.engine.local import loader

    config = config or UIBenchConfig()
    label = model or "demo model"
    ref = loader.resolve(model, lambda step, fraction: None)
    numbers: dict[str, Any] = {"model": ref.name, "device": str(mx.default_device()), "decode_tokens": config.decode_tokens}
    with tempfile.TemporaryDirectory(prefix="mlxchat-ui-bench-") as tmp:
        folder = Path(tmp)
        # Rounds of raw then TUI, back to back, after one untimed round: a shared machine's drift hits both sides
        # of each round's ratio alike. The raw copy of the model is released before memory is measured.
        raw = RawMlxLm(str(ref.path), config.answer)
        raws, runs_by_engine = [], {kind: [] for kind in config.engines}
        if config.one_launch:
            # Every round in one app: each raw run just before its TUI answer, in a new conversation.
            (kind,) = config.engines

            def raw_round(round_index: int):
                def run() -> float:
                    what = "warm-up round" if round_index == 0 else f"round {round_index}/{config.runs}"
                    progress(f"raw mlx-lm, then the TUI ({kind}, one launch), on {label}: {what} …")
                    return raw.decode_tps(config.decode_tokens)

                return run

            done: list[tuple[float, dict[str, Any]]] = []

            def round_done(raw_tps: float, run: dict[str, Any]) -> None:
                done.append((raw_tps, run))
                progress(f"  raw {raw_tps:.1f} tok/s · TUI {run['rendered_tps']:.1f} (its engine {run['engine_tps']:.1f})")
                timed = done[1:]
                checkpoint({**numbers, "raw_decode_tps_runs": [r for r, _ in timed], "tui_rendered_tps_runs": [
                    t["rendered_tps"] for _, t in timed], "tui_engine_tps_runs": [t["engine_tps"] for _, t in timed]})

            closing_raw: list[float] = []

            def close_last_bracket() -> None:
                progress("raw mlx-lm once more, after the last TUI answer …")
                closing_raw.append(raw.decode_tps(config.decode_tokens))

            with engine_kind(kind):
                rounds = asyncio.run(
                    tui_decode_rounds(
                        model, config, [raw_round(i) for i in range(config.runs + 1)], round_done, close_last_bracket
                    )
                )
            raws = [raw_tps for raw_tps, _ in rounds[1:]]
            runs_by_engine[kind] = [run for _, run in rounds[1:]]
            # Each TUI answer between the raw run before it (its round's) and the one after it (the next round's,
            # or the closing run): the mean of the two is raw at the TUI run's time, to first order in the drift.
            afters = raws[1:] + closing_raw
            rendered_runs = [run["rendered_tps"] for run in runs_by_engine[kind]]
            numbers["raw_after_last_tps"] = closing_raw[0]
            numbers["tui_over_raw_bracketed_runs"] = [
                t / ((before + after) / 2) for t, before, after in zip(rendered_runs, raws, afters)
            ]
            numbers["tui_over_raw_bracketed"] = median(numbers["tui_over_raw_bracketed_runs"])
        for round_index in range(0 if config.one_launch else config.runs + 1):
            what = "warm-up round" if round_index == 0 else f"round {round_index}/{config.runs}"
            progress(f"raw mlx-lm, then the TUI ({', '.join(config.engines)}), on {label}: {what} …")
            raw_tps = raw.decode_tps(config.decode_tokens)
            for kind, kind_runs in runs_by_engine.items():
                with engine_kind(kind):
                    run = asyncio.run(tui_decode_once(model, config))
                if round_index:
                    kind_runs.append(run)
            if round_index:
                raws.append(raw_tps)
        raw.release()
        runs = runs_by_engine[config.engines[0]]
        numbers["engine"] = config.engines[0]
        for kind, kind_runs in list(runs_by_engine.items())[1:]:  # beside the reported kind, same rounds
            kind_rendered = [run["rendered_tps"] for run in kind_runs]
            numbers[f"{kind}_tui_rendered_tps_runs"] = kind_rendered
            numbers[f"{kind}_tui_over_raw"] = median([t / r for t, r in zip(kind_rendered, raws) if r])
            numbers[f"{kind}_ui_busy_fraction"] = median([run["ui_busy_fraction"] for run in kind_runs])
        rendered = [run["rendered_tps"] for run in runs]
        numbers["tui_runs"] = runs
        best = max(runs, key=lambda run: run["rendered_tps"])
        numbers.update(
            raw_decode_tps=max(raws),
            raw_decode_tps_runs=raws,
            tui_rendered_tps=best["rendered_tps"],
            tui_rendered_tps_runs=rendered,
            tui_events_tps=best["events_tps"],
            tui_engine_tps=best["engine_tps"],
            tui_over_raw=median([t / r for t, r in zip(rendered, raws) if r]),
            tui_over_raw_best=max(rendered) / max(raws) if max(raws) else float("nan"),
            tui_engine_tps_runs=[run["engine_tps"] for run in runs],
            tui_over_engine=median([run["rendered_tps"] / run["engine_tps"] for run in runs if run["engine_tps"]]),
            tui_tokens=best["tokens"],
            tui_frames=best["frames"],
            tui_frame_serialise_ms_p50=best["serialise_ms_p50"],
            tui_text_events=best["text_events"],
            ui_busy_fraction=median([run["ui_busy_fraction"] for run in runs]),
            ui_cpu_ms_per_frame=median([run["ui_cpu_ms_per_frame"] for run in runs]),
            ui_cpu_ms_per_text_event=median([run["ui_cpu_ms_per_text_event"] for run in runs]),
            tui_missing_chars=max(run["missing_chars"] for run in runs),
            tui_text_matches=all(run["shown_text_matches"] for run in runs),
            model_size_bytes=best["model_size_bytes"],
        )
        checkpoint(numbers)
        import mlx.core as mx

        mx.reset_peak_memory()  # MLX's peak is process-wide: from here on it is the app's alone
        numbers["key_rates"] = [rate_label(rate) for rate in config.key_rates]
        for rate in config.key_rates:
            progress(f"keypress → repaint while streaming at {rate_label(rate)} …")
            try:
                keys = asyncio.run(keypress_latencies(model, config, rate))
            except Exception as exc:  # one rate's failure must not lose the others' numbers
                progress(f"keypress probe at {rate_label(rate)} failed: {exc.__class__.__name__}: {exc}")
                numbers[f"key_{rate_label(rate)}_error"] = f"{exc.__class__.__name__}: {exc}"
                continue
            keys["mlx_peak_memory_bytes"] = max(keys["mlx_peak_memory_bytes"], numbers.get("mlx_peak_memory_bytes", 0))
            numbers.update(keys)
            checkpoint(numbers)
        if config.launch_trials:
            progress("launch → first frame (pty) …")
            numbers.update(launch_to_first_frame(model, config.launch_trials, config.size, folder))
            checkpoint(numbers)
        if config.image_turn:
            progress("image turn on a vision model …")
            vision = config.vision_model
            if vision is None:
                from mlxchat.models.random_vision import build_tiny_vlm

                vision = str(build_tiny_vlm(folder / "tiny-vlm"))
            numbers.update(asyncio.run(image_turn(vision, config, photo(folder))))
            numbers["vision_model"] = Path(vision).name
    numbers["process_peak_rss_bytes"] = _peak_rss_bytes()
    return numbers


# ---- the table --------------------------------------------------------------------------------------------------


def _row(name: str, value: str, target: str = "", ok: bool | None = None) -> str:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    return f"{name:<40} {value:>16}   {target:<14} {verdict}"


def format_ui_table(n: dict[str, Any]) -> str:
    mib = 2**20
    switching = "default switch interval" if n.get("switch_interval_ms") is None else f"switch interval {n['switch_interval_ms']:g} ms"
    lines = [f"UI benchmark · model {n['model']} · device {n['device']} · {n.get('stream_variant', 'code-stream')} · {switching}", "", _row("measure", "value", "target"), "-" * 80]
    lines.append(_row("raw mlx-lm decode (best)", f"{n['raw_decode_tps']:.1f} tok/s"))
    lines.append(_row("  raw runs (each just before a TUI run)", " / ".join(f"{v:.1f}" for v in n["raw_decode_tps_runs"])))
    lines.append(_row(f"TUI decode, rendered (best; engine: {n.get('engine', 'thread')})", f"{n['tui_rendered_tps']:.1f} tok/s"))
    lines.append(_row("  TUI runs", " / ".join(f"{v:.1f}" for v in n["tui_rendered_tps_runs"])))
    lines.append(_row("  engine's own / events as emitted", f"{n['tui_engine_tps']:.1f} / {n['tui_events_tps']:.1f}"))
    if "tui_over_engine" in n:  # what the screen costs the decode, apart from where the engine decodes
        lines.append(_row("  TUI rendered ÷ its engine's own (median)", f"{n['tui_over_engine']:.3f}"))
    ratio = n["tui_over_raw"]
    lines.append(_row("TUI rendered ÷ raw (median of rounds)", f"{ratio:.3f}", "≥ 0.95", ratio >= 0.95))
    if "tui_over_raw_bracketed" in n:  # --one-launch: each TUI run against raw before and after it
        bracketed = n["tui_over_raw_bracketed"]
        lines.append(_row("TUI ÷ mean(raw before, raw after) (median)", f"{bracketed:.3f}", "≥ 0.95", bracketed >= 0.95))
        lines.append(_row("  per round", " / ".join(f"{v:.2f}" for v in n["tui_over_raw_bracketed_runs"])))
    lines.append(_row("  best TUI ÷ best raw", f"{n['tui_over_raw_best']:.3f}"))
    lines.append(_row("  tokens · frames · serialise p50", f"{n['tui_tokens']} · {n['tui_frames']} · {n['tui_frame_serialise_ms_p50']:.1f} ms"))
    lines.append(_row("  UI thread busy (CPU ÷ wall, median)", f"{n['ui_busy_fraction'] * 100:.0f} %"))
    lines.append(_row("  UI CPU per frame · per text event", f"{n['ui_cpu_ms_per_frame']:.2f} · {n['ui_cpu_ms_per_text_event']:.2f} ms", f"{n['tui_text_events']} events"))
    for kind in ("process", "thread"):
        if f"{kind}_tui_over_raw" in n:  # the same rounds with the engine elsewhere
            runs = " / ".join(f"{v:.1f}" for v in n[f"{kind}_tui_rendered_tps_runs"])
            lines.append(_row(f"  engine on a {kind}: TUI ÷ raw · runs", f"{n[f'{kind}_tui_over_raw']:.3f}", runs))
            lines.append(_row(f"  engine on a {kind}: UI thread busy", f"{n[f'{kind}_ui_busy_fraction'] * 100:.0f} %"))
    lines.append(_row("  answer on screen = engine's text", "yes" if n["tui_text_matches"] else f"NO ({n['tui_missing_chars']} chars missing)", "yes", n["tui_text_matches"]))
    if "launch_first_frame_s" in n:
        first = n["launch_first_frame_s"]
        lines.append(_row("launch → first painted frame (median)", f"{first * 1000:.0f} ms", "< 1000 ms", first < 1.0))
        lines.append(_row("  slowest launch · alt screen", f"{n['launch_first_frame_max_s'] * 1000:.0f} · {n['launch_alt_screen_s'] * 1000:.0f} ms"))
        lines.append(_row("  launch → model loaded", f"{n['launch_model_ready_s']:.2f} s"))
        lines.append(_row("  exit codes after Ctrl+Q", " ".join(map(str, n["launch_exit_codes"])), "0", all(c == 0 for c in n["launch_exit_codes"])))
    for label in n.get("key_rates", []):
        k = f"key_{label}"
        if f"{k}_error" in n:
            lines.append(_row(f"keypress → repaint at {label}", "FAILED", n[f"{k}_error"][:60], False))
            continue
        p99 = n[f"{k}_p99_ms"]
        lines.append(_row(f"keypress → repaint at {label} (decode {n[f'{k}_decode_tps']:.0f} tok/s)", f"p50 {n[f'{k}_p50_ms']:.1f} ms"))
        lines.append(_row(f"  p99 (n={n[f'{k}_probes']}, missed {n[f'{k}_missed']})", f"{p99:.1f} ms", "< 50 ms", p99 < 50 and not n[f"{k}_missed"]))
        code_p99 = n[f"{k}_code_p99_ms"]
        lines.append(_row(f"  in the code block p50 · p99 (n={n[f'{k}_code_probes']})", f"{n[f'{k}_code_p50_ms']:.1f} · {code_p99:.1f} ms", "< 50 ms", code_p99 < 50))
        for name in ("0-49", "50-199", "200+"):
            lines.append(_row(f"    fence at {name} lines (n={n[f'{k}_code_{name}_probes']})", f"{n[f'{k}_code_{name}_p50_ms']:.1f} · {n[f'{k}_code_{name}_p99_ms']:.1f} ms"))
        for latency_ms, where in n.get(f"{k}_slowest", []):
            lines.append(_row(f"    slow press: {where}", f"{latency_ms:.1f} ms"))
    if "image_turn_s" in n:
        lines.append(_row("image turn (Enter → answer drawn)", f"{n['image_turn_s'] * 1000:.0f} ms", f"{n['vision_model']}"))
        lines.append(_row("  image TTFT · decode", f"{n['image_ttft_s'] * 1000:.0f} ms · {n['image_decode_tps']:.1f} tok/s"))
        lines.append(_row("  prompt tokens · answer tokens", f"{n['image_prompt_tokens']} · {n['image_tokens']}", n["image_finish"]))
    if "mlx_peak_memory_bytes" in n:  # measured while the keypress probes stream
        lines.append(_row("MLX peak memory", f"{n['mlx_peak_memory_bytes'] / mib:.1f} MiB", f"model {n['model_size_bytes'] / mib:.1f} MiB"))
    lines.append(_row("process peak RSS (everything)", f"{n['process_peak_rss_bytes'] / mib:.0f} MiB"))
    return "\n".join(lines)


def set_app_policies(default_collector: bool, default_switch_interval: bool, switch_interval_ms: float | None) -> dict[str, Any]:
    """Set the app's process-wide policies for the apps this benchmark runs (off: what each buys; the switch
    interval: to compare values). Returns what the numbers record about them."""
    from mlxchat.ui.collector import CollectorPolicy
    from mlxchat.ui.switching import SwitchIntervalPolicy

    CollectorPolicy.enabled = not default_collector
    SwitchIntervalPolicy.enabled = not default_switch_interval
    if switch_interval_ms is not None:
        SwitchIntervalPolicy.interval_s = switch_interval_ms / 1000
    return {
        "collector_policy": CollectorPolicy.enabled,
        "switch_interval_ms": SwitchIntervalPolicy.interval_s * 1000 if SwitchIntervalPolicy.enabled else None,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m mlxchat.bench.ui_bench [--model M | --tiny] [--tokens N] [--json PATH]`."""
    import argparse
    import importlib
    import json
    import os

    parser = argparse.ArgumentParser(prog="python -m mlxchat.bench.ui_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder, cached repo id or imported name (default: demo)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random-weight llama instead (built in a temp folder)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per decode run (default: the whole realistic answer)")
    parser.add_argument("--free", action="store_true", help="let the model choose its answer instead of the realistic text")
    parser.add_argument("--rates", default="own", help="keypress probe rates in tok/s, comma-separated ('own': the model's speed)")
    parser.add_argument("--key-tokens", type=int, default=1_000_000, help="tokens of the answer the keypress probe streams")
    parser.add_argument("--launches", type=int, default=3, help="launch → first frame trials (0: skip)")
    parser.add_argument("--variant", choices=STREAM_VARIANTS, default="code-stream", help="how answers are streamed (what each change bought)")
    parser.add_argument("--no-image", action="store_true", help="skip the image turn")
    parser.add_argument("--default-collector", action="store_true", help="leave the app's garbage-collector policy off (what it buys)")
    parser.add_argument("--default-switch-interval", action="store_true", help="leave the app's switch-interval policy off (what it buys)")
    parser.add_argument("--switch-interval-ms", type=float, default=None, help="the app's switch interval while it runs (default: the policy's)")
    parser.add_argument("--engines", default="process", help="where the app's engine runs, comma-separated: process (as shipped), thread (in the app's process)")
    parser.add_argument("--runs", type=int, default=3, help="TUI decode runs, each between two raw runs")
    parser.add_argument("--layout-echo", action="store_true", help="the answer's widgets with Textual's own virtual_size: a pass that resizes them asks for another (what laid_out_virtual_size bought)")
    parser.add_argument("--no-give-way", action="store_true", help="stream updates never wait for a typed key's frame (what typing first buys)")
    parser.add_argument("--one-launch", action="store_true", help="every round's TUI answer in one app launch, each in a new conversation (one engine kind)")
    parser.add_argument("--probes", type=int, default=20, help="keypresses timed while an answer streams")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.one_launch and len([kind for kind in args.engines.split(",") if kind]) != 1:
        parser.error("--one-launch measures one engine kind: give --engines process or --engines thread")
    rc = 0
    policies = {"stream_variant": args.variant, "layout_echo": args.layout_echo, "give_way": not args.no_give_way, **set_app_policies(args.default_collector, args.default_switch_interval, args.switch_interval_ms)}
    try:
        with tempfile.TemporaryDirectory(prefix="mlxchat-tiny-") as tmp:
            model = args.model
            if args.tiny:
                from .realistic import build_bench_model, cpu_spec

                model = str(build_bench_model(Path(tmp) / "tiny-llama", cpu_spec()))
            tokens = args.tokens or (100_000 if not args.free else 600 if args.tiny else 48)
            rates = tuple(None if rate == "own" else float(rate) for rate in args.rates.split(",") if rate not in ("", "none"))
            config = UIBenchConfig(
                decode_tokens=tokens,
                runs=args.runs,
                key_probes=args.probes,
                answer=None if args.free else REALISTIC_ANSWER,
                key_rates=rates,
                launch_trials=args.launches,
                key_max_tokens=args.key_tokens,
                image_turn=not args.no_image,
                engines=tuple(kind for kind in args.engines.split(",") if kind),
                one_launch=args.one_launch,
            )
            def checkpoint(numbers: dict[str, Any]) -> None:
                if args.json:
                    args.json.write_text(json.dumps({**numbers, **policies}, indent=2, default=str))

            for name in ("mlxchat.ui.app", "mlxchat.ui.widgets.message"):  # the widget classes `layout_echo` finds
                importlib.import_module(name)

            with stream_variant(args.variant), layout_echo(args.layout_echo), typing_first(not args.no_give_way):
                numbers = run_ui_bench(
                    model, config, progress=lambda line: print(line, file=sys.stderr, flush=True), checkpoint=checkpoint
                )
            numbers.update(policies)
        print(format_ui_table(numbers))
        if args.json:
            args.json.write_text(json.dumps(numbers, indent=2, default=str))
    except Exception as exc:
        print(f"UI benchmark failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # no MLX teardown at interpreter exit after engine-thread generation (NOTES-MLX.md)


if __name__ == "__main__":
    main()
