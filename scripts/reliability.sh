#!/usr/bin/env bash
# The link profile × transport matrix: scenarios/mobile-4g.toml's transports over each named
# link profile, then scenarios/blackhole.toml and scenarios/restart.toml. Needs root
# (network namespaces). Each run writes results/reliability/<stamp>/<name>/ with its own
# charts; results/reliability/<stamp>/report/ draws them all together: links.png (latency
# p50/p99 per transport across the profiles) and comparison.md's "Faults" table (delivery
# and recovery per transport for each fault). The link columns (link_profile,
# link_rtt_measured_ms, link_retrans_ratio, link_faults) say what each run's link was and did.
#
#   sudo scripts/reliability.sh                 # every profile
#   sudo scripts/reliability.sh 4g satellite    # some
set -euo pipefail
cd "$(dirname "$0")/.."

profiles=("$@")
[[ ${#profiles[@]} -gt 0 ]] || profiles=(4g 3g lossy-wifi satellite)
cargo build --release --locked
bin=target/release/pushbench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="results/reliability/$(date -u +%Y%m%dT%H%M%SZ)"

for profile in "${profiles[@]}"; do
    scenario="$work/mobile-$profile.toml"
    sed -e "s/^name = \"mobile\"/name = \"mobile-$profile\"/" \
        -e "s/^profile = \"4g\"/profile = \"$profile\"/" scenarios/mobile-4g.toml >"$scenario"
    echo "== $profile"
    "$bin" run "$scenario" --out "$results/mobile-$profile" ||
        echo "warning: the $profile run exited $?" >&2
done
for fault in blackhole restart; do
    echo "== $fault"
    "$bin" run "scenarios/$fault.toml" --out "$results/$fault" ||
        echo "warning: the $fault run exited $?" >&2
done
inputs=()
for dir in "$results"/*/; do
    [[ -f "$dir/summary.json" ]] && inputs+=("$dir")
done
"$bin" report "${inputs[@]}" --out "$results/report"
echo "matrix: $results/report (links.png, comparison.md)"
