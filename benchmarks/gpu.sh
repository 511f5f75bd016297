#!/usr/bin/env bash
# The TUI's speed on the lent GPU machine (MLX's CUDA build): realistic text forced through random-weight models
# of 1B and 8B shape, TUI ÷ raw mlx-lm, keypress → repaint at 100 and 300 tok/s, launch → first frame.
# Prepare here first:  ../shared/tools/mlx-cuda-wheels.sh .gpu   and pure-Python wheels in .whl/ (BENCHMARKS.md).
# Then two device calls back to back (the machine stays warm ~30 s):
#   (1) carry .gpu/a: `mkdir -p /tmp/w && cp .gpu/a/* /tmp/w/`
#   (2) carry .gpu/b and .whl: `bash benchmarks/gpu.sh`
# Every step has its own time limit, so what finished comes back even when a later step runs long.
# ENGINE_BENCH=1 also runs the engine benchmark; EIGHT_B=0 skips the 8B-shaped model; VISION=1 runs the image
# follow-up probe (issue 15); SWITCH=1 compares the switch-interval policy on and off (benchmarks/gpu_switch_interval.sh,
# 240 s); FRAMES=1 runs the status pane's frame-clock A/B (benchmarks/frame_clock.py, ~100 s); KV=1 times the
# quantized-KV attention on CUDA (benchmarks/kv_attention_probe.py, ~25 s).
# Round 5 (1 Dec) ran, each within one 600 s call: `BEFORE=0 UI_1B_S=290 EIGHT_B=0 LONG_S=180 KV=1` (500 s), then
# `BEFORE=0 UI_1B_S=0 UI_8B_S=130 LONG_S=0 SWITCH=1` (346 s). Still to run, after round 5's frame and repaint changes
# (after the wheels' call and /tmp/m/1b built): `UI_1B_S=290 EIGHT_B=1 BEFORE=0 LONG_S=0` (the ratios again), then
# `timeout 150 python3 benchmarks/answer_frames.py --model /tmp/m/1b --variants before,after,single-layout --rounds 2`,
# `timeout 100 python3 benchmarks/ui_profile.py --model /tmp/m/1b --tokens 1500`,
# `timeout 200 python3 benchmarks/prefill_shapes.py --shape 1b` (each new row count compiles ~10-15 s), FRAMES=1.
# Round 6 (2 Dec, no device time) added, still to run: `timeout 150 python3 benchmarks/first_token.py --model /tmp/m/1b
# --history 2400 --new 55 --rounds 15` (the shared tail's pass, on CUDA only), then `LONG_S=180` with
# `--sections resume` (the resume ratio with it), `timeout 120 python3 benchmarks/thinking_frames.py --tps 300`.
# Round 7 (2 Dec 03:20-03:36) ran all of the above but the frame clock (its bench was broken, fixed in d2571a9) and
# the 300 tok/s keypress probe (the 290 s limit ended during it): BENCHMARKS.md has the figures.
# Round 8 (2 Dec 06:35-07:02) measured the engine in its own process against it on a thread in the same rounds
# (`ui_bench --engines process,thread --runs 5 --tokens 1500 --rates none --launches 0`, 200 s; the 8B shape with
# `--tokens 800 --runs 3`, 240 s), `benchmarks/contention_probe.py --model /tmp/m/1b --tokens 1000 --rounds 3` (80 s),
# and the keypress probes at 100 and 300 tok/s with the process (`--runs 1 --tokens 1000 --rates 100`, 90 s each).
# Still to run: more rounds of the same (the host's raw mlx-lm swings 254-435 tok/s), `answer_frames.py` and
# `ui_profile.py` with the process engine, FRAMES=1, and the resume figure (`LONG_S=180 --sections resume`).
# Round 9 (2 Dec 09:28-10:13) ran `benchmarks/engine_gap_probe.py --model /tmp/m/1b --tokens 1500 --rounds 2 --kinds
# process,process-cold,thread` (one round finished in 270 s: each child start takes 14-18 s there), the same on the 8B
# with `--tokens 600 --rounds 3 --kinds process,process-cold` (230 s), `ui_bench --engines process --runs 4 --tokens
# 1500 --rates none --launches 0` (140 s), `LONG_S=170 --sections resume` (65 s), the 8B `ui_bench --engines process
# --runs 3 --tokens 800` (125 s), and the keypress probes paced at last (`--runs 1 --tokens 1000 --rates 100,300
# --key-tokens 2500`, 245 s) with `benchmarks/ui_stalls.py --rate 300 --tokens 2500` (40 s). Still to run: the
# keypress probes after the status-restyle change (c2b59f8); `ui_stalls.py` on a fresh machine needs more than
# 140 s (its first answer compiles the kernels): run it after another bench.
# Round 10 (2 Dec 12:11-12:17 and 12:29-12:43) ran the keypress probes (`--runs 1 --tokens 1000 --rates 100,300
# --key-tokens 2500`, 245 s; then `--key-tokens 5400`, the whole 500-line fence, 223 s with the resume section),
# `ui_stalls.py --rate 300 --tokens 2500`, `long_bench --sections resume --resume-rounds 7` (the cold side's first two
# rounds are slow: 3 rounds are too few), the 1B ratio (`--runs 3 --tokens 1500`, 112 s) and the 8B's (`--runs 4
# --tokens 800`, 151 s; `--runs 3` 190 s with the model's build). A 1B run with `--runs 4 --launches 3` needs more
# than 250 s. Still to run: the launch probe on the H200 (`--runs 1 --launches 3`), more 8B rounds.
# Round 11 (2 Dec 15:16-15:34, 16:13-16:22) ran `ui_bench --one-launch` (new: every round's TUI answer in one app;
# 1B `--runs 10 --tokens 1500`, 153 s; 8B `--runs 12 --tokens 400`, 117 s: `--runs 10 --tokens 800` needed more than
# 220 s), the launch probe (`--runs 1 --tokens 200 --launches 3`, 106 s), the keypress probe at 300 tok/s over the
# whole fence (`--runs 1 --tokens 1000 --rates 300 --key-tokens 5400`, 117 s) and `long_bench --model /tmp/m/8b
# --sections resume --resume-rounds 5` (143 s). Still to run: the keypress A/B of the layout change, `--layout-echo`
# against none, alternating; give each run 150 s (three runs with 105 s each ran out in their keypress probes).
# Round 12 (2 Dec, evening) added KEY_AB (that A/B, in the order given) and the bracketed ratio of `--one-launch` (each TUI
# run against the mean of the raw runs before and after it). Round 13 (3 Dec) added KEY_RATE: the same probe at 100 tok/s
# over the whole fence (`KEY_AB="none none none" KEY_RATE=100 KEY_AB_S=170`); it ran that (383 s; the first run, a fresh
# machine's, ran out in its probe), `KEY_AB="none none none" KEY_AB_S=165` (290 s), and by hand the launch probe
# (`--runs 1 --tokens 200 --rates none --launches 3`) and the 8B `--one-launch --runs 12 --tokens 400` (171 s together).
# Round 14 (3 Dec) added the warm-up before the keypress probes (KEY_WARM=0 leaves it out) and ran, in window A,
# `KEY_AB=none KEY_RATE=100 KEY_AB_S=170` and `KEY_AB="none none" KEY_RATE=300 KEY_AB_S=120`, and by hand the 8B
# `--one-launch --runs 12 --tokens 400` twice (200 s ran out in round 11; 290 s is enough on a warm machine); in a
# fresh window B the same 300 tok/s pair twice and the 8B once more. Still to run: the typing-first A/B, measured
# on the CPU only: `KEY_AB="none nogive nogive none none nogive" KEY_AB_S=120`.
# The 1B bench's launch probe
# needs more than UI_1B_S=290 leaves it. Wheels: not huggingface_hub 2.x (it needs httpx2, absent there); the
# machine's huggingface_hub serves. gpu.sh writes more than the 8 files that come back: tar $OUT.
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/w
if [ ! -d /tmp/site/mlx ]; then  # a second call on the same warm machine reuses the install and the models
  cat /tmp/w/cuda.part.aa .gpu/b/cuda.part.ab > /tmp/w/"$(cat .gpu/b/wheel-name)" && cp .gpu/b/*.whl .whl/*.whl /tmp/w/
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/w/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MLXCHAT_CACHE_DIR=/tmp/mlxchat-cache MLXCHAT_DATA_DIR=/tmp/mlxchat-data
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import mlx.core as mx; print('mlx', mx.__version__, mx.default_device())"
  [ -f /tmp/m/1b/config.json ] || timeout 120 python3 -m mlxchat.bench.realistic /tmp/m/1b --shape 1b
} 2>&1 | tee "$out/gpu.txt"
[ "${UI_1B_S:-290}" = 0 ] || timeout ${UI_1B_S:-290} python3 -m mlxchat.bench.ui_bench --model /tmp/m/1b --rates ${RATES_1B:-100,300} --launches 3 \
  --no-image --json "$out/gpu-ui-1b.json" 2>&1 | tee "$out/gpu-ui-1b.txt"
if [ "${EIGHT_B:-1}" = 1 ]; then
  [ -f /tmp/m/8b/config.json ] || timeout 100 python3 -m mlxchat.bench.realistic /tmp/m/8b --shape 8b 2>&1 | tee -a "$out/gpu.txt"
  timeout ${UI_8B_S:-130} python3 -m mlxchat.bench.ui_bench --model /tmp/m/8b --tokens ${TOKENS_8B:-800} --rates ${RATES_8B:-none} \
    --key-tokens ${KEY_TOKENS_8B:-2500} --launches 0 --no-image --json "$out/gpu-ui-8b.json" 2>&1 | tee "$out/gpu-ui-8b.txt"
fi
if [ "${BEFORE:-1}" = 1 ]; then  # the same app with Textual's MarkdownStream, as before issue 11: what the change bought
  timeout ${BEFORE_S:-80} python3 -m mlxchat.bench.ui_bench --model /tmp/m/1b --variant markdown-stream --runs 1 --tokens 3000 \
    --rates 300 --key-tokens 3500 --launches 0 --no-image --json "$out/gpu-ui-1b-before.json" 2>&1 | tee -a "$out/gpu.txt"
fi
if [ "${LONG_S:-60}" != 0 ]; then
  timeout ${LONG_S:-60} python3 -m mlxchat.bench.long_bench --model /tmp/m/1b --json "$out/gpu-long-bench.json" 2>&1 \
    | tee "$out/gpu-long-bench.txt"
fi
if [ "${ENGINE_BENCH:-0}" = 1 ]; then
  python3 -m mlxchat.bench --model /tmp/m/1b --json "$out/gpu-engine-bench.json" 2>&1 | tee "$out/gpu-engine-bench.txt"
fi
if [ "${VISION:-0}" = 1 ]; then  # issue 15: the image follow-up at SmolVLM-256M's shape, one follow-up profiled, and
  # chats alternating with MLX's buffer cache freed after each turn (as the engine and mlx-vlm do) and kept
  timeout ${VISION_S:-60} python3 -m mlxchat.bench.long_bench --sections image --vision-shape smolvlm-256m \
    --image-rounds 2 --image-clear-cache-rounds 4 --image-profile "$out/gpu-image-profile.txt" \
    --json "$out/gpu-image.json" 2>&1 | tee "$out/gpu-image.txt"
fi
if [ "${KV:-0}" = 1 ]; then  # issue 15: does the dequantizing attention run on CUDA, and what each variant costs
  timeout ${KV_S:-40} python3 benchmarks/kv_attention_probe.py "$out/gpu-kv-probe.json" --attention-only --without-folded \
    --decode-keys 16384 --repeats 10 2>&1 | tee "$out/gpu-kv-probe.txt"
fi
if [ "${SWITCH:-0}" = 1 ]; then  # issue 11: the switch-interval policy, on at 0.5 ms / off / 0.2 ms
  OUT="$out" timeout 270 bash benchmarks/gpu_switch_interval.sh 2>&1 | tee "$out/gpu-switch.txt"
fi
if [ -n "${KEY_AB:-}" ]; then  # issue 11: keypress → repaint over the whole fence at KEY_RATE tok/s (300), Textual's
  # virtual_size (echo) against laid_out_virtual_size (none), in the order given, e.g. KEY_AB="none echo none echo";
  # nogive: stream updates that never wait for a typed key's frame (`ui_bench --no-give-way`)
  # A fresh machine compiles its kernels during its first app, which ran one probe in eight past 50 ms (round 13):
  # one short unmeasured answer first, unless KEY_WARM=0.
  [ "${KEY_WARM:-1}" = 0 ] || timeout 120 python3 -m mlxchat.bench.ui_bench --model /tmp/m/1b --runs 1 --tokens 300 \
    --one-launch --rates none --launches 0 --no-image > "$out/gpu-key-warm.txt" 2>&1
  i=0
  for variant in $KEY_AB; do
    i=$((i + 1)); flag=; [ "$variant" = echo ] && flag=--layout-echo; [ "$variant" = nogive ] && flag=--no-give-way
    timeout ${KEY_AB_S:-160} python3 -m mlxchat.bench.ui_bench --model /tmp/m/1b --runs 1 --tokens 300 --one-launch \
      --rates ${KEY_RATE:-300} --key-tokens 5400 --launches 0 --no-image $flag --json "$out/gpu-key-$i-$variant.json" \
      > "$out/gpu-key-$i-$variant.txt" 2>&1
    grep -E "keypress|p99|fence at" "$out/gpu-key-$i-$variant.txt" | sed "s/^/$i $variant ${KEY_RATE:-300}: /"
  done
fi
if [ "${FRAMES:-0}" = 1 ]; then  # issue 11: the status pane's frame clock, before / after
  timeout 115 python3 benchmarks/frame_clock.py --model /tmp/m/1b --variants before,after --rounds 2 --tokens 2000 \
    --json "$out/gpu-frame-clock.json" 2>&1 | tee "$out/gpu-frame-clock.txt"
fi
