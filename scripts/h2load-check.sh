#!/usr/bin/env bash
# Cross-checks pushbench's HTTP/2 header byte count against an independent client: h2load
# (Debian nghttp2-client) polling the hub over cleartext HTTP/2.
#
#   scripts/h2load-check.sh [REQUESTS]     (default 10000)
#
# Starts `pushbench serve` (minimal profile) on a free loopback port, publishes one message
# and has h2load send REQUESTS interval polls of /sub/poll/0 on one connection with the
# headers pushbench's minimal poller sends once it is at that message (If-None-Match: 1), so
# every answer is a 304. h2load reports the HPACK bytes of the HEADERS frames it received
# ("headers" in its traffic line, without the 9-byte frame headers); with one HEADERS frame
# per response, that + 9 per request is pushbench's `response_header_bytes_per_exchange` for
# the same exchange: 16 bytes, asserted in tests/http2.rs
# (h2_not_modified_poll_is_one_16_byte_headers_frame). The two must agree within 1%: what
# h2load adds is the first response's literals and the Date literal of each new second.
# Exits 1 if they do not.
set -euo pipefail

requests=${1:-10000}
pushbench_figure=16
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PUSHBENCH:-$root/target/debug/pushbench}
command -v h2load >/dev/null || { echo "h2load missing: apt-get install nghttp2-client" >&2; exit 1; }
[[ -x $bin ]] || { echo "$bin missing: cargo build" >&2; exit 1; }

log=$(mktemp)
"$bin" serve --listen 127.0.0.1:0 --headers minimal >"$log" 2>&1 &
hub=$!
trap 'kill "$hub" 2>/dev/null; rm -f "$log"' EXIT
url=
for _ in $(seq 50); do
    url=$(sed -n 's/^pushbench hub listening on //p' "$log")
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { echo "the hub did not start:" >&2; cat "$log" >&2; exit 1; }

curl -sf -X POST --data-binary 'twenty-byte-message!' "$url/pub/0" >/dev/null
out=$(h2load -n "$requests" -c 1 -m 1 -H 'If-None-Match: 1' "$url/sub/poll/0")
done_line=$(grep '^requests:' <<<"$out")
succeeded=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' <<<"$done_line")
not_modified=$(sed -n 's/^status codes: .* \([0-9]*\) 3xx.*/\1/p' <<<"$out")
headers=$(sed -n 's/^traffic: .*, [^ ]* (\([0-9]*\)) headers.*/\1/p' <<<"$out")
if [[ $succeeded != "$requests" || $not_modified != "$requests" || -z $headers ]]; then
    echo "h2load did not get $requests answers 304:" >&2
    echo "$out" >&2
    exit 1
fi

awk -v h="$headers" -v n="$requests" -v p="$pushbench_figure" 'BEGIN {
    per = h / n + 9
    diff = (per - p) / p * 100
    printf "h2load: %d header bytes in %d responses = %.3f B per response with its frame header\n", h, n, per
    printf "pushbench: %d B per 304 response (tests/http2.rs); difference %.2f%%\n", p, diff
    if (diff < -1 || diff > 1) { print "FAIL: more than 1% apart"; exit 1 }
    print "ok: within 1%"
}'
