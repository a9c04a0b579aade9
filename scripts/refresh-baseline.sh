#!/usr/bin/env bash
# Re-measures the CI smoke baseline (results/baseline/ci-smoke.json) on this machine. Do it
# when a change moves bytes or delivery on purpose (compare reports "improved" or a deliberate
# regression), on an otherwise idle machine, and commit the new file with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
cargo build --locked --release
# A run that breaks a threshold (exit 99) must not become the baseline.
target/release/pushbench run scenarios/ci-smoke.toml --out "$out"
mkdir -p results/baseline
cp "$out/summary.json" results/baseline/ci-smoke.json
echo "baseline refreshed: results/baseline/ci-smoke.json (from $out)"
