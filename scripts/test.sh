#!/usr/bin/env bash
# The project's test command (README "Quick start", run by .ci/run). Needs only cargo: no GPU, no Python.
# The tests compare the CPU reference with committed PyTorch fixtures (tests/fixtures, made by
# scripts/make_fixtures.py) and with finite differences. --all-targets also runs each criterion bench once, so the
# benches cannot rot. The last line sums every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --all-targets 2>&1 | tee "$log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
