#!/usr/bin/env bash
# Runs every test. Installs what the tests need first, so it works on a fresh machine.
# Every server the tests start listens on 127.0.0.1, port 0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets "$@"
