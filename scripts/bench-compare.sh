#!/usr/bin/env bash
# fgssl against PyTorch on one device in one run: `fgssl bench` and scripts/bench_torch.py's three flavours
# (reference-like, eager channels_last, torch.compile) on the same sizes, then one table with the ratios
# ("speed" = PyTorch ms / fgssl ms: above 1 means fgssl is faster).
#
#   bash scripts/bench-compare.sh [--device cuda|cpu] [--arch A] [--size S] [--batch B] [--grids g1,g2,g3]
#                                 [--iters N] [--warmup N] [--what ssl|finetune|both] [--flavours f1,f2,..]
#                                 [--precision fp32|bf16] [--peak-tflops X] [--threads N] [--out DIR] [--table-only]
#
# --precision (default fp32) goes to both sides: `fgssl bench --precision P` and bench_torch.py --precision P
# (fp32 = no autocast, bf16 = bf16 autocast), so the table compares like with like. The utilisation divides by
# --peak-tflops whatever the precision (give the bf16 peak).
#
# GPU machine (no cargo there; the binary is built here, as for scripts/gpu-check.sh):
#   cargo build --release && mkdir -p target/gpu-check && strip -o target/gpu-check/fgssl target/release/fgssl
#   run: FGSSL_BIN=target/gpu-check/fgssl bash scripts/bench-compare.sh --device cuda --arch resnet50 --size 224 \
#          --batch 128 --grids 16,8,4 --iters 10 --peak-tflops 790 --precision bf16        carry: ["target/gpu-check/fgssl"]
#   Budget: fgssl's warm-up compiles its kernels (NVRTC, cached after the first run); torch.compile's warm-up
#   compiles 8 graphs (minutes on a cold cache): drop it with --flavours reference,eager_cl when time is short.
# CPU: bash scripts/bench-compare.sh --device cpu --arch resnet18 --size 64 --batch 16    (PYTHON=/work/torchenv/bin/python)
#
# Environment: FGSSL_BIN (default target/release/fgssl), PYTHON (default python3, with torch + torchvision),
# FGSSL_NVRTC_DIR / CUDA_INCLUDE_DIRS (found as scripts/gpu-check.sh does when unset), TIMEOUT (seconds per
# program, default 110: the whole run stays under 4 minutes; bench_torch.py keeps the flavours it finished). Both sides use the same thread count on the CPU (--threads, default all cores).
# Results: DIR/fgssl.json, DIR/torch.json and the table (DIR/table.md); DIR defaults to target/bench-compare.
# --table-only prints the table of DIR's existing results without running anything. "cpu ms" is the CPU time of
# the process (all its threads; not PyTorch's DataLoader workers): on a shared machine it is what the work costs,
# where the clock also counts the waits for a core.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${FGSSL_BIN:-target/release/fgssl}
PY=${PYTHON:-python3}
LIMIT=${TIMEOUT:-110}
device=cuda arch=resnet18 size=64 batch=16 grids=8,4,2 iters=5 warmup=1 what=both flavours=reference,eager_cl,compile
peak="" precision=fp32 threads=$(nproc) out=target/bench-compare table_only=0
while [ $# -gt 0 ]; do
    case $1 in
        --device) device=$2 ;;
        --arch) arch=$2 ;;
        --size) size=$2 ;;
        --batch) batch=$2 ;;
        --grids) grids=$2 ;;
        --iters) iters=$2 ;;
        --warmup) warmup=$2 ;;
        --what) what=$2 ;;
        --flavours) flavours=$2 ;;
        --peak-tflops) peak=$2 ;;
        --precision) precision=$2 ;;
        --threads) threads=$2 ;;
        --out) out=$2 ;;
        --table-only) table_only=1; shift; continue ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "bench-compare: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift 2
done
case $precision in
    fp32 | bf16) ;;
    *) echo "bench-compare: --precision $precision: expected fp32 or bf16" >&2; exit 2 ;;
esac
mkdir -p "$out"
if [ "$table_only" = 0 ]; then
[ -x "$BIN" ] || { echo "bench-compare: no fgssl binary at $BIN (cargo build --release, or set FGSSL_BIN)" >&2; exit 2; }

# NVRTC, as scripts/gpu-check.sh finds it: a folder with libnvrtc.so.13 and libnvrtc-builtins.so.13.0.
if [ "$device" = cuda ] && [ -z "${FGSSL_NVRTC_DIR:-}" ]; then
    for d in $(ls -d .venv-cuda/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | sort -r) /usr/local/cuda/lib64 \
        /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu $("$PY" -c 'import nvidia.cu13 as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null); do
        if [ -f "$d/libnvrtc.so.13" ] && [ -f "$d/libnvrtc-builtins.so.13.0" ]; then
            export FGSSL_NVRTC_DIR=$(cd "$d" && pwd)
            break
        fi
    done
    if [ -n "${FGSSL_NVRTC_DIR:-}" ] && [ -z "${CUDA_INCLUDE_DIRS:-}" ]; then
        for inc in "$FGSSL_NVRTC_DIR/../include" /usr/local/cuda/include; do
            [ -f "$inc/cuda_fp16.h" ] && { export CUDA_INCLUDE_DIRS=$(cd "$inc" && pwd); break; }
        done
    fi
fi

echo "# bench-compare $(date -u +%Y-%m-%dT%H:%M:%SZ): $device, $arch ${size}x$size, batch $batch, grids $grids, $precision, $warmup warm-up + $iters iterations"
[ "$device" = cuda ] && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null
[ "$device" = cpu ] && echo "# cpu: $(nproc) cores, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

peak_args=()
[ -n "$peak" ] && peak_args=(--peak-tflops "$peak")
echo "==== fgssl bench"
RAYON_NUM_THREADS=$threads timeout --kill-after=5 "$LIMIT" "$BIN" bench --device "$device" --arch "$arch" --size "$size" \
    --batch-size "$batch" --grids "$grids" --iters "$iters" --warmup "$warmup" --what "$what" --precision "$precision" "${peak_args[@]}" --json "$out/fgssl.json"
echo "fgssl bench: exit $?"
echo "==== PyTorch ($PY)"
timeout --kill-after=5 "$LIMIT" "$PY" scripts/bench_torch.py --device "$device" --arch "$arch" --size "$size" --batch "$batch" \
    --grids "$grids" --iters "$iters" --warmup "$warmup" --what "$what" --precision "$precision" --flavours "$flavours" --threads "$threads" --json "$out/torch.json"
echo "bench_torch.py: exit $?"
fi

echo "==== table"
"$PY" - "$out" <<'PY' | tee "$out/table.md"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError) as e:
        return {"error": f"{name}: {e}"}
fg, th = load("fgssl.json"), load("torch.json")
print(f"fgssl: {fg.get('device', fg.get('error'))}; PyTorch {th.get('torch', '?')} on {th.get('device', th.get('error'))}, amp {th.get('config', {}).get('amp', '?')}")
print()
print("| iteration | implementation | bn stats | layout / views | ms per iteration, median (min-max) | images/s | fgssl speed | cpu ms, median | fgssl cpu speed |")
print("|---|---|---|---|---|---|---|---|---|")
cpu = lambda r: r.get("cpu_ms", {}).get("median") if r.get("cpu_ms") else None  # noqa: E731
for kind in ("ssl", "finetune"):
    f = fg.get(kind)
    if f:
        c = fg["config"]
        mfu = f" ({100 * f['mfu']:.2f}% MFU)" if f.get("mfu") is not None else ""
        fc = f"{cpu(f):.0f}" if cpu(f) else "n/a"
        print(f"| {kind} | fgssl ({c['precision']}) | {c['bn_stats']} | {c['layout']} / device | {f['ms']['median']:.1f} ({f['ms']['min']:.1f}-{f['ms']['max']:.1f}) "
              f"| {f['images_per_s']:.1f}{mfu} | 1.00x | {fc} | 1.00x |")
    for t in th.get("flavours", []):
        if "error" in t:
            print(f"| {kind} | torch {t['flavour']} | | | failed: {t['error'][:80]} | | |")
            continue
        r = t.get(kind)
        if not r:
            continue
        speed = f"{r['ms']['median'] / f['ms']['median']:.2f}x" if f else "n/a"
        extra = f"; compile {r['compile_s']:.0f} s" if "compile_s" in r else ""
        tc = f"{cpu(r):.0f}" if cpu(r) else "n/a"
        cspeed = f"{cpu(r) / cpu(f):.2f}x" if f and cpu(r) and cpu(f) else "n/a"
        print(f"| {kind} | torch {t['flavour']} ({t['amp']}) | {t['bn_stats']} | {t['layout']} / {t['augment']} | {r['ms']['median']:.1f} "
              f"({r['ms']['min']:.1f}-{r['ms']['max']:.1f}){extra} | {r['images_per_s']:.1f} | {speed} | {tc} | {cspeed} |")
for kind in ("ssl", "finetune"):
    f = fg.get(kind)
    if f:
        order = ("upload", "augment", "forward", "backward", "monitor", "optimizer")
        ph = ", ".join(f"{k} {f['phases_ms_mean'][k]:.1f}" for k in order if k in f["phases_ms_mean"])
        print(f"\nfgssl {kind} phases (mean ms): {ph}; model {f['model_gflop_per_iteration']:.1f} GFLOP/iteration, {f['achieved_tflops']:.3f} TFLOP/s")
PY
