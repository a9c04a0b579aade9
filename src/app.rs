//! The subcommands: glue between the command line, the library and the reporters.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    Command, CompareArgs, CompareFormat, MergeArgs, ReportArgs, RunArgs, ServeArgs, ValidateArgs,
};
use crate::plan::{Plan, RunPlan};
use crate::report::compare::{self, Comparison, EXIT_REGRESSION};
use crate::report::{self, console, progress::Bars};
use crate::result::RunResult;
use crate::runner::{self, RunOptions};
use crate::targets::hub::{GripConfig, Hub, HubConfig};
use crate::targets::{CERTIFICATE_PREFIX, Launch, READY_PREFIX, broker, broker_line, tls_front};
use crate::thresholds::{self, EXIT_THRESHOLDS_BROKEN, Outcome};
use crate::{scenario, sys};

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT), after writing what it measured.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs one subcommand to its end.
pub fn execute(command: Command) -> anyhow::Result<ExitCode> {
    // A worker or a target shard is one of several processes sharing the cores: one thread
    // each spares them the cross-thread wake-ups and work stealing of a multi-thread runtime.
    let one_of_many = match &command {
        Command::Worker => true,
        Command::Serve(args) => args.single_thread,
        _ => false,
    };
    let mut builder = if one_of_many {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            Command::Run(args) => run(args).await,
            Command::Validate(args) => validate(&args),
            Command::Serve(args) => serve(args).await,
            Command::Worker => crate::fleet::worker::serve()
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Report(args) => render_report(&args),
            Command::Compare(args) => compare(&args),
            Command::Merge(args) => merge(&args),
            Command::Link(command) => crate::link::hold::execute(command).await,
        }
    })
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for path in &args.scenarios {
        match scenario::load(path) {
            Ok(plan) => println!("{}: ok\n{}", path.display(), scenario::describe(&plan)),
            Err(e) => {
                // The whole chain: a file that cannot be read says why.
                let e = anyhow::Error::from(e);
                eprintln!("error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = scenario::load(&args.scenario)?;
    let transports = selected(&plan, &args.only)?;
    if plan.network.is_some() && !crate::link::command::has_net_admin() {
        return Err(crate::link::LinkError::NotRoot.into());
    }
    let fd_limit = sys::raise_fd_limit();
    let out = args.out.clone().unwrap_or_else(|| default_out_dir(&plan));
    let options = RunOptions {
        launch: Launch::ChildProcess {
            exe: std::env::current_exe().context("locating the pushbench binary")?,
        },
        interrupt: CancellationToken::new(),
    };
    watch_ctrl_c(options.interrupt.clone());
    if let Some(index) = args.shard.shard {
        let path = crate::shard::run(
            &plan,
            &args.scenario,
            &transports,
            (&args.shard, index),
            &out,
            &options,
            &Bars::default(),
        )
        .await?;
        println!("{}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{}: {} clients, {} transport run(s), open-files limit {fd_limit}; results in {}",
        plan.name,
        plan.clients,
        transports.len(),
        out.display()
    );

    let bars = Bars::default();
    let mut results: Vec<RunResult> = Vec::new();
    let mut failures = 0;
    for transport in transports {
        match runner::run_transport(&plan, transport, &options, &bars).await {
            Ok(result) => {
                eprintln!("{}", one_line(&result));
                // A fault is a failed run whose figures are still worth keeping.
                if !result.fault.is_empty() {
                    eprintln!("error: {}: {}", result.transport, result.fault);
                    failures += 1;
                }
                results.push(result);
                failures += write(&out, &results);
            }
            Err(e) => {
                eprintln!("error: {} failed: {e:#}", transport.label());
                failures += 1;
            }
        }
        if options.interrupt.is_cancelled() {
            break;
        }
    }
    if !results.is_empty() {
        failures += print_errors(report::write_reports(&out, &results).1);
    }
    let outcomes = thresholds::evaluate(&plan.thresholds, &results);
    let code = run_exit_code(options.interrupt.is_cancelled(), failures, &outcomes);
    if args.json {
        let report = RunReport {
            scenario: &plan.name,
            out: &out,
            exit_code: code,
            results: &results,
            thresholds: &outcomes,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_run(&results, &outcomes, &out);
    }
    Ok(ExitCode::from(code))
}

/// `merge`: one result from the shards' results, reported and judged as `run` does.
fn merge(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let max_us = args.max_clock_uncertainty.as_secs_f64() * 1e6;
    let merged = crate::shard::merge::merge_files(&args.shards, max_us)?;
    if !merged.missing.is_empty() {
        let missing: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
        let left: Vec<String> = merged.left_mid_run.iter().map(u32::to_string).collect();
        let left = if left.is_empty() {
            String::new()
        } else {
            format!(
                "; the publisher saw shard(s) {} leave mid-run",
                left.join(", ")
            )
        };
        eprintln!(
            "error: missing shard result(s): {} of {} (their clients count as lost){left}",
            missing.join(", "),
            merged.result.shards
        );
    }
    let results = [merged.result];
    let mut failures = usize::from(!results[0].fault.is_empty());
    failures += write(&args.out, &results);
    failures += print_errors(report::write_reports(&args.out, &results).1);
    let outcomes = thresholds::evaluate(&merged.plan.thresholds, &results);
    let code = run_exit_code(false, failures, &outcomes);
    if args.json {
        let report = RunReport {
            scenario: &merged.plan.name,
            out: &args.out,
            exit_code: code,
            results: &results,
            thresholds: &outcomes,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_run(&results, &outcomes, &args.out);
    }
    Ok(ExitCode::from(code))
}

/// An interruption outranks a failure, which outranks a broken threshold: a threshold is
/// only judged on what was measured.
fn run_exit_code(interrupted: bool, failures: usize, outcomes: &[Outcome]) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if failures > 0 {
        1
    } else if outcomes.iter().any(|o| !o.held) {
        EXIT_THRESHOLDS_BROKEN
    } else {
        0
    }
}

/// What `run --json` prints: one document a pipeline can parse.
#[derive(serde::Serialize)]
struct RunReport<'a> {
    scenario: &'a str,
    out: &'a Path,
    exit_code: u8,
    results: &'a [RunResult],
    thresholds: &'a [Outcome],
}

fn print_run(results: &[RunResult], outcomes: &[Outcome], out: &Path) {
    println!("{}", console::table(results));
    if !outcomes.is_empty() {
        println!("{}", console::thresholds(outcomes));
    }
    if !results.is_empty() {
        println!("results: {}", out.display());
    }
}

/// What `compare --json` prints.
#[derive(serde::Serialize)]
struct CompareReport<'a> {
    baseline: &'a Path,
    current: &'a Path,
    exit_code: u8,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

fn compare(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    let baseline = compare::read_results(&args.baseline).context("reading the baseline")?;
    let current = compare::read_results(&args.current).context("reading the current results")?;
    let rules = compare::Rules {
        max_regression: args.max_regression.clone(),
        latency_slack_us: args.latency_slack.as_secs_f64() * 1e6,
    };
    let comparison = compare::compare(&baseline, &current, &rules);
    let code = if comparison.regressions > 0 {
        EXIT_REGRESSION
    } else {
        0
    };
    if args.json {
        let report = CompareReport {
            baseline: &args.baseline,
            current: &args.current,
            exit_code: code,
            comparison: &comparison,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!(
            "{}",
            match args.format {
                CompareFormat::Table => compare::table(&comparison),
                CompareFormat::Md => compare::markdown(&comparison),
            }
        );
    }
    Ok(ExitCode::from(code))
}

/// The scenario's runs, filtered by `--only`; an unknown name is an error. A name selects the
/// runs whose run label it is (`websocket` is then the cleartext one beside `websocket+tls`);
/// a name that is no run label selects by transport label or kind.
fn selected<'p>(plan: &'p Plan, only: &[String]) -> anyhow::Result<Vec<&'p RunPlan>> {
    if only.is_empty() {
        return Ok(plan.transports.iter().collect());
    }
    let matches = |run: &RunPlan, name: &str| {
        if plan.transports.iter().any(|r| r.label() == name) {
            return run.label() == name;
        }
        run.transport.label() == name || run.transport.kind() == name
    };
    if let Some(unknown) = only
        .iter()
        .find(|name| !plan.transports.iter().any(|run| matches(run, name)))
    {
        let known: Vec<String> = plan.transports.iter().map(RunPlan::label).collect();
        anyhow::bail!(
            "--only {unknown}: the scenario has no such transport (it has: {})",
            known.join(", ")
        );
    }
    Ok(plan
        .transports
        .iter()
        .filter(|run| only.iter().any(|name| matches(run, name)))
        .collect())
}

fn default_out_dir(plan: &Plan) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    Path::new("results").join(&plan.name).join(stamp)
}

/// Writes the summaries so far; returns how many reporters failed (their errors printed).
fn write(out: &Path, results: &[RunResult]) -> usize {
    print_errors(report::write_summaries(out, results).1)
}

/// Prints the errors of failed reporters; returns how many there were.
fn print_errors(errors: Vec<anyhow::Error>) -> usize {
    for e in &errors {
        eprintln!("error: {e:#}");
    }
    errors.len()
}

/// Several inputs to `report` and no `--out`: there is no one obvious place for the charts.
#[derive(Debug, thiserror::Error)]
#[error("{0} inputs: say where the charts go with --out DIR")]
struct ReportOutNeeded(usize);

fn render_report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let results = report::read_inputs(&args.inputs)?;
    let out = match (&args.out, args.inputs.as_slice()) {
        (Some(out), _) => out.clone(),
        (None, [input]) if input.is_dir() => input.clone(),
        (None, [input]) => input.parent().map_or_else(PathBuf::new, Path::to_path_buf),
        (None, inputs) => return Err(ReportOutNeeded(inputs.len()).into()),
    };
    let (written, errors) = report::write_reports(&out, &results);
    for path in &written {
        println!("{}", path.display());
    }
    Ok(if print_errors(errors) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn one_line(r: &RunResult) -> String {
    format!(
        "{}: {}/{} delivered, {:.2} B/message ({:.2} overhead), p99 {}",
        r.transport,
        r.messages_delivered,
        r.messages_expected,
        r.bytes_per_message,
        r.overhead_bytes_per_message,
        console::latency(r.latency_p99_us)
    )
}

fn watch_ctrl_c(interrupt: CancellationToken) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: ending the current run and writing what it measured");
            interrupt.cancel();
        }
    });
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = HubConfig {
        profile: args.headers,
        longpoll_timeout: args.longpoll_timeout,
        header_timeout: args.header_timeout,
        history: args.history,
        ws_queue: args.ws_queue,
        sse_keepalive: args.sse_keepalive,
        tls: args.tls,
        grip: args.grip.as_deref().map(GripConfig::parse).transpose()?,
        ..HubConfig::default()
    };
    sys::raise_fd_limit();
    let hub = Hub::start(args.listen, config)
        .await
        .with_context(|| format!("starting the hub on {}", args.listen))?;
    // The first stdout lines are the contract with `Launch::ChildProcess`.
    println!("{READY_PREFIX}{}", hub.local_addr());
    if let Some(der) = hub.certificate_der() {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        println!("{CERTIFICATE_PREFIX}{text}");
    }
    // Kept until Ctrl-C: the broker's TLS fronts, if any.
    let _fronts = if args.broker {
        serve_broker(&hub, args.broker_ports.as_deref()).await?
    } else {
        Vec::new()
    };
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(ExitCode::SUCCESS)
}

/// Starts the broker beside `hub` and prints its addresses; over TLS (the hub has a
/// certificate) the addresses printed are TLS fronts' with the hub's certificate.
async fn serve_broker(
    hub: &Hub,
    ports: Option<&[u16]>,
) -> anyhow::Result<Vec<tls_front::TlsFront>> {
    let ip = match hub.local_addr().ip() {
        std::net::IpAddr::V4(ip) => ip,
        std::net::IpAddr::V6(_) => std::net::Ipv4Addr::LOCALHOST,
    };
    let fixed = match ports {
        Some(&[tcp, ws, v5]) => Some(broker::BrokerAddrs {
            tcp: (ip, tcp).into(),
            ws: (ip, ws).into(),
            v5: (ip, v5).into(),
        }),
        Some(other) => anyhow::bail!(
            "--broker-ports takes three ports (MQTT, WebSocket, MQTT 5), not {other:?}"
        ),
        None => None,
    };
    let addrs = tokio::task::spawn_blocking(move || match fixed {
        Some(addrs) => broker::start_on(addrs),
        None => broker::start(ip),
    })
    .await??;
    let (addrs, fronts) = match hub.identity() {
        Some(identity) => tls_front::front_broker(addrs, &identity).await?,
        None => (addrs, Vec::new()),
    };
    println!("{}", broker_line(&addrs));
    Ok(fronts)
}
