#!/usr/bin/env bash
# Reproduces websocket.org's use cases A, B and C (1k, 10k, 100k clients, one message per
# second each) for every transport, and renders the charts and comparison.md.
#
#   scripts/reproduce-article.sh [OUT_DIR]     (default: results/reference)
#
# Runs, in order (about 15 minutes on a 2-core machine):
#   A and B, every transport, against the embedded hub and broker;
#   B over MQTT against one mosquitto (it holds up to ~20k clients);
#   C over WebSocket at the article's rate (6 hub shards, 6 worker processes);
#   C rate-scaled (one message per 5 s, projected to 1/s) for polling, long polling and MQTT,
#     which a 2-core machine cannot hold at 100,000 messages per second;
#   C over MQTT, rate-scaled, against 6 mosquitto shards.
# Every server listens on 127.0.0.0/8 only; mosquitto instances are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reference}
bin=target/release/pushbench
mosquitto_ports=()

stop_mosquittos() {
  for port in "${mosquitto_ports[@]}"; do
    scripts/targets/mosquitto.sh stop "$port" || true
  done
  mosquitto_ports=()
}
trap stop_mosquittos EXIT

# Starts N mosquitto shards and sets $urls to their URLs as a TOML array. (Not called in a
# command substitution: its subshell would lose the ports that the exit trap must stop.)
start_mosquittos() {
  local n=$1 list=()
  for k in $(seq 0 $((n - 1))); do
    local port=$((18831 + 2 * k))
    scripts/targets/mosquitto.sh start "$port" $((port + 1)) >/dev/null
    mosquitto_ports+=("$port")
    list+=("\"mqtt://127.0.0.1:$port\"")
  done
  local IFS=,
  urls="[${list[*]}]"
}

# A use case over MQTT QoS 0 against external brokers.
mqtt_scenario() {
  local clients=$1 rate=$2 urls=$3 extra=$4
  cat <<TOML
name = "$5"
description = "use case over MQTT against mosquitto"
clients = $clients
connect_rate = "5000/s"
warmup = "5s"
duration = "30s"
drain = "10s"
[messages]
rate = "$rate"
payload_bytes = 20
$extra
[target]
kind = "external"
urls = $urls
[[transports]]
kind = "mqtt"
qos = 0
topic = "bench/{channel}"
TOML
}

start=$(date +%s)
cargo build --release --locked
mkdir -p "$out"
work=$(mktemp -d)

echo "== use case A, every transport"
$bin run scenarios/use-case-a.toml --out "$out/use-case-a"
echo "== use case B, every transport"
$bin run scenarios/use-case-b.toml --out "$out/use-case-b"

echo "== use case B over MQTT against mosquitto"
start_mosquittos 1
mqtt_scenario 10000 "1/s" "$urls" "" use-case-b >"$work/b-mosquitto.toml"
$bin run "$work/b-mosquitto.toml" --out "$out/use-case-b-mosquitto"
stop_mosquittos

echo "== use case C over WebSocket, at the article's rate"
$bin run scenarios/use-case-c.toml --only websocket --out "$out/use-case-c"
echo "== use case C rate-scaled: polling, long polling, MQTT (embedded)"
$bin run scenarios/use-case-c-scaled.toml --out "$out/use-case-c-scaled"

echo "== use case C over MQTT against 6 mosquitto shards, rate-scaled"
start_mosquittos 6
mqtt_scenario 100000 "0.2/s" "$urls" 'project_to = "1/s"' use-case-c >"$work/c-mosquitto.toml"
$bin run "$work/c-mosquitto.toml" --out "$out/use-case-c-mosquitto"
stop_mosquittos

echo "== charts and comparison"
$bin report "$out"/use-case-* --out "$out"
rm -rf "$work"
echo "== done in $(( $(date +%s) - start )) s: $out"
