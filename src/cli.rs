//! Command line: what each subcommand does, taught by its help.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::profile::HeaderProfile;
use crate::report::compare::MaxRegression;

/// Measures what it costs to push server updates to many clients by HTTP polling, long
/// polling, Server-Sent Events, WebSocket and MQTT (QoS 0/1/2, 3.1.1 or 5, over TCP or
/// WebSocket), over HTTP/1.1 or HTTP/2, in clear or over TLS, on loopback or across an emulated
/// link: bytes on the wire, end-to-end latency and the server's CPU and memory per delivered
/// message.
///
/// A scenario file (TOML) names the clients, the message stream and the transports to compare;
/// `pushbench run` measures each transport against the embedded hub and MQTT broker (or your
/// own server, through a preset or an adapter) and writes summary.csv and summary.json under
/// results/<scenario>/<UTC stamp>/.
///
/// Examples:
///   pushbench run scenarios/use-case-a.toml
///   pushbench validate scenarios/*.toml
///   pushbench serve --listen 127.0.0.1:8080 --headers websocket-org-2010
///   pushbench report results/use-case-a/<stamp>
///   pushbench compare results/baseline/ci-smoke.json results/ci-smoke/<stamp>
///   pushbench run sharded.toml --shard 1/3 --peers host0:7878   (one machine's share of a run)
///   pushbench merge shards/shard-*-of-3.json --out results/sharded
///
/// Exit codes: 0 ok; 1 error; 2 bad command line; 98 `compare` found a regression;
/// 99 a run broke a scenario threshold; 130 interrupted (Ctrl-C).
#[derive(Debug, Parser)]
#[command(name = "pushbench", version, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
    Validate(ValidateArgs),
    Serve(ServeArgs),
    Report(ReportArgs),
    Compare(CompareArgs),
    Merge(MergeArgs),
    /// A share of a run's clients, driven by `pushbench run` over stdin/stdout (internal).
    #[command(hide = true)]
    Worker,
    #[command(subcommand)]
    Link(LinkCommand),
}

/// Emulated links for servers pushbench does not start (needs root).
///
/// `pushbench link up scenarios/mobile-4g.toml` builds the scenario's `[network]` link and holds
/// it until Ctrl-C, printing the namespace to start the server in
/// (`ip netns exec NAMESPACE mosquitto -c …`) and the address the fleet reaches it at (use
/// it in target.urls of a scenario without `[network]`). `pushbench link clean` removes the
/// namespaces of links whose process is gone.
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Build the scenario's [network] link and hold it until Ctrl-C.
    Up {
        /// A scenario file with a [network] table.
        scenario: PathBuf,
    },
    /// Remove what crashed or killed runs left (namespaces named pb-PID-… whose PID is gone).
    Clean,
}

/// Run a scenario: every transport it lists, one after the other, then print a comparison
/// table and write summary.csv and summary.json, the charts and comparison.md (as
/// `pushbench report` does).
///
/// Each transport run ramps its clients in at the scenario's connect rate, publishes the
/// warm-up messages, then the measured ones, and waits (drain) for the last deliveries.
/// Results are written after every transport, so an interrupted run (Ctrl-C) keeps what it
/// measured.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file, e.g. scenarios/use-case-a.toml.
    pub scenario: PathBuf,
    /// Where to write the results [default: results/<scenario name>/<UTC stamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only the transports whose run label (`websocket+tls`), label or kind matches
    /// (repeatable), e.g. `--only websocket --only http-poll(minimal)`; a run label picks
    /// exactly that run.
    #[arg(long, value_name = "TRANSPORT")]
    pub only: Vec<String>,
    /// Print one JSON document on stdout (results, thresholds, exit code) instead of the
    /// table; progress and logs stay on stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub shard: crate::shard::ShardArgs,
}

/// Compare a run against a baseline: per transport and metric, the baseline, the current
/// value, the change in % and a verdict. Exits 98 if anything regressed.
///
/// Byte counts and delivery are compared exactly (any growth in bytes, any drop in delivery,
/// any rise in lost or duplicated messages is a regression), except interval polling's bytes
/// (+0.1%: its count of empty polls depends on timing). Latency may grow by 50%, and must
/// grow by more than --latency-slack (5 ms) to count. A transport in the baseline but not in the current run
/// is a regression; one only in the current run is reported.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline: a summary.json (or any results JSON) or a results folder holding one.
    pub baseline: PathBuf,
    /// The run to judge: a summary.json or a results folder holding one.
    pub current: PathBuf,
    /// How much worse a metric may get, in % of the baseline (repeatable), for every
    /// transport or for one kind or label, e.g. `latency_p99_us=20%`,
    /// `http-poll:bytes_per_message=0.5%`, `bytes_per_message=0%`.
    #[arg(long, value_name = "[TRANSPORT:]METRIC=PCT")]
    pub max_regression: Vec<MaxRegression>,
    /// Latency growth smaller than this never counts as a regression, whatever the
    /// percentage: raise it on a shared or busy machine.
    #[arg(long, value_name = "DURATION", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub latency_slack: Duration,
    /// Output: an aligned table, or markdown for a CI job summary.
    #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
    pub format: CompareFormat,
    /// Print one JSON document on stdout instead (rows, one-sided transports, regressions,
    /// exit code).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// How `compare` prints its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Table,
    Md,
}

/// Render the charts and tables of finished runs from their result files alone (no re-run).
///
/// Writes use-cases.png and use-cases-log.png (bit/s per use case beside the article's
/// bars), bytes-per-message.png, latency.png, latency-distribution.png, cost.png and
/// comparison.md (measured vs the article, with the reasons; a table of faults when runs had
/// any), and links.png (latency across link profiles) for runs over a link. `pushbench run`
/// writes the same files at its end. Several inputs are drawn together, e.g. use cases A, B
/// and C, or the runs of one scenario over several link profiles.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Results directories (results/<scenario>/<stamp>) or summary.json files.
    #[arg(required = true, value_name = "RESULTS")]
    pub inputs: Vec<PathBuf>,
    /// Where to write the charts [default: the input's directory; required for several inputs].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Check scenario files without running them: every error names the file, line, column and
/// field; a valid file prints a summary of what a run would do.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// One or more scenario files.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

/// Start the embedded hub alone, as a target for runs elsewhere (`kind = "external"`).
///
/// Endpoints: POST /pub/{channel} publishes; GET /sub/poll/{channel} interval-polls (200 with
/// the next message, or 304); GET /sub/longpoll/{channel} long-polls; GET /sub/ws/{channel}
/// upgrades to a WebSocket that receives every message as one binary frame;
/// GET /sub/sse/{channel} streams every message as a Server-Sent Event; GET /stats
/// returns the hub's counters as JSON. It stops on Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Response header profile of poll and long-poll answers.
    #[arg(long, value_enum, default_value_t = HeaderProfile::Minimal)]
    pub headers: HeaderProfile,
    /// How long a long-poll request is held before it is answered 304.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub longpoll_timeout: Duration,
    /// How long a connection may take to send a complete request header, counted from
    /// accept or from the previous response (so idle keep-alive connections too), before it
    /// is closed and counted (`header_timeouts` in /stats). A long poll being held is not cut.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Messages kept per channel for pollers that fall behind.
    #[arg(long, default_value_t = 1024)]
    pub history: usize,
    /// Messages a WebSocket subscriber may fall behind before it is dropped (and counted).
    #[arg(long, default_value_t = 1024)]
    pub ws_queue: usize,
    /// Send a comment on an event stream (GET /sub/sse/{channel}) idle this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sse_keepalive: Option<Duration>,
    /// Also start the embedded MQTT broker (rumqttd) on two free loopback ports, one for
    /// MQTT over TCP and one for MQTT over WebSocket (printed on the second line).
    #[arg(long)]
    pub broker: bool,
    /// The broker's ports (MQTT, WebSocket, MQTT 5) instead of free ones: a restarted
    /// target takes the ports its clients know.
    #[arg(
        long,
        hide = true,
        value_name = "TCP,WS,V5",
        value_delimiter = ',',
        requires = "broker"
    )]
    pub broker_ports: Option<Vec<u16>>,
    /// Also accept TLS on the same port, with a self-signed certificate generated at start
    /// (printed, base64 DER, on the line after the address).
    #[arg(long)]
    pub tls: bool,
    /// Be a GRIP origin behind Pushpin: long polls (GET /sub/longpoll/{channel}) are answered
    /// at once when the client's If-None-Match is behind, otherwise held with
    /// `Grip-Hold: response` and `Grip-Channel: bench.{channel}; prev-id=<position>`; every
    /// message published to the hub is forwarded, with its id and prev-id, to this Pushpin
    /// publish API (e.g. http://127.0.0.1:5561/publish/).
    #[arg(long, value_name = "PUBLISH_URL")]
    pub grip: Option<String>,
    /// Run on one thread: for one of several shards started by `pushbench run`.
    #[arg(long, hide = true)]
    pub single_thread: bool,
}

/// `serve --headers` takes the named profiles (a custom one needs a scenario's headers).
impl ValueEnum for HeaderProfile {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::NAMED
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Self::NAMED
            .contains(self)
            .then(|| PossibleValue::new(self.name()))
    }
}

/// Merge the shard results of one run (`pushbench run --shard I/N` on each machine) into one
/// result, exactly as if one machine had run it: counts and bytes summed, latency histograms
/// merged, each shard's cost and clock offset listed. Thresholds are judged on the merged
/// result; summary.csv, summary.json, the charts and comparison.md are written as by `run`.
/// Refuses results of different runs or plans; names the shards that are missing (their
/// clients' messages count as lost, and the run fails).
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shard results (shard-I-of-N.json), one per shard.
    #[arg(required = true, value_name = "SHARD_RESULTS")]
    pub shards: Vec<PathBuf>,
    /// Where to write the merged results.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Mark the latency as uncertain (`latency_clock_uncertain`) when the shards' clock
    /// corrections may be off by more than this.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = humantime::parse_duration)]
    pub max_clock_uncertainty: Duration,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}
