"""Provides the benchmark's printed table: each number beside its target and whether it meets it."""

from __future__ import annotations

from .engine_bench import EngineBenchResult


def _row(name: str, value: str, target: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    return f"{name:<38} {value:>14}   {target:<18} {verdict}"


def format_engine_table(result: EngineBenchResult) -> str:
    n = result.numbers
    lines = [f"engine benchmark · model {result.model} · device {result.device}", ""]
    lines.append(_row("measure", "value", "target", None))
    lines.append("-" * 80)
    lines.append(_row("raw mlx-lm decode (median)", f"{n['raw_decode_tps']:.1f} tok/s", f"{n['decode_rounds']} rounds", None))
    lines.append(_row("engine decode (median)", f"{n['engine_decode_tps']:.1f} tok/s", "", None))
    lines.append(_row("engine ÷ raw (median of rounds)", f"{n['engine_over_raw']:.3f}", "≥ 0.98", n["engine_over_raw"] >= 0.98))
    lines.append(_row("consumer-side decode ÷ raw", f"{n['consumer_over_raw']:.3f}", "(events as seen)", None))
    for label, key in (("TTFT with prompt cache", "ttft_cached_s"), ("TTFT without prompt cache", "ttft_uncached_s")):
        for turn, seconds in n[key].items():
            lines.append(_row(f"{label}, {turn.replace('_', ' ')}", f"{seconds * 1000:.0f} ms", "", None))
    ratio = n["ttft_turn10_over_turn1_cached"]
    lines.append(_row("TTFT turn 10 ÷ turn 1 (cached)", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5))
    lines.append(_row("TTFT turn 10 ÷ turn 1 (uncached)", f"{n['ttft_turn10_over_turn1_uncached']:.2f}×", "", None))
    target = n["cancel_decode_target_s"]
    lines.append(_row("cancel → finished, decode p50", f"{n['cancel_decode_p50_s'] * 1000:.1f} ms", f"≤ {target * 1000:.1f} ms", n["cancel_decode_p50_s"] <= target))
    lines.append(_row("cancel → finished, decode p99", f"{n['cancel_decode_p99_s'] * 1000:.1f} ms", f"≤ {target * 1000:.1f} ms", n["cancel_decode_p99_s"] <= target))
    chunk = n["prefill_chunk_s"]
    lines.append(_row("prefill chunk in flight (median)", f"{chunk * 1000:.0f} ms", "", None))
    lines.append(_row("cancel → finished, prefill p50", f"{n['cancel_prefill_p50_s'] * 1000:.0f} ms", "≤ one chunk", None))
    lines.append(_row("cancel → finished, prefill p99", f"{n['cancel_prefill_p99_s'] * 1000:.0f} ms", "≤ one chunk", None))
    within = n["cancel_prefill_within_chunk"]
    lines.append(_row("prefill cancels within their chunk", f"{within:.0%}", "100%", within == 1.0))
    lines.append(_row("peak memory", f"{n['peak_memory_bytes'] / 2**20:.0f} MiB", f"model {n['model_size_bytes'] / 2**20:.0f} MiB", None))
    return "\n".join(lines)
