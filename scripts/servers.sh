#!/usr/bin/env bash
# Side by side: the same clients and message stream against the embedded hub and broker,
# nginx + nchan, mosquitto, NATS (MQTT and its WebSocket protocol) and Pushpin, each
# server's own CPU and memory measured. The servers that carry a text stamp inside their
# own framing (NATS over WebSocket, Pushpin) get 32-byte payloads, the others 20-byte ones:
# the table names the payload of each row.
#
#   scripts/servers.sh [CLIENTS [DURATION]]      (defaults 10000 and 20s; release build)
#
# Every server runs on 127.0.0.1 (started here with scripts/targets/*.sh, stopped on exit);
# results go to results/servers/<UTC stamp>/<server>/, and a table of bytes per message,
# latency, server CPU µs per delivered message and server RSS per connection (its peak less its
# RSS before the clients connected, ÷ connections) is printed and
# written to table.md there.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=${1:-10000}
duration=${2:-20s}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="results/servers/$stamp"
mkdir -p "$out"
cargo build --locked --release
bin=target/release/pushbench

nchan_port=18190
mosquitto_port=18193
mosquitto_ws=18194
nats_port=18195
nats_client=18196
nats_ws=18197
pushpin_port=18198
pushpin_push=18200
pushpin_origin=18203
pushpin_hub=18204
cleanup() {
  scripts/targets/pushpin.sh stop "$pushpin_port" >/dev/null 2>&1 || true
  scripts/targets/nchan.sh stop "$nchan_port" >/dev/null 2>&1 || true
  scripts/targets/mosquitto.sh stop "$mosquitto_port" >/dev/null 2>&1 || true
  scripts/targets/nats.sh stop "$nats_port" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# One scenario per server: the common part, then its target and transports.
scenario() { # NAME TARGET_TOML TRANSPORTS_TOML [PAYLOAD_BYTES [CONNECT_RATE]]
  local payload=${4:-20} connect_rate=${5:-2000/s}
  cat <<TOML
name = "servers-$1"
description = "$clients clients, one $payload-byte message a second, against $1"
clients = $clients
connect_rate = "$connect_rate"
warmup = "5s"
duration = "$duration"
drain = "5s"

[messages]
rate = "1/s"
payload_bytes = $payload

$2

$3
TOML
}

http_transports='[[transports]]
kind = "websocket"

[[transports]]
kind = "sse"
headers = "minimal"

[[transports]]
kind = "http-longpoll"
headers = "minimal"

[[transports]]
kind = "http-poll"
interval = "1s"
headers = "minimal"'

mqtt_transports='[[transports]]
kind = "mqtt"
qos = 0

[[transports]]
kind = "mqtt"
qos = 1'

run() { # NAME SCENARIO_TEXT
  local file="$out/$1.toml"
  printf '%s\n' "$2" >"$file"
  echo "== $1"
  "$bin" run "$file" --out "$out/$1" || echo "($1: exit $?, results kept)"
}

run embedded-hub "$(scenario embedded-hub '' "$http_transports")"
run embedded-broker "$(scenario embedded-broker '' "$mqtt_transports")"

scripts/targets/nchan.sh start "$nchan_port" >/dev/null
run nchan "$(scenario nchan "[target]
kind = \"external\"
urls = [\"http://127.0.0.1:$nchan_port\"]
name = \"nchan\"
process = \"nginx\"" "$http_transports")"
scripts/targets/nchan.sh stop "$nchan_port"

scripts/targets/mosquitto.sh start "$mosquitto_port" "$mosquitto_ws" >/dev/null
run mosquitto "$(scenario mosquitto "[target]
kind = \"external\"
urls = [\"mqtt://127.0.0.1:$mosquitto_port\"]
name = \"mosquitto\"
process = \"mosquitto\"" "$mqtt_transports")"
scripts/targets/mosquitto.sh stop "$mosquitto_port"

scripts/targets/nats.sh start "$nats_port" "$nats_client" "$nats_ws" >/dev/null
run nats "$(scenario nats "[target]
kind = \"external\"
urls = [\"mqtt://127.0.0.1:$nats_port\"]
name = \"nats\"
process = \"nats-server\"" "$mqtt_transports")"
run nats-websocket "$(scenario nats-websocket "[target]
kind = \"external\"
urls = [\"http://127.0.0.1:$nats_ws\"]
name = \"nats\"
process = \"nats-server\"
preset = \"nats\"" "[[transports]]
kind = \"websocket\"" 32)"
scripts/targets/nats.sh stop "$nats_port"

# Eight zurl pipes and a 250/s ramp: Pushpin's proxy answers 502 when its pipe to zurl holds
# 100 requests (README, "Pushpin at 10,000 clients"). Messages go to the hub directly, not
# through the proxy, as an application publishes.
ZURLS=8 ORIGIN_PORT=$pushpin_origin HUB_PORT=$pushpin_hub PUSHBENCH=$bin \
  scripts/targets/pushpin.sh start "$pushpin_port" "$pushpin_push" >/dev/null
run pushpin "$(scenario pushpin "[target]
kind = \"external\"
urls = [\"http://127.0.0.1:$pushpin_port\"]
name = \"pushpin\"
pidfile = \"$PWD/target/pushpin/$pushpin_port/pushpin.pid\"
preset = \"pushpin\"

[target.publish]
url = \"http://127.0.0.1:$pushpin_hub/pub/{channel}\"" "[[transports]]
kind = \"websocket\"

[[transports]]
kind = \"sse\"
headers = \"minimal\"

[[transports]]
kind = \"http-longpoll\"
headers = \"minimal\"" 32 250/s)"
scripts/targets/pushpin.sh stop "$pushpin_port"

# The table, from every summary.json (python3's json module only).
python3 - "$out" <<'PY' | tee "$out/table.md"
import glob, json, os, sys
out = sys.argv[1]
def f(v, fmt):
    return "-" if v is None else fmt.format(v)
print("| server | transport | payload B | delivered | B/msg | p50 ms | p99 ms | server CPU µs/msg | server RSS B/conn | fault |")
print("|---|---|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(out, "*", "summary.json"))):
    for r in json.load(open(path)):
        per_conn = r.get("target_rss_bytes_per_connection")
        ms = lambda k: None if r.get(k) is None else r[k] / 1000
        print("| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |".format(
            r.get("target_name") or r["target"], r["transport"], r["payload_bytes"],
            r["messages_delivered"], r["messages_expected"],
            f(r.get("bytes_per_message"), "{:.2f}"), f(ms("latency_p50_us"), "{:.1f}"),
            f(ms("latency_p99_us"), "{:.1f}"), f(r.get("target_cpu_us_per_message"), "{:.1f}"),
            f(per_conn, "{:.0f}"), r.get("fault") or ""))
PY
echo "results: $out"
