#!/usr/bin/env bash
# The convolution kernel lab on the GPU machine: `fgssl lab conv` (validation + timings of every kernel version on
# every ResNet-50 conv shape at 224 and the FG-SSL head convs, batch 128), then cuDNN through PyTorch on the same
# shapes (scripts/conv_lab_torch.py), then one table per shape and pass with the ratio fgssl / cuDNN (TFLOP/s of each
# fgssl version divided by cuDNN's; > 1 means faster than cuDNN). The binary is built on the CPU machine as for
# scripts/gpu-check.sh (FGSSL_BIN, default target/release/fgssl); NVRTC is found by scripts/nvrtc-env.sh.
#   FGSSL_BIN=target/gpu-check/fgssl bash scripts/conv-lab.sh [extra `fgssl lab conv` arguments, e.g. --batch 64]
# Output files in ${LAB_OUT:-target/conv-lab}: fgssl.json, torch.json. Exit status: the lab's (1 when a validation
# failed, 3 without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${FGSSL_BIN:-target/release/fgssl}
OUT=${LAB_OUT:-target/conv-lab}
mkdir -p "$OUT"
. scripts/nvrtc-env.sh
echo "==== conv lab $(date -u +%Y-%m-%dT%H:%M:%SZ); FGSSL_NVRTC_DIR=${FGSSL_NVRTC_DIR:-<loader path>}"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader

timeout --kill-after=5 240 "$BIN" lab conv --json "$OUT/fgssl.json" "$@"
rc=$?
if [ ! -f "$OUT/fgssl.json" ]; then
    echo "no $OUT/fgssl.json (lab exit $rc): nothing to compare"
    exit $rc
fi
PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "PyTorch with CUDA not available: no cuDNN comparison"
    exit $rc
fi
timeout --kill-after=5 180 "$PY" scripts/conv_lab_torch.py --from "$OUT/fgssl.json" --json "$OUT/torch.json" || echo "cuDNN timing failed"
[ -f "$OUT/torch.json" ] && "$PY" - "$OUT/fgssl.json" "$OUT/torch.json" <<'PYEOF'
import json, sys
lab, tor = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cudnn = {(r["shape"], r["step"]): r for r in tor["rows"]}
print(f"\n==== fgssl vs cuDNN ({lab['device']}; batch {lab['batch']}; measured bf16 peak {lab['peak_tflops']:.0f} TFLOP/s)")
print(f"{'shape':<44} {'step':<12} {'version':<12} {'fgssl TF/s':>10} {'cuDNN TF/s':>10} {'ratio':>6}  check")
for r in lab["rows"]:
    # fp32 "dgrad+wgrad" is compared with cuDNN's dgrad + wgrad time
    parts = r["step"].split("+")
    ref = [cudnn.get((r["shape"], p)) for p in parts]
    if any(x is None for x in ref):
        continue
    ref_tflops = r["gflop"] / sum(x["ms_median"] for x in ref)
    print(f"{r['shape']:<44} {r['step']:<12} {r['version']:<12} {r['tflops']:>10.1f} {ref_tflops:>10.1f} {r['tflops'] / ref_tflops:>6.2f}  {'PASS' if r['check_pass'] else 'FAIL'}")
PYEOF
exit $rc
