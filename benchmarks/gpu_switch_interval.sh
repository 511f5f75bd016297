#!/usr/bin/env bash
# budget: 240 s. Run on the H200 on 2026-12-01 (round 5, BENCHMARKS.md): 0.5 ms 0.908, off 0.734, 0.2 ms 0.697.
# Issue 11: the app's switch-interval policy (mlxchat/ui/switching.py) on at 0.5 ms vs off (Python's 5 ms), then 0.2 ms
# only if >= 80 s are left; then benchmarks/switch_interval.py (mlx-lm's generate_step on the GPU beside a Python busy
# thread, no Textual) in what is left. Each ui_bench run: 1B TUI ÷ raw (2 rounds, 1500 tokens) and keypress → repaint
# at 300 tok/s (roughly 70–100 s on the H200). Run from the repo root on the GPU machine with PYTHONPATH as in
# benchmarks/gpu.sh and /tmp/m/1b built (python3 -m mlxchat.bench.realistic /tmp/m/1b --shape 1b); $OUT/gil/ gets
# gil-switch.json (every run's numbers) and switch-micro.json. GIL_MODEL, GIL_TOKENS, GIL_KEY_TOKENS, GIL_EXTRA
# (e.g. --tiny, to try it on a CPU) override the defaults.
set -uo pipefail
out=${OUT:-/tmp/out}/gil
mkdir -p "$out" /tmp/gil
MODEL=${GIL_MODEL:-/tmp/m/1b}
EXTRA=${GIL_EXTRA:-}
start=$SECONDS
run() {  # name, seconds, ui_bench switch options...
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date +%T), limit ${limit}s) ==="
  timeout "$limit" python3 -m mlxchat.bench.ui_bench --model "$MODEL" --runs 2 --tokens ${GIL_TOKENS:-1500} --rates 300 \
    --key-tokens ${GIL_KEY_TOKENS:-2500} --launches 0 --no-image $EXTRA --json /tmp/gil/$name.json "$@" 2>&1
}
run on-0.5ms 110 --switch-interval-ms 0.5
run off 110 --default-switch-interval
left=$((235 - (SECONDS - start)))
if [ "$left" -ge 80 ]; then run on-0.2ms $((left - 30)) --switch-interval-ms 0.2; else echo "skipped 0.2 ms ui_bench: ${left}s left"; fi
python3 - "$out/gil-switch.json" /tmp/gil/*.json <<'PY'
import json, sys
merged = {p.rsplit("/", 1)[1][:-5]: json.load(open(p)) for p in sys.argv[2:]}
for name, n in merged.items():
    n.pop("tui_runs", None)
    print(name, "ratio", round(n.get("tui_over_raw", float("nan")), 3), "ui busy", n.get("ui_busy_fraction"),
          "key p50/p99", n.get("key_300tps_p50_ms"), n.get("key_300tps_p99_ms"), "switch ms", n.get("switch_interval_ms"))
json.dump(merged, open(sys.argv[1], "w"), indent=1)
PY
left=$((235 - (SECONDS - start)))
if [ "$left" -ge 25 ]; then  # mlx-lm's generate_step on the GPU beside a 7 ms-burst, 30 %-duty Python thread
  echo "=== micro ($(date +%T), limit ${left}s) ==="
  timeout "$left" python3 benchmarks/switch_interval.py --owner mlx --model "$MODEL" --steps 400 --rounds 2 \
    --intervals 5,1,0.5,0.2 --json "$out/switch-micro.json" 2>&1
else echo "skipped the micro-benchmark: ${left}s left"; fi
echo "total $((SECONDS - start)) s"
