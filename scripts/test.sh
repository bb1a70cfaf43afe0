#!/usr/bin/env bash
# The project's test command (README "Quick start", run by .ci/run). Needs only cargo: no GPU, no Python.
# The tests compare the CPU reference with committed PyTorch fixtures (tests/fixtures, made by
# scripts/make_fixtures.py) and with finite differences.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets   # --all-targets: the criterion benches run once each, so they cannot rot
