#!/usr/bin/env bash
# The floor beside pushbench and its peers, in one go, on this machine: absolute figures and
# ratios to the floor (and to wrk), written to results/bench/<UTC stamp>/table.md.
#
#   scripts/bench.sh [CONNECTIONS [POLL_CONNECTIONS]]     (defaults 18000 and 200)
#
# 1. fan-out: the floor (benches/floor.rs: raw sockets, no framing) and pushbench's WebSocket
#    run (embedded hub, 10 messages at 1/s) at CONNECTIONS clients: CPU per delivered message
#    (server + clients), p99 latency, memory per connection;
# 2. polling flat out at POLL_CONNECTIONS connections against one `pushbench serve`: the floor's
#    poll loop, wrk, and pushbench's own poll generator: polls per second, client and server CPU
#    per poll.
# Every server listens on 127.0.0.1; every load is bounded in time. Other work on the machine
# skews the figures: the load average before each step is recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench.sh: wrk is missing (the peer the poll generator is compared with): apt-get install wrk" >&2; exit 1; }

conns=${1:-18000}
poll_conns=${2:-200}
port=18300
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="results/bench/$stamp"
mkdir -p "$out"
cargo build --locked --release
cargo bench --locked --bench floor --no-run
bin=target/release/pushbench
load() { cut -d' ' -f1-3 /proc/loadavg; }
cpu_s() { # PID: user + system seconds from /proc
  awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"
}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpus: $(nproc)"
  echo "memory: $(free -h | awk '/Mem:/ {print $2}')"
  echo "kernel: $(uname -r)"
} >"$out/machine.txt"

echo "== floor fan-out, $conns connections (load $(load))"
cargo bench --locked --bench floor -- fanout --connections "$conns" --messages 10 --json \
  | grep '^{' >"$out/floor-fanout.json"

echo "== pushbench WebSocket fan-out, $conns clients (load $(load))"
cat >"$out/fanout.toml" <<TOML
name = "bench-fanout"
clients = $conns
connect_rate = "5000/s"
warmup = "2s"
duration = "10s"
drain = "10s"
[messages]
rate = "1/s"
[[transports]]
kind = "websocket"
TOML
"$bin" run "$out/fanout.toml" --out "$out/pushbench-fanout" >/dev/null

echo "== floor poll, $poll_conns connections, 10 s (load $(load))"
cargo bench --locked --bench floor -- poll --connections "$poll_conns" --duration 10s --json \
  | grep '^{' >"$out/floor-poll.json"

"$bin" serve --listen "127.0.0.1:$port" >/dev/null &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

echo "== wrk -t2 -c$poll_conns -d10s against pushbench serve (load $(load))"
before=$(cpu_s $serve)
/usr/bin/time -f '%U %S' -o "$out/wrk.time" \
  wrk -t2 -c"$poll_conns" -d10s "http://127.0.0.1:$port/sub/poll/0" >"$out/wrk.txt"
echo "$before $(cpu_s $serve)" >"$out/wrk.serve-cpu"

echo "== pushbench polls flat out, $poll_conns clients, against the same serve (load $(load))"
cat >"$out/poll.toml" <<TOML
name = "bench-poll"
clients = $poll_conns
connect_rate = "1000/s"
warmup = "1s"
duration = "10s"
drain = "0s"
[messages]
rate = "1/s"
[target]
kind = "external"
urls = ["http://127.0.0.1:$port"]
pid = $serve
[[transports]]
kind = "http-poll"
interval = "1ms"
headers = "minimal"
TOML
"$bin" run "$out/poll.toml" --out "$out/pushbench-poll" >/dev/null || true

python3 - "$out" <<'PY' | tee "$out/table.md"
import json, os, re, sys
out = sys.argv[1]
load = lambda name: json.load(open(os.path.join(out, name)))
floor_fan = json.loads(open(os.path.join(out, "floor-fanout.json")).read().splitlines()[-1])
floor_poll = json.loads(open(os.path.join(out, "floor-poll.json")).read().splitlines()[-1])
ws = load("pushbench-fanout/summary.json")[0]
poll = load("pushbench-poll/summary.json")[0]
wrk_text = open(os.path.join(out, "wrk.txt")).read()
wrk_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk_text).group(1))
wrk_requests = int(re.search(r"(\d+) requests in", wrk_text).group(1))
wrk_user, wrk_sys = map(float, open(os.path.join(out, "wrk.time")).read().split()[-2:])
serve_before, serve_after = map(float, open(os.path.join(out, "wrk.serve-cpu")).read().split())
ratio = lambda a, b: "-" if not a or not b else "{:.2f}×".format(a / b)
f = lambda v, d=1: "-" if v is None else "{:,.{}f}".format(v, d)

# The floor counts CPU once every connection is up; pushbench's delivery figures leave its
# connect phase out the same way (the whole run's, connects included, are shown below them).
nz = lambda v: v if isinstance(v, (int, float)) else 0
ws_server, ws_client = ws["target_delivery_cpu_us_per_message"], ws["fleet_delivery_cpu_us_per_message"]
ws_cpu = nz(ws_server) + nz(ws_client)
print("## Fan-out, {:,} connections, 10 messages at 1/s\n".format(floor_fan["connections"]))
print("| | floor | pushbench (WebSocket, embedded hub) | ratio |")
print("|---|---|---|---|")
print("| delivered | {:,}/{:,} | {:,}/{:,} | |".format(floor_fan["messages_delivered"], floor_fan["messages_expected"], ws["messages_delivered"], ws["messages_expected"]))
print("| server CPU µs per message, once connected | {} | {} | {} |".format(f(floor_fan["server_cpu_us_per_write"], 2), f(ws_server, 2), ratio(ws_server, floor_fan["server_cpu_us_per_write"])))
print("| client CPU µs per message, once connected | {} | {} | {} |".format(f(floor_fan["client_cpu_us_per_message"], 2), f(ws_client, 2), ratio(ws_client, floor_fan["client_cpu_us_per_message"])))
print("| total CPU µs per message, once connected | {} | {} | {} |".format(f(floor_fan["cpu_us_per_message"], 2), f(ws_cpu, 2), ratio(ws_cpu, floor_fan["cpu_us_per_message"])))
print("| server / client CPU µs per message, connects included | - | {} / {} | |".format(f(ws["target_cpu_us_per_message"], 2), f(ws["fleet_cpu_us_per_message"], 2)))
print("| server / client CPU µs per connect | - | {} / {} | |".format(f(ws["target_connect_cpu_us_per_connection"], 1), f(ws["fleet_connect_cpu_us_per_connection"], 1)))
print("| latency p99 ms | {} | {} | {} |".format(f(floor_fan["latency_us"]["p99"] / 1000), f((ws["latency_p99_us"] or 0) / 1000), ratio(ws["latency_p99_us"], floor_fan["latency_us"]["p99"])))
print("| server RSS added per connection, B | {} | {} | {} |".format(f(floor_fan["server_added_rss_bytes_per_connection"], 0), f(ws["target_rss_bytes_per_connection"], 0), ratio(ws["target_rss_bytes_per_connection"], floor_fan["server_added_rss_bytes_per_connection"])))
print("| client RSS added per connection, B | {} | {} | {} |".format(f(floor_fan["client_added_rss_bytes_per_connection"], 0), f(ws["fleet_rss_bytes_per_client"], 0), ratio(ws["fleet_rss_bytes_per_client"], floor_fan["client_added_rss_bytes_per_connection"])))

serve_cpu = serve_after - serve_before
wrk_cpu_us = (wrk_user + wrk_sys) * 1e6 / wrk_requests
pb_polls_s = poll["exchanges_per_client_per_s"] * poll["clients_connected"]
pb_cpu_us = poll["fleet_cpu_s"] * 1e6 / poll["total_exchanges"] if poll["total_exchanges"] else None
print("\n## Polling flat out, {} connections, 10 s\n".format(floor_poll["connections"]))
print("| | floor (raw sockets) | wrk -t2 vs pushbench serve | pushbench poll generator vs pushbench serve | pushbench ÷ wrk |")
print("|---|---|---|---|---|")
print("| polls per second | {} | {} | {} | {} |".format(f(floor_poll["polls_per_s"], 0), f(wrk_rps, 0), f(pb_polls_s, 0), ratio(pb_polls_s, wrk_rps)))
print("| client CPU µs per poll | {} | {} | {} | {} |".format(f(floor_poll["client_cpu_us_per_poll"], 2), f(wrk_cpu_us, 2), f(pb_cpu_us, 2), ratio(pb_cpu_us, wrk_cpu_us)))
print("| server CPU µs per poll | {} | {} | {} | {} |".format(f(floor_poll["server_cpu_us_per_poll"], 2), f(serve_cpu * 1e6 / wrk_requests, 2), f(poll["target_cpu_us_per_message"] and poll["target_cpu_s"] * 1e6 / poll["total_exchanges"], 2), ""))
print("\nfloor: benches/floor.rs; pushbench client CPU per poll = fleet_cpu_s ÷ total_exchanges (whole run, publisher included); wrk's from /usr/bin/time ÷ its requests; server CPU from /proc of the serve process.")
PY
echo "results: $out"
