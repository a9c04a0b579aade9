#!/usr/bin/env bash
# Cross-checks pushbench's byte counts against an independent witness: a tshark capture on lo.
#
#   scripts/verify-capture.sh SCENARIO [TRANSPORT...]
#
# For each transport of SCENARIO (or only the labels/kinds given), runs
# `pushbench run SCENARIO --only TRANSPORT` while tshark captures TCP on lo, then compares,
# for the CLIENT connections only, the capture's
#   - TCP payload bytes client->server and server->client with total_bytes_up/total_bytes_down
#     (must agree within 0.5%), and
#   - IP-level bytes (IP total length of every segment, pure ACKs included, both directions,
#     less the payload of retransmitted segments, which pushbench counts once) with
#     total_ip_bytes (within 2%; pushbench counts only the total, not per direction).
# It exits 1 if any comparison fails, saying which transport, which side and by how much.
#
# What is a client connection: every TCP connection to the run's server ports whose first
# client->server bytes do not start with one of $EXCLUDE_PREFIXES (the publisher's
# "POST /pub/" and the coordinator's "GET /stats" by default; a transport whose publisher
# speaks another protocol adds its own prefix, e.g. EXCLUDE_PREFIXES+=$'\n'"..."), that
# carried some payload (a connection with none is a readiness probe: the embedded broker's
# start checks that its ports accept connections), and, for MQTT transports (labels mqtt...),
# whose CONNECT's client id does not start with one of $EXCLUDE_CLIENT_IDS (the publisher's
# "pb-pub-" and the Last Will watcher's "pb-will-watch-"): MQTT's publisher opens with a
# CONNECT like every subscriber, so no prefix tells it apart. The client ids come from
# tshark's MQTT dissector over TCP, and over WebSocket from the unmasked payload of each
# connection's first client frame (decoded here). A run in which the publisher's CONNECT is
# not found fails rather than count the publisher as a client.
# A TLS run (the scenario has a [tls] table): pushbench writes its session secrets to
# SSLKEYLOGFILE (NSS key log format) and tshark decrypts with them, only to read each TLS
# connection's first HTTP request (the publisher's "POST /pub/" is encrypted too): every
# count stays the capture's own, of the ciphertext. The capture's TLS records (tshark's
# tls.record.length, one a record, retransmissions and the close left out as above) are
# compared with total_tls_records, exactly (over MQTT pushbench does not see them: printed
# only). In a TLS run a client connection opens with a TLS handshake record: a cleartext one
# is left out (the embedded broker's TLS front relays each connection to rumqttd over lo, a
# second, cleartext leg of it); MQTT client ids are read from the decrypted CONNECTs.
# The run's server ports: for an external target the ports of its URLs; for the embedded
# target the ports that pushbench's own process and its children listen on during the run
# (found in /proc, so any embedded server, whatever its protocol, is found).
#
# What the capture has that pushbench does not count (reported, not compared):
#   - the close: pushbench reads each connection's counters just before it closes it, so the
#     FIN segments, their ACKs and anything after the first FIN of a connection (a late
#     frame, an RST) are left out of both sides of the comparison and listed apart. An MQTT
#     subscriber's connection is dropped without a DISCONNECT (rumqttc's event loop is
#     dropped when the client ends): client FIN, server FIN, last ACK, no payload;
#   - retransmitted payload (pushbench counts payload once; the retransmitted segments are
#     in its segment count, so they are in the IP-level comparison);
#   - TCP options beyond timestamps: pushbench charges every segment 20 + 20 + 12 bytes of
#     IPv4 + TCP + timestamp headers; SYN and SYN-ACK carry 8 bytes more each (MSS, SACK
#     permitted, window scale), SACK blocks (rare on lo) more still.
#
# Environment: PUSHBENCH (binary; default: target/debug/pushbench, built if missing),
# OUT (work directory; default target/verify-capture/<scenario>-<stamp>), IFACE (default lo),
# KEEP_CAPTURE=1 keeps the pcapng of a transport that passed (one that failed is always kept).
set -euo pipefail
cd "$(dirname "$0")/.."

PAYLOAD_LIMIT_PCT=${PAYLOAD_LIMIT_PCT:-0.5}
IP_LIMIT_PCT=${IP_LIMIT_PCT:-2}
IFACE=${IFACE:-lo}
EXCLUDE_PREFIXES=${EXCLUDE_PREFIXES:-$'POST /pub/\nGET /stats'}
# MQTT: connections whose CONNECT carries a client id starting with one of these are not
# clients (the publisher's, the Last Will watcher's), space-separated.
EXCLUDE_CLIENT_IDS=${EXCLUDE_CLIENT_IDS:-pb-pub- pb-will-watch-}
# Bounds on the waits below.
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-600}
CAPTURE_START_TIMEOUT_S=10

die() {
    echo "verify-capture: $*" >&2
    exit 2
}

[[ $# -ge 1 ]] || die "usage: $0 SCENARIO [TRANSPORT...]"
scenario=$1
shift
[[ -f $scenario ]] || die "no scenario file $scenario"
command -v tshark >/dev/null || die "tshark is missing: apt-get install -y tshark"

bin=${PUSHBENCH:-target/debug/pushbench}
if [[ -z ${PUSHBENCH:-} ]]; then
    cargo build --quiet --locked --bin pushbench
fi
[[ -x $bin ]] || die "no pushbench binary at $bin"

plan=$("$bin" validate "$scenario") || die "$scenario does not validate"
tls_run=""
grep -q '^ *tls: ' <<<"$plan" && tls_run=1
if [[ $# -gt 0 ]]; then
    transports=("$@")
else
    mapfile -t transports < <(sed -n 's/^ *[0-9][0-9]*\. \([^:]*\):.*/\1/p' <<<"$plan" | awk '!seen[$0]++')
fi
[[ ${#transports[@]} -gt 0 ]] || die "no transports in $scenario"
target_line=$(grep -m1 '^ *target:' <<<"$plan" || true)
external_ports=()
if [[ $target_line == *external:* ]]; then
    mapfile -t external_ports < <(grep -o '://[^/ ]*:[0-9]*' <<<"$target_line" | sed 's/.*://' | sort -un)
    [[ ${#external_ports[@]} -gt 0 ]] || die "no ports in the target URLs: $target_line"
fi

name=$(basename "$scenario" .toml)
out=${OUT:-target/verify-capture/$name-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# dumpcap drops root privileges to write: let it write here.
chmod 0777 "$out" 2>/dev/null || true

# Listening TCP ports of the given PIDs (every thread's sockets), one per line.
listening_ports() {
    local pid inodes=""
    for pid in "$@"; do
        inodes+=$(find "/proc/$pid/fd" -maxdepth 1 -lname 'socket:*' -printf '%l\n' 2>/dev/null |
            sed -n 's/^socket:\[\([0-9]*\)\]$/\1 /p' | tr -d '\n' || true)
    done
    [[ -n $inodes ]] || return 0
    awk -v inodes="$inodes" '
        BEGIN { n = split(inodes, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
        FNR > 1 && $4 == "0A" && ($10 in want) {
            split($2, local, ":"); hex = toupper(local[2]); port = 0
            for (i = 1; i <= length(hex); i++) port = port * 16 + index("0123456789ABCDEF", substr(hex, i, 1)) - 1
            print port
        }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -un
}

# PID and its children (the embedded hub runs as a child process).
family() {
    echo "$1"
    cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}

# A TLS run's decrypting passes over the capture: the excluded connections by their first
# decrypted HTTP request (appended to excluded.txt), and each frame's count of TLS records
# (records.txt: frame, records). Arguments: pcap, ports file, display filter, results dir.
tls_passes() {
    local pcap=$1 ports_file=$2 filter=$3 results=$4 port decode=()
    while IFS= read -r port; do decode+=(-d "tcp.port==$port,tls"); done <"$ports_file"
    local keys=(-o "tls.keylog_file:$results/keys.log")
    tshark -r "$pcap" "${keys[@]}" "${decode[@]}" -Y "http.request && ($filter)" -T fields \
        -E separator=/t -E occurrence=f -e tcp.stream -e http.request.method -e http.request.uri \
        2>/dev/null | awk -F '\t' -v prefixes="$EXCLUDE_PREFIXES" '
            BEGIN { n = split(prefixes, prefix, "\n") }
            !($1 in seen) {
                seen[$1] = 1; request = $2 " " $3
                for (i = 1; i <= n; i++) if (prefix[i] != "" && index(request, prefix[i]) == 1) { print $1 "\t" prefix[i] " (decrypted)"; next }
            }' >>"$results/excluded.txt"
    # (MQTT's publisher is told by its client id, above.)
    if [[ $label != mqtt* ]] && ! grep -q 'POST /pub/' "$results/excluded.txt" &&
        ! tshark -r "$pcap" -Y "($filter) && tcp.payload" -T fields -e tcp.payload 2>/dev/null |
            grep -q "^$(printf 'POST /pub/' | od -An -tx1 -v | tr -d ' \n')"; then
        echo "FAIL $label: no publisher connection (POST /pub/) in the capture, decrypted or not:" \
            "its connection cannot be told from the clients' (keys: $(wc -l <"$results/keys.log") lines)"
        return 1
    fi
    tshark -r "$pcap" "${keys[@]}" "${decode[@]}" -Y "tls.record && ($filter)" -T fields \
        -E separator=/t -E occurrence=a -E aggregator=, -e frame.number -e tls.record.length \
        2>/dev/null | awk -F '\t' '{ print $1 "\t" split($2, lengths, ",") }' >"$results/records.txt"
}

# The first comparison row for one transport; prints a report and returns 1 on failure.
# Arguments: label, pcap, ports file, results dir.
compare() {
    local label=$1 pcap=$2 ports_file=$3 results=$4
    local ports filter csv
    ports=$(paste -sd' ' "$ports_file")
    filter=$(sed 's/^/tcp.port == /' "$ports_file" | paste -sd'|' | sed 's/|/ || /g')
    csv="$results/summary.csv"
    [[ -s $csv ]] || { echo "FAIL $label: pushbench wrote no $csv"; return 1; }
    # One line per segment: stream, src port, dst port, IP length, TCP payload length,
    # FIN, RST, retransmission, first bytes of the payload (hex), SYN, TCP header length,
    # frame number.
    tshark -r "$pcap" -Y "$filter" -T fields -E separator=/t -E occurrence=f \
        -e tcp.stream -e tcp.srcport -e tcp.dstport -e ip.len -e tcp.len \
        -e tcp.flags.fin -e tcp.flags.reset -e tcp.analysis.retransmission -e tcp.payload \
        -e tcp.flags.syn -e tcp.hdr_len -e frame.number \
        2>/dev/null >"$results/segments.txt"
    # HTTP/2 (a label with ",h2"): a client closes its connection with a GOAWAY (17 bytes),
    # an event stream's client first with a RST_STREAM (13 bytes) of its open stream, after
    # pushbench's last read of its counters, so the close starts at the first of them, not at
    # the FIN. The run's ports are decoded as HTTP/2 to find those segments (neither frame is
    # sent by a client before it closes).
    : >"$results/goaway.txt"
    if [[ $label == *,h2* ]]; then
        local h2decode=() h2port
        # Over TLS the frames are encrypted: decrypted with the run's keys, ALPN says h2.
        local h2as=http2 h2keys=()
        [[ -n $tls_run ]] && h2as=tls && h2keys=(-o "tls.keylog_file:$results/keys.log")
        while IFS= read -r h2port; do h2decode+=(-d "tcp.port==$h2port,$h2as"); done <"$ports_file"
        tshark -r "$pcap" "${h2keys[@]}" "${h2decode[@]}" -Y "(http2.type == 7 || http2.type == 3) && ($filter)" -T fields \
            -e frame.number 2>/dev/null >"$results/goaway.txt"
    fi
    # MQTT (a transport labelled mqtt...): the publisher's first bytes are a CONNECT like every
    # subscriber's, so its connection is told by the client id of its CONNECT. Over TCP,
    # tshark's MQTT dissector reads it (the run's ports decoded as MQTT). Over WebSocket the
    # client's frames are masked: the ports are decoded as HTTP, tshark follows the upgrade
    # and hands each frame's unmasked payload on as data (tshark 4.0 does not dissect it as
    # MQTT), and the CONNECT in a connection's first client frame is decoded here.
    : >"$results/excluded.txt"
    if [[ $label == mqtt* ]]; then
        local decode=() port id
        if [[ $label == *ws\)* || $label == *websocket* ]]; then
            if [[ -n $tls_run ]]; then
                decode+=(-o "tls.keylog_file:$results/keys.log")
                while IFS= read -r port; do decode+=(-d "tcp.port==$port,tls" -d "tls.port==$port,http"); done <"$ports_file"
            else
                while IFS= read -r port; do decode+=(-d "tcp.port==$port,http"); done <"$ports_file"
            fi
            tshark -r "$pcap" "${decode[@]}" -Y "data.data && websocket.mask == 1 && ($filter)" \
                -T fields -E separator=/t -E occurrence=f -e tcp.stream -e data.data 2>/dev/null |
                awk -F '\t' '
                    function byte(i) { return index("0123456789abcdef", substr(h, 2 * i + 1, 1)) * 16 - 17 + index("0123456789abcdef", substr(h, 2 * i + 2, 1)) }
                    # CONNECT: 0x10, remaining length (1-4 bytes), protocol name (2 + n),
                    # level, flags, keep-alive (4), client id (2 + n).
                    !($1 in seen) {
                        seen[$1] = 1; h = tolower($2)
                        if (byte(0) != 16) next
                        i = 1; while (i < 5 && byte(i) >= 128) i++
                        i += 1; i += 2 + byte(i) * 256 + byte(i + 1); i += 4
                        n = byte(i) * 256 + byte(i + 1); i += 2; id = ""
                        for (k = 0; k < n && 2 * (i + k) < length(h); k++) id = id sprintf("%c", byte(i + k))
                        print $1 "\t" id
                    }' >"$results/clientids.txt"
        else
            # Over TLS: decrypted with the run's keys, MQTT inside TLS (and a TLS front's
            # cleartext leg to its broker, misread as TLS, gives no client id).
            if [[ -n $tls_run ]]; then
                decode+=(-o "tls.keylog_file:$results/keys.log")
                while IFS= read -r port; do decode+=(-d "tcp.port==$port,tls" -d "tls.port==$port,mqtt"); done <"$ports_file"
            else
                while IFS= read -r port; do decode+=(-d "tcp.port==$port,mqtt"); done <"$ports_file"
            fi
            tshark -r "$pcap" "${decode[@]}" -Y "mqtt.clientid && ($filter)" -T fields \
                -E separator=/t -E occurrence=f -e tcp.stream -e mqtt.clientid \
                2>/dev/null >"$results/clientids.txt"
        fi
        for id in $EXCLUDE_CLIENT_IDS; do
            awk -F '\t' -v id="$id" 'index($2, id) == 1 { print $1 "\tclient id " id "*" }' \
                "$results/clientids.txt" >>"$results/excluded.txt"
        done
        if ! grep -q $'\tclient id pb-pub-' "$results/excluded.txt"; then
            echo "FAIL $label: no MQTT CONNECT of the publisher (client id pb-pub-...) in the capture:" \
                "its connection cannot be told from the clients' ($(wc -l <"$results/clientids.txt") client ids decoded)"
            return 1
        fi
    fi
    : >"$results/records.txt"
    if [[ -n $tls_run ]]; then
        tls_passes "$pcap" "$ports_file" "$filter" "$results" || return 1
    fi
    local prefixes_hex
    prefixes_hex=$(while IFS= read -r p; do
        [[ -n $p ]] && printf '%s' "$p" | od -An -tx1 -v | tr -d ' \n' && echo
    done <<<"$EXCLUDE_PREFIXES" | paste -sd' ')
    awk -F '\t' -v ports="$ports" -v prefixes="$prefixes_hex" -v label="$label" \
        -v plimit="$PAYLOAD_LIMIT_PCT" -v iplimit="$IP_LIMIT_PCT" -v csv="$csv" \
        -v exfile="$results/excluded.txt" -v goawayfile="$results/goaway.txt" \
        -v recordsfile="$results/records.txt" -v tls="$tls_run" '
        BEGIN {
            while ((getline l < exfile) > 0) { split(l, e, "\t"); excluded[e[1]] = e[2] }
            while ((getline l < goawayfile) > 0) goaway[l] = 1
            while ((getline l < recordsfile) > 0) { split(l, e, "\t"); records[e[1]] = e[2] }
            n = split(ports, p, " "); for (i = 1; i <= n; i++) server[p[i]] = 1
            np = split(prefixes, prefix, " ")
            # pushbench: the row of this transport (the only row: one run per invocation).
            getline header < csv; nh = csvsplit(header, h)
            for (i = 1; i <= nh; i++) col[h[i]] = i
            while ((getline line < csv) > 0) { nf = csvsplit(line, f); rows++ }
            if (rows != 1) { printf "FAIL %s: %d result rows in %s, expected 1\n", label, rows, csv; bad = 1; exit }
            pb_up = f[col["total_bytes_up"]]; pb_down = f[col["total_bytes_down"]]
            pb_ip = f[col["total_ip_bytes"]]; pb_segs = f[col["total_segments"]]
            pb_clients = f[col["clients_connected"]]; pb_reconnects = f[col["reconnects"]]
            pb_records = f[col["total_tls_records"]]
        }
        {
            s = $1; up = ($3 in server); ip = $4; len = $5; fin = ($6 == 1 || $6 == "True")
            rst = ($7 == 1 || $7 == "True"); retrans = ($8 != "")
            if (!(s in seen)) { seen[s] = 1; order[++streams] = s; if (!up && !($2 in server)) foreign[s] = 1 }
            if (up && len > 0 && !(s in first)) first[s] = $9
            if (len > 0) payload_seen[s] = 1
            if (closed[s]) { close_segs[s]++; close_ip[s] += ip; close_payload[s] += len; next }
            if (fin || rst || ($12 in goaway)) { closed[s] = 1; close_segs[s]++; close_ip[s] += ip; close_payload[s] += len; next }
            segs[s]++; ipb[s] += ip; if (up) ipup[s] += ip; else ipdown[s] += ip
            # Header bytes beyond the 20 + 32 pushbench charges (SYN options, SACK blocks).
            if ($11 > 32) extra[s] += $11 - 32
            if (retrans) { rsegs[s]++; rbytes[s] += len; next }
            recs[s] += records[$12]
            if (up) pup[s] += len; else pdown[s] += len
        }
        # Splits one CSV line into f[1..n]; a field may be quoted ("mqtt(qos0,tcp)").
        function csvsplit(line, f,   n, c, i, q, field) {
            n = 0; field = ""; q = 0
            for (i = 1; i <= length(line); i++) {
                c = substr(line, i, 1)
                if (q) {
                    if (c == "\"" && substr(line, i + 1, 1) == "\"") { field = field c; i++ }
                    else if (c == "\"") q = 0
                    else field = field c
                } else if (c == "\"") q = 1
                else if (c == ",") { f[++n] = field; field = "" }
                else field = field c
            }
            f[++n] = field
            return n
        }
        # Why a connection is not a client connection ("" if it is one).
        function why_not_client(s,   i) {
            if (s in foreign) return "foreign"
            if (s in excluded) return excluded[s]
            for (i = 1; i <= np; i++) if (index(first[s], prefix[i]) == 1) return "prefix"
            # A TLS run: a client connection opens with a TLS handshake record (type 22).
            if (tls && (s in payload_seen) && index(first[s], "1603") != 1) return "cleartext"
            # No payload either way: a readiness probe (connect, close), never a client.
            if (!(s in payload_seen)) return "probe"
            return ""
        }
        function pct(pb, cap) { return cap == 0 ? (pb == 0 ? 0 : 100) : (pb - cap) * 100.0 / cap }
        function row(what, pb, cap, limit,   d, ok) {
            d = pct(pb, cap); ok = (d <= limit && d >= -limit)
            printf "  %-28s %14d %14d %+9.3f%% %6s%%  %s\n", what, pb, cap, d, limit, ok ? "ok" : "FAIL"
            if (!ok) {
                bad = 1
                fails = fails sprintf("FAIL %s: %s: pushbench %d, capture %d: pushbench %s by %d bytes (%+.3f%%, limit %s%%)\n",
                    label, what, pb, cap, pb > cap ? "over" : "under", pb > cap ? pb - cap : cap - pb, d, limit)
            }
        }
        END {
            if (bad) exit 1
            for (i = 1; i <= streams; i++) {
                s = order[i]
                why = why_not_client(s)
                if (why != "") { other++; left_out[why]++; continue }
                conns++; up_b += pup[s]; down_b += pdown[s]; ip_b += ipb[s]; ipu += ipup[s]; ipd += ipdown[s]
                sg += segs[s]; rs += rsegs[s]; rb += rbytes[s]; rc += recs[s]
                cs += close_segs[s]; cip += close_ip[s]; cp += close_payload[s]; ex += extra[s]
            }
            printf "%s: %d client connections (pushbench: %d clients + %d reconnects), %d other connections left out",
                label, conns, pb_clients, pb_reconnects, other
            sep = " ("
            for (why in left_out) { printf "%s%d %s", sep, left_out[why], why; sep = ", " }
            print (sep == ", " ? ")" : "")
            printf "  %-28s %14s %14s %10s %7s\n", "", "pushbench", "capture", "diff", "limit"
            row("TCP payload up (c->s)", pb_up, up_b, plimit)
            row("TCP payload down (s->c)", pb_down, down_b, plimit)
            # pushbench counts a retransmitted segment (its headers) but its payload once.
            row("IP bytes, both directions", pb_ip, ip_b - rb, iplimit)
            # Over MQTT pushbench does not see the records (rumqttc owns the stream).
            if (tls && pb_records != "") row("TLS records, both directions", pb_records, rc, 0)
            else if (tls) printf "  %-28s %14s %14d   (not counted by pushbench over MQTT)\n", "TLS records, both directions", "-", rc
            printf "  %-28s %14d %14d %+9.3f%%   (not checked)\n", "segments, both directions", pb_segs, sg, pct(pb_segs, sg)
            printf "  capture IP bytes per direction: up %d, down %d (pushbench counts the total only)\n", ipu, ipd
            printf "  TCP options beyond timestamps (SYN: MSS, SACK permitted, window scale): %d bytes; IP bytes less these and the retransmitted payload: pushbench %+d\n",
                ex, pb_ip - (ip_b - rb - ex)
            printf "  not counted by pushbench: close (HTTP/2 RST_STREAM/GOAWAY or FIN, its ACKs, anything after): %d segments, %d IP bytes, %d payload bytes; retransmitted payload: %d bytes in %d segments\n",
                cs, cip, cp, rb, rs
            if (conns == 0) { print "FAIL " label ": no client connection in the capture"; exit 1 }
            if (bad) { printf "%s", fails; exit 1 }
        }' "$results/segments.txt"
}

# Whatever happens, stop what this script started (by PID).
tshark_pid=""
run_pid=""
cleanup() {
    [[ -n $run_pid ]] && kill "$run_pid" 2>/dev/null
    [[ -n $tshark_pid ]] && kill -INT "$tshark_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT

failed=0
for label in "${transports[@]}"; do
    slug=$(tr -c 'A-Za-z0-9._-' '_' <<<"$label" | sed 's/_*$//')
    dir="$out/$slug"
    mkdir -p "$dir"
    chmod 0777 "$dir" 2>/dev/null || true
    pcap="$dir/capture.pcapng"
    # Headers and the first bytes of payload are enough: lengths come from the IP header.
    # MQTT needs more: over WebSocket, tshark must see the whole HTTP upgrade (it names the
    # "mqtt" subprotocol) to dissect the CONNECTs that follow.
    snaplen=160
    [[ $label == mqtt* ]] && snaplen=1024
    # TLS: whole segments, so that tshark can reassemble and decrypt the records.
    [[ -n $tls_run ]] && snaplen=65535
    tshark -i "$IFACE" -f tcp -s "$snaplen" -B 64 -q -w "$pcap" >"$dir/tshark.log" 2>&1 &
    tshark_pid=$!
    for _ in $(seq $((CAPTURE_START_TIMEOUT_S * 10))); do
        grep -q "Capturing on" "$dir/tshark.log" 2>/dev/null && break
        kill -0 "$tshark_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "Capturing on" "$dir/tshark.log" || { cat "$dir/tshark.log" >&2; die "tshark did not start capturing on $IFACE"; }
    sleep 0.5

    echo "== $label: running $scenario"
    : >"$dir/keys.log"
    if [[ -n $tls_run ]]; then
        SSLKEYLOGFILE="$dir/keys.log" "$bin" run "$scenario" --only "$label" --out "$dir" >"$dir/run.log" 2>&1 &
    else
        "$bin" run "$scenario" --only "$label" --out "$dir" >"$dir/run.log" 2>&1 &
    fi
    run_pid=$!
    : >"$dir/ports"
    printf '%s\n' "${external_ports[@]}" | sed '/^$/d' >>"$dir/ports"
    deadline=$((SECONDS + RUN_TIMEOUT_S))
    while kill -0 "$run_pid" 2>/dev/null && ((SECONDS < deadline)); do
        if [[ ${#external_ports[@]} -eq 0 ]]; then
            # Processes come and go while this looks: a vanished one is no error.
            mapfile -t pids < <(family "$run_pid" || true)
            listening_ports "${pids[@]}" >>"$dir/ports" || true
        fi
        sleep 0.05
    done
    if kill -0 "$run_pid" 2>/dev/null; then
        kill "$run_pid"
        die "$label: the run took longer than ${RUN_TIMEOUT_S}s"
    fi
    run_rc=0
    wait "$run_pid" || run_rc=$?
    run_pid=""
    sleep 0.5 # the last segments of the close
    kill -INT "$tshark_pid"
    wait "$tshark_pid" || true
    tshark_pid=""
    sort -un -o "$dir/ports" "$dir/ports"
    if [[ $run_rc -ne 0 ]]; then
        cat "$dir/run.log" >&2
        die "$label: pushbench run failed ($run_rc)"
    fi
    [[ -s $dir/ports ]] || die "$label: found no port the run's server listened on"
    if grep -Eq '[1-9][0-9]* packets? dropped' "$dir/tshark.log"; then
        echo "FAIL $label: the capture dropped packets: $(grep -E 'dropped' "$dir/tshark.log")"
        failed=1
        continue
    fi
    echo "   server port(s): $(paste -sd' ' "$dir/ports"); capture: $pcap"
    if compare "$label" "$pcap" "$dir/ports" "$dir"; then
        # The capture holds all of lo's TCP traffic: keep it only when asked or on failure.
        [[ -n ${KEEP_CAPTURE:-} ]] || rm -f "$pcap"
    else
        failed=1
    fi
done
if [[ $failed -ne 0 ]]; then
    echo "verify-capture: FAILED (work files in $out)"
    exit 1
fi
echo "verify-capture: every transport agrees with the capture (work files in $out)"
