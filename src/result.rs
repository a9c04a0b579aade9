//! What a run measured: the contract between measuring and reporting.
//!
//! Flat on purpose: one `RunResult` is one CSV row and one JSON object. Units are in the names.
//! `Option` fields are empty in CSV and `null` in JSON when the run could not measure them.

use serde::{Deserialize, Deserializer, Serialize};

/// One transport of one scenario. Fields missing from an older results file read as their
/// defaults, so baselines stay comparable as columns are added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunResult {
    pub scenario: String,
    /// Transport label, e.g. `http-poll(websocket-org-2010)`.
    pub transport: String,
    /// Transport kind: `http-poll`, `http-longpoll`, `websocket`.
    pub transport_kind: String,
    /// `embedded` or the external base URL(s).
    pub target: String,
    /// A short name of the target (`embedded`, `target.name`, or the first URL's host:port):
    /// labels say `transport@name` where runs of several targets meet.
    pub target_name: String,
    /// UTC start of the run, RFC 3339.
    pub started_at: String,
    /// False when the run was interrupted or failed: its figures cover only what it saw.
    pub complete: bool,
    pub clients: u64,
    pub channels: u64,
    pub payload_bytes: u64,

    // Delivery, over the measured messages of every client.
    pub messages_expected: u64,
    pub messages_delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub clients_with_loss: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub delivery_ratio: f64,

    // Wire bytes over each client's byte window (see README: "What is measured").
    /// Messages delivered inside the byte windows: the divisor of the per-message figures.
    pub window_messages: u64,
    /// Client→server TCP payload bytes in the windows, all clients.
    pub window_bytes_up: u64,
    /// Server→client TCP payload bytes in the windows, all clients.
    pub window_bytes_down: u64,
    /// TCP payload bytes (both directions) per delivered message.
    #[serde(deserialize_with = "nan_if_null")]
    pub bytes_per_message: f64,
    /// `bytes_per_message` − payload: what the transport costs beyond the message itself.
    #[serde(deserialize_with = "nan_if_null")]
    pub overhead_bytes_per_message: f64,
    /// Payload plus IP and TCP headers of every segment (pure ACKs included) per message.
    #[serde(deserialize_with = "nan_if_null")]
    pub ip_bytes_per_message: f64,
    /// The kernel's own TCP payload count per message (`TCP_INFO`): cross-check of `bytes_per_message`.
    #[serde(deserialize_with = "nan_if_null")]
    pub kernel_bytes_per_message: f64,
    /// Client→server TCP payload bytes of the whole run (setup, warm-up, window, drain), all
    /// clients, counted up to the moment each connection closed (its FIN not included).
    pub total_bytes_up: u64,
    /// Server→client TCP payload bytes of the whole run, all clients.
    pub total_bytes_down: u64,
    /// IP-level bytes of the whole run, all clients (segments × headers + kernel payload).
    pub total_ip_bytes: u64,
    /// TCP segments of the whole run, both directions, all clients.
    pub total_segments: u64,
    /// Exchanges (polls answered, frames, events) of the whole run, all clients: the divisor
    /// of a generator's CPU per request.
    pub total_exchanges: u64,
    /// Bytes to connect and subscribe, per connected client (WebSocket upgrade, first poll).
    #[serde(deserialize_with = "nan_if_null")]
    pub setup_bytes_per_client: f64,
    /// IP-level setup bytes per connected client (adds the TCP handshake).
    #[serde(deserialize_with = "nan_if_null")]
    pub setup_ip_bytes_per_client: f64,
    /// TCP payload bits per second, all clients, over the measured window.
    #[serde(deserialize_with = "nan_if_null")]
    pub bandwidth_bps: f64,
    /// For a rate-scaled run (fewer messages per client than the use case asks): the bandwidth
    /// the measured bytes per message come to at the use case's rate. Empty for runs at the
    /// asked-for rate; never mixed up with `bandwidth_bps`, which is always measured.
    pub projected_bandwidth_bps: Option<f64>,
    /// IP-level bits per second, all clients, over the measured window.
    #[serde(deserialize_with = "nan_if_null")]
    pub ip_bandwidth_bps: f64,
    /// HTTP request header bytes per poll inside the windows: HTTP/1.1 request heads through
    /// the blank line, HTTP/2 HEADERS and CONTINUATION frames with their 9-byte frame headers
    /// (what HPACK leaves). Empty for transports without HTTP exchanges.
    #[serde(deserialize_with = "nan_if_null")]
    pub request_header_bytes_per_exchange: f64,
    /// HTTP response header bytes per poll inside the windows, counted as the request's.
    #[serde(deserialize_with = "nan_if_null")]
    pub response_header_bytes_per_exchange: f64,
    /// Interval polling: the header bytes of each client's first poll (made while connecting),
    /// request and response, counted as above; over HTTP/2 the cost before HPACK has indexed
    /// anything.
    #[serde(deserialize_with = "nan_if_null")]
    pub first_request_header_bytes: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub first_response_header_bytes: f64,
    /// Requests (polls) or frames per client per second inside the window, as achieved.
    #[serde(deserialize_with = "nan_if_null")]
    pub exchanges_per_client_per_s: f64,
    /// Polls per client per second asked for (interval polling only).
    pub exchanges_requested_per_client_per_s: Option<f64>,
    /// True when the run could not hold what was asked: the publisher's achieved rate fell
    /// under 95% of the requested one or over 1% of its messages left late, pollers polled
    /// at under 95% of their rate, or the median latency exceeded one message interval
    /// (deliveries fell behind the stream). Its figures describe the slower run it was.
    pub saturated: bool,
    /// What went wrong with the run that was not the rate: e.g. "target stopped answering at
    /// 5.1 s: 200 connections closed, 151 publishes failed". Empty when nothing did.
    pub fault: String,

    // End-to-end latency: receive time − intended publish time.
    /// Empty (not measured) when nothing was delivered: a latency of no message is not 0 µs.
    pub latency_p50_us: Option<u64>,
    pub latency_p90_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
    pub latency_p999_us: Option<u64>,
    pub latency_max_us: Option<u64>,
    #[serde(deserialize_with = "nan_if_null")]
    pub latency_mean_us: f64,
    /// The whole latency histogram (HdrHistogram V2 + deflate, base64), for distribution
    /// charts and lossless merging. JSON only: the CSV leaves it out.
    pub latency_histogram: String,

    // Publisher.
    #[serde(deserialize_with = "nan_if_null")]
    pub publish_rate_requested_per_s: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub publish_rate_achieved_per_s: f64,
    /// Messages the publisher sent later than one message interval after their intended time.
    pub publish_late: u64,
    pub publish_errors: u64,
    /// Length of the measured window, from the publish of the last warm-up message to the last measured one.
    #[serde(deserialize_with = "nan_if_null")]
    pub window_s: f64,

    // Connections.
    pub clients_connected: u64,
    pub connect_failures: u64,
    pub reconnects: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub connect_s: f64,
    /// Connections made in the connect phase (first connects and reconnects) ÷ `connect_s`:
    /// how fast they were taken in, at most the scenario's `connect_rate`.
    #[serde(deserialize_with = "nan_if_null")]
    pub connects_per_s: f64,
    /// Last Will runs: how soon after the cut the broker had to publish the wills (1.5 ×
    /// keep-alive for clients that fell silent; 0 for closed connections). Latency columns
    /// then measure will arrival after the cut.
    pub will_expected_within_us: Option<u64>,
    /// MQTT: the lowest QoS the broker granted any subscriber (MQTT 3.1.1 §3.9.3: it may
    /// grant less than asked; the transport label then shows both, e.g. `mqtt(qos2→1,tcp)`).
    pub qos_granted: Option<u64>,
    /// WebSocket subscribers the embedded hub dropped for falling behind.
    pub hub_dropped_slow: Option<u64>,
    /// Connections the embedded hub closed for not completing a request header within its
    /// `--header-timeout` (idle keep-alive connections included).
    pub hub_header_timeouts: Option<u64>,

    // Cost.
    /// CPU seconds of the measuring process (clients and publisher) during the run.
    #[serde(deserialize_with = "nan_if_null")]
    pub fleet_cpu_s: f64,
    pub fleet_peak_rss_bytes: u64,
    /// (peak RSS − RSS at the start of the run) ÷ clients: memory the clients added.
    #[serde(deserialize_with = "nan_if_null")]
    pub fleet_rss_bytes_per_client: f64,
    /// Cores the fleet kept busy on average from the first connect to the end of the drain
    /// (fleet CPU seconds ÷ wall seconds); compare with `machine_cores`.
    #[serde(deserialize_with = "nan_if_null")]
    pub fleet_cpu_cores: f64,
    /// Cores the measuring process could run on.
    pub machine_cores: u64,
    /// The run was `saturated` and the fleet, not the target, was at the limit: fleet and
    /// target kept 90% or more of the machine's cores busy and the fleet used at least as much
    /// CPU as the target. Split the fleet over machines or give it more cores.
    pub fleet_saturated: bool,
    /// Fleet CPU µs per delivered message.
    #[serde(deserialize_with = "nan_if_null")]
    pub fleet_cpu_us_per_message: f64,
    /// Fleet CPU µs per message delivered once connected: the run's CPU less the connect
    /// phase's, ÷ every message delivered (warm-up and drain included, not only the measured
    /// ones): what delivering costs apart from connecting, as the floor counts it.
    #[serde(deserialize_with = "nan_if_null")]
    pub fleet_delivery_cpu_us_per_message: f64,
    /// Worker processes the fleet used (0: the clients ran in the measuring process).
    pub fleet_workers: u64,
    /// Workers that died or never reported; their clients' messages count as lost.
    pub fleet_workers_lost: u64,
    /// Measured messages each worker delivered (JSON only): they add up to
    /// `messages_delivered`.
    pub fleet_worker_delivered: Vec<u64>,
    /// CPU seconds of the embedded hub process; empty when the target is external or in-process.
    pub target_cpu_s: Option<f64>,
    pub target_peak_rss_bytes: Option<u64>,
    /// Embedded target CPU µs per delivered message.
    #[serde(deserialize_with = "nan_if_null")]
    pub target_cpu_us_per_message: f64,
    /// The same after the connect phase, where the target's CPU is measured.
    #[serde(deserialize_with = "nan_if_null")]
    pub target_delivery_cpu_us_per_message: f64,
    /// (Target peak RSS − its RSS before the clients connected) ÷ connected clients: the memory
    /// a connection costs the server.
    #[serde(deserialize_with = "nan_if_null")]
    pub target_rss_bytes_per_connection: f64,
    /// CPU µs the fleet (coordinator and workers) used in the connect phase ÷ connections
    /// made in it: the client side of a connect, handshakes included.
    pub fleet_connect_cpu_us_per_connection: Option<f64>,
    /// The same for the target, where its CPU is measured (`target_cpu_s`); empty otherwise.
    pub target_connect_cpu_us_per_connection: Option<f64>,
    /// Target servers (embedded shards, or external URLs used); each got every message.
    pub target_shards: u64,
    /// CPU seconds of each embedded shard (JSON only).
    pub target_shard_cpu_s: Vec<f64>,
    /// Peak RSS of each embedded shard (JSON only).
    pub target_shard_peak_rss_bytes: Vec<u64>,

    // A run split over machines (`--shard`, then `merge`); empty for a run on one machine.
    /// Shards the run was split over (0: one machine).
    pub shards: u64,
    /// Shards whose result is missing (JSON only): their clients' messages count as lost.
    pub shards_lost: Vec<u64>,
    /// Per shard, in shard order, null for a missing one (JSON only): fleet CPU seconds, fleet
    /// peak RSS, measured messages delivered, the clock's offset to the publisher's (µs, this
    /// shard's minus the publisher's) and its uncertainty (± half the best round trip, µs).
    pub shard_fleet_cpu_s: Vec<Option<f64>>,
    pub shard_fleet_peak_rss_bytes: Vec<Option<u64>>,
    pub shard_delivered: Vec<Option<u64>>,
    pub shard_clock_offset_us: Vec<Option<f64>>,
    pub shard_clock_uncertainty_us: Vec<Option<f64>>,
    /// How far the clock corrections applied to the latencies may be off, µs (the worst
    /// shard's): the latency columns are only this exact.
    #[serde(deserialize_with = "nan_if_null")]
    pub clock_uncertainty_us: f64,
    /// `clock_uncertainty_us` is over the limit `merge` was given: read the latencies as
    /// approximate.
    pub latency_clock_uncertain: bool,
    // The link (`[network]`); empty on loopback.
    /// The link's named profile, `custom`, or empty without a link.
    pub link_profile: String,
    /// Configured round trip: the delays of both directions, ms.
    #[serde(deserialize_with = "nan_if_null")]
    pub link_rtt_configured_ms: f64,
    /// Median of the target's connections' smoothed TCP RTT at the end of publishing, ms.
    #[serde(deserialize_with = "nan_if_null")]
    pub link_rtt_measured_ms: f64,
    /// Target-side retransmitted ÷ sent TCP segments, all connections, at the same moment.
    #[serde(deserialize_with = "nan_if_null")]
    pub link_retrans_ratio: f64,
    /// The link's conditions and emulator, and what its TCP connections saw (JSON object).
    pub link: Option<LinkResult>,
    /// What was counted around each scheduled fault, in order.
    pub link_faults: Vec<FaultResult>,
    // TLS (NaN on a cleartext run).
    /// `1.3` or `1.2`, with `insecure` when the server's certificate was not checked; empty
    /// on a cleartext run.
    pub tls: String,
    /// (Wire bytes − plaintext bytes above TLS) ÷ messages, in the window: what the records
    /// add (header, inner content type, AEAD tag, TLS 1.2's explicit nonce).
    #[serde(deserialize_with = "nan_if_null")]
    pub tls_overhead_bytes_per_message: f64,
    /// TLS records in both directions ÷ messages, in the window.
    #[serde(deserialize_with = "nan_if_null")]
    pub tls_records_per_message: f64,
    /// Of `setup_bytes_per_client`, what is not plaintext above TLS: the handshakes.
    #[serde(deserialize_with = "nan_if_null")]
    pub tls_setup_bytes_per_client: f64,
    /// TLS records of the whole run, both directions, all clients, over the span of
    /// `total_bytes_up`: what a capture's record count is checked against. `None` on a
    /// cleartext run and over MQTT (rumqttc owns that stream).
    pub total_tls_records: Option<u64>,
}

/// A run's link: configured and measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkResult {
    pub configured: crate::link::LinkRecord,
    pub tcp: Option<crate::link::check::TcpHealth>,
    /// What crossed the link while the run published; empty in results that predate it.
    #[serde(default)]
    pub throughput: Option<crate::link::throughput::Throughput>,
}

/// One scheduled fault and what the fleet's counters did around it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultResult {
    /// `blackhole`, `cut` or `restart`.
    pub kind: String,
    /// Start, seconds after the first publish, as carried out.
    pub at_s: f64,
    /// How long it lasted, as carried out (0 for a cut).
    pub duration_s: f64,
    /// Why it could not be carried out; empty when it was.
    pub error: String,
    /// Deliveries (all clients) while the fault lasted.
    pub delivered_during: u64,
    /// Reconnects from the fault's start until the next fault or the end of publishing.
    pub reconnects_after: u64,
    /// What those reconnects cost before their first exchange (handshakes, subscriptions, and
    /// what a resumed MQTT session's broker sent before its SUBACK): TCP payload bytes both
    /// ways, all clients; empty in results that predate it.
    #[serde(default)]
    pub reconnect_bytes_after: Option<u64>,
    /// From the fault's end to the first delivery after it (any client), ms; empty when
    /// nothing was delivered before publishing ended. Sampled every 10 ms.
    pub first_delivery_after_ms: Option<f64>,
    /// When the fault ended, Unix µs (to match against the clients' silences).
    pub ended_unix_us: u64,
    /// Clients whose longest silence spans the fault's end (they recovered after it). Each
    /// client keeps its one longest silence: with several faults, recovery is counted for
    /// the one that silenced it longest.
    pub clients_recovered: u64,
    /// Per client, from the fault's end to its first delivery after it, ms.
    pub recovery_p50_ms: Option<f64>,
    pub recovery_p99_ms: Option<f64>,
    pub recovery_max_ms: Option<f64>,
    /// Publishes that failed while the fault lasted (a restart's target is down): every
    /// subscriber of their channel misses each of them.
    #[serde(default)]
    pub publishes_failed: u64,
    /// The measured messages due while the fault lasted (scheduled between its start and
    /// end; one per subscriber), and what became of them; empty in results that predate it.
    #[serde(default)]
    pub due_messages: Option<crate::fleet::spans::FaultDelivery>,
}

impl RunResult {
    /// A result in which nothing is measured yet: every figure NaN (null in JSON, empty in
    /// CSV) and every optional one empty, so that a figure a run does not measure can never
    /// read as a measured zero. (`Default` keeps zeros: it fills the columns that older
    /// results files lack.)
    pub fn not_measured() -> RunResult {
        RunResult {
            delivery_ratio: f64::NAN,
            bytes_per_message: f64::NAN,
            overhead_bytes_per_message: f64::NAN,
            ip_bytes_per_message: f64::NAN,
            kernel_bytes_per_message: f64::NAN,
            setup_bytes_per_client: f64::NAN,
            setup_ip_bytes_per_client: f64::NAN,
            bandwidth_bps: f64::NAN,
            ip_bandwidth_bps: f64::NAN,
            exchanges_per_client_per_s: f64::NAN,
            request_header_bytes_per_exchange: f64::NAN,
            response_header_bytes_per_exchange: f64::NAN,
            first_request_header_bytes: f64::NAN,
            first_response_header_bytes: f64::NAN,
            latency_mean_us: f64::NAN,
            publish_rate_requested_per_s: f64::NAN,
            publish_rate_achieved_per_s: f64::NAN,
            window_s: f64::NAN,
            connect_s: f64::NAN,
            connects_per_s: f64::NAN,
            fleet_cpu_s: f64::NAN,
            fleet_rss_bytes_per_client: f64::NAN,
            fleet_cpu_us_per_message: f64::NAN,
            fleet_delivery_cpu_us_per_message: f64::NAN,
            fleet_cpu_cores: f64::NAN,
            target_cpu_us_per_message: f64::NAN,
            target_delivery_cpu_us_per_message: f64::NAN,
            target_rss_bytes_per_connection: f64::NAN,
            clock_uncertainty_us: f64::NAN,
            link_rtt_configured_ms: f64::NAN,
            link_rtt_measured_ms: f64::NAN,
            link_retrans_ratio: f64::NAN,
            tls_overhead_bytes_per_message: f64::NAN,
            tls_records_per_message: f64::NAN,
            tls_setup_bytes_per_client: f64::NAN,
            ..RunResult::default()
        }
    }
}

/// Reads a figure written as `null` back as NaN: NaN (nothing to measure, e.g. bytes per
/// message of a run that delivered nothing) has no JSON form and is written as `null`.
fn nan_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every figure of a fresh result is null: a new `f64` column left out of
    /// `not_measured` would show up here as 0.
    #[test]
    fn nothing_reads_as_measured_before_it_is() {
        let serde_json::Value::Object(columns) =
            serde_json::to_value(RunResult::not_measured()).unwrap()
        else {
            panic!("a result serializes as an object");
        };
        let floats: Vec<&String> = columns
            .iter()
            .filter(|(_, v)| v.as_number().is_some_and(|n| n.is_f64()))
            .map(|(k, _)| k)
            .collect();
        assert!(floats.is_empty(), "measured before measuring: {floats:?}");
        assert!(columns["latency_p50_us"].is_null());
        assert!(columns["target_cpu_s"].is_null());
    }
}
