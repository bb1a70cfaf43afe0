#!/usr/bin/env bash
# GPU check: one prepared script for the GPU machine (x86_64, driver 580 / CUDA 13.0, nvcc and PyTorch present, no
# cargo, no network). It uses a release binary built on the CPU machine and never builds anything.
#
# How to run it:
#   1. On the CPU machine:   cargo build --release
#                            mkdir -p target/gpu-check && strip -o target/gpu-check/fgssl target/release/fgssl
#      (the stripped binary is ~4 MB; target/release/fgssl keeps debug info, ~50 MB, and `run` carries 64 MiB in
#      all, so the 220 MB .venv-cuda NVRTC wheel does not fit either: the GPU machine's own CUDA 13.0 NVRTC is used)
#   2. With the `run` tool:  command: FGSSL_BIN=target/gpu-check/fgssl bash scripts/gpu-check.sh
#                            carry:   ["target/gpu-check/fgssl"]   (add ".venv-cuda" only where it fits)
#                            timeout_s: 360 (the script stops itself before 5 minutes)
#      Or by hand on any CUDA machine: FGSSL_BIN=/path/to/fgssl bash scripts/gpu-check.sh
#   The summary table at the end is what to record in docs/GPU-STATUS.md.
#
# Steps: the card and driver (nvidia-smi); which NVRTC is found (the system's via ldconfig, or the carried
# .venv-cuda wheel folder, the CUDA toolkit's lib64 or PyTorch's nvidia/cu13 wheel, exported as FGSSL_NVRTC_DIR); `fgssl selftest --device cuda`;
# `fgssl selftest --device cuda --precision bf16` (the convolutions on bf16 tensor cores against the CPU's bf16 emulation); compute-sanitizer
# memcheck and racecheck over `selftest --quick` (when compute-sanitizer exists); a short training throughput
# measurement (when the binary has a command for it). Exit status: 0 when every step that ran passed.
# Step time limits (seconds) add up to under 5 minutes: selftest 75, selftest bf16 55, memcheck 60, racecheck 60,
# throughput 35 (285 s; the last H200 run took selftest 7 s, memcheck 3, racecheck 14, throughput 6).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${FGSSL_BIN:-target/release/fgssl}
SEED=${SEED:-$(date +%s)}
START=$(date +%s)
declare -a ROWS=()
FAILED=0

row() { # step status seconds [note]
    ROWS+=("$(printf '%-22s %-8s %7s  %s' "$1" "$2" "$3" "${4:-}")")
    case "$2" in FAIL | TIMEOUT) FAILED=1 ;; esac
}

# run_step NAME LIMIT CMD...: runs CMD under `timeout`, prints its output, records status and seconds.
run_step() {
    local name=$1 limit=$2
    shift 2
    echo
    echo "==== $name: $* (limit ${limit}s)"
    local t0 rc status note=""
    t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@"
    rc=$?
    case $rc in
        0) status=PASS ;;
        124 | 137) status=TIMEOUT ;;
        3) status=SKIP note="exit 3: no CUDA driver or device" ;;
        *) status=FAIL note="exit $rc" ;;
    esac
    row "$name" "$status" "$(($(date +%s) - t0))" "$note"
    return $rc
}

echo "==== gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ), seed $SEED"

# ---- card and driver ----------------------------------------------------------------------------------------------
t0=$(date +%s)
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
    nvidia-smi | head -n 12 || true
    row "card/driver" PASS "$(($(date +%s) - t0))" "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
else
    echo "nvidia-smi not found"
    row "card/driver" FAIL "$(($(date +%s) - t0))" "nvidia-smi not found"
fi
command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n 2

# ---- NVRTC --------------------------------------------------------------------------------------------------------
t0=$(date +%s)
nvrtc_note=""
# Sets FGSSL_NVRTC_DIR / CUDA_INCLUDE_DIRS (shared with scripts/conv-lab.sh).
. scripts/nvrtc-env.sh
echo "system NVRTC (ldconfig -p):"
ldconfig -p 2>/dev/null | grep -i nvrtc || echo "  none on the loader path"
if [ -n "${FGSSL_NVRTC_DIR:-}" ]; then
    echo "FGSSL_NVRTC_DIR=$FGSSL_NVRTC_DIR (the fgssl binary preloads NVRTC from here); CUDA_INCLUDE_DIRS=${CUDA_INCLUDE_DIRS:-}"
    ls "$FGSSL_NVRTC_DIR" | grep -i nvrtc || true
    nvrtc_note="$FGSSL_NVRTC_DIR"
elif ldconfig -p 2>/dev/null | grep -q 'libnvrtc.so'; then
    nvrtc_note="system: $(ldconfig -p | grep -m1 'libnvrtc.so' | awk '{print $NF}')"
fi
if [ -n "$nvrtc_note" ]; then row "nvrtc" PASS "$(($(date +%s) - t0))" "$nvrtc_note"; else row "nvrtc" FAIL "$(($(date +%s) - t0))" "no NVRTC found"; fi

# ---- selftest -----------------------------------------------------------------------------------------------------
if [ ! -x "$BIN" ]; then
    echo "no fgssl binary at $BIN: build it on the CPU machine (cargo build --release) and carry target/release/fgssl"
    row "selftest" FAIL 0 "no binary at $BIN"
else
    run_step "selftest" 75 "$BIN" selftest --device cuda --seed "$SEED"
    selftest_rc=$?
    if [ "$selftest_rc" = 3 ]; then
        row "selftest bf16" SKIP 0 "nothing to check (selftest exit 3)"
    else
        run_step "selftest bf16" 55 "$BIN" selftest --device cuda --precision bf16 --seed "$SEED"
    fi

    # ---- compute-sanitizer ----------------------------------------------------------------------------------------
    SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1 || true)
    if [ -z "$SAN" ]; then
        row "memcheck" SKIP 0 "compute-sanitizer not found"
        row "racecheck" SKIP 0 "compute-sanitizer not found"
    elif [ "$selftest_rc" = 3 ]; then
        row "memcheck" SKIP 0 "nothing to check (selftest exit $selftest_rc)"
        row "racecheck" SKIP 0 "nothing to check (selftest exit $selftest_rc)"
    else
        run_step "memcheck" 60 "$SAN" --tool memcheck --error-exitcode 99 "$BIN" selftest --device cuda --quick --seed "$SEED"
        run_step "racecheck" 60 "$SAN" --tool racecheck --error-exitcode 99 "$BIN" selftest --device cuda --quick --seed "$SEED"
    fi

    # ---- training throughput --------------------------------------------------------------------------------------
    # The first training command in the binary's command list; FGSSL_TRAIN_ARGS overrides the arguments.
    train_cmd=$("$BIN" --help 2>/dev/null | awk '/^Commands:/ {c=1; next} c && /^  (train|bench|pretrain)/ {print $1; exit}')
    if [ -n "$train_cmd" ]; then
        # shellcheck disable=SC2086
        run_step "throughput ($train_cmd)" 35 "$BIN" "$train_cmd" --device cuda ${FGSSL_TRAIN_ARGS:---help}
    else
        echo
        echo "==== throughput: none yet (this binary has no training command)"
        row "throughput" SKIP 0 "none yet: no training command in this binary"
    fi
fi

# ---- summary ------------------------------------------------------------------------------------------------------
echo
echo "==== summary (seed $SEED, total $(($(date +%s) - START))s)"
printf '%-22s %-8s %7s  %s\n' "step" "status" "seconds" "note"
for r in "${ROWS[@]}"; do echo "$r"; done
exit $FAILED
