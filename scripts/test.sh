#!/usr/bin/env bash
# The project's test command (README "Quick start", run by .ci/run). Needs cargo; python3 (venv + pip) for the
# kernel compile check. No GPU.
# The tests compare the CPU reference with committed PyTorch fixtures (tests/fixtures, made by
# scripts/make_fixtures.py) and with finite differences. --all-targets also runs each criterion bench once, so the
# benches cannot rot. tests/kernels_compile.rs compiles every kernels/*.cu for sm_90 with NVRTC from the pinned PyPI
# wheels, installed here (idempotently) into the ignored .venv-cuda; without them that test prints SKIP and passes,
# except with CI=true, where a missing NVRTC is a failure. The last line sums every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- NVRTC for the kernel compile check (../shared/docs/CUDA.md §6) ---------------------------------------------
wheels="nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88"
venv=.venv-cuda
stamp=$venv/.fgssl-wheels
nvrtc_fail() {
    echo "kernel compile check: $1" >&2
    echo "  (needs python3 with venv and pip, and PyPI: pip install $wheels)" >&2
    if [ "${CI:-}" = "true" ]; then
        echo "CI=true: a missing NVRTC is a failure" >&2
        exit 1
    fi
    echo "  continuing: tests/kernels_compile.rs will print SKIP" >&2
}
install_wheels() {
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wheels" ] && [ -x "$venv/bin/python" ]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || { nvrtc_fail "python3 not found"; return 1; }
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || { nvrtc_fail "python3 -m venv $venv failed"; return 1; }
    fi
    echo "installing NVRTC wheels into $venv: $wheels" >&2
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $wheels || { nvrtc_fail "pip install failed"; return 1; }
    echo "$wheels" >"$stamp"
}
if install_wheels; then
    nv=$("$venv/bin/python" -c 'import nvidia.cu13 as m; print(list(m.__path__)[0])' 2>/dev/null || true)
    if [ -n "$nv" ] && [ -f "$nv/lib/libnvrtc.so.13" ]; then
        export FGSSL_NVRTC_DIR="$nv/lib"
        export CUDA_INCLUDE_DIRS="$nv/include"
        echo "NVRTC: $FGSSL_NVRTC_DIR" >&2
    else
        rm -f "$stamp"
        nvrtc_fail "the wheels in $venv lack nvidia/cu13/lib/libnvrtc.so.13"
    fi
fi

# ---- tests ---------------------------------------------------------------------------------------------------------
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --all-targets 2>&1 | tee "$log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
