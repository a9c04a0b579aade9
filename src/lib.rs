//! pushbench measures what it costs to push server updates to many clients by HTTP polling,
//! long polling, WebSocket and MQTT: bytes on the wire, end-to-end latency and the server's
//! cost per delivered message.
//!
//! `run` executes a parsed command line; tests drive the same library in-process
//! (`runner::run_transport` with `targets::Launch::InProcess`). ARCHITECTURE.md maps the code.

pub mod adapter;
mod app;
pub mod cli;
pub mod clock;
pub mod fleet;
pub mod last_will;
pub mod link;
pub mod observe;
pub mod payload;
pub mod plan;
pub mod profile;
pub mod publisher;
pub mod report;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod shard;
pub mod stats;
pub mod sys;
pub mod targets;
pub mod thresholds;
pub mod tls;
pub mod transport;
pub mod wire;

pub use app::EXIT_INTERRUPTED;

/// Runs the command line's subcommand; the exit code says how it went.
pub fn run(cli: cli::Cli) -> anyhow::Result<std::process::ExitCode> {
    app::execute(cli.command)
}
