#!/usr/bin/env bash
# The link profile × transport matrix: scenarios/mobile.toml's transports over each named
# link profile, then scenarios/blackhole.toml. Needs root (network namespaces). Each run
# writes results/<scenario>-<profile>/<stamp>/ with its charts (pushbench run renders them);
# the link columns (link_profile, link_rtt_measured_ms, link_retrans_ratio, link_faults)
# say what each run's link was and did.
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

for profile in "${profiles[@]}"; do
    scenario="$work/mobile-$profile.toml"
    sed -e "s/^name = \"mobile\"/name = \"mobile-$profile\"/" \
        -e "s/^profile = \"4g\"/profile = \"$profile\"/" scenarios/mobile.toml >"$scenario"
    echo "== $profile"
    "$bin" run "$scenario" || echo "warning: the $profile run exited $?" >&2
done
echo "== blackhole"
"$bin" run scenarios/blackhole.toml || echo "warning: the blackhole run exited $?" >&2
