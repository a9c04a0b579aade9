//! CI use: scenario thresholds decide `run`'s exit code, `compare` judges a run against a
//! baseline, and `--json` gives a pipeline one document to parse. The real binary throughout.

use std::path::Path;
use std::process::{Command, Output};

use pushbench::report::{self, compare::EXIT_REGRESSION};
use pushbench::result::RunResult;
use pushbench::thresholds::EXIT_THRESHOLDS_BROKEN;

fn pushbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pushbench"))
}

/// A tiny WebSocket scenario (5 clients, 10 messages) with `thresholds` as its table body.
/// A 16-byte payload in one frame costs exactly 2 bytes more, so thresholds on the overhead
/// hold or break deterministically.
fn tiny_scenario(dir: &Path, thresholds: &str) -> String {
    let path = dir.join("tiny.toml");
    let text = format!(
        "clients = 5\nconnect_rate = \"1000/s\"\nwarmup = \"500ms\"\nduration = \"1s\"\n\
         drain = \"2s\"\n[messages]\nrate = \"10/s\"\npayload_bytes = 16\n\
         [[transports]]\nkind = \"websocket\"\n[thresholds]\n{thresholds}\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn run_tiny(dir: &Path, thresholds: &str, extra: &[&str]) -> Output {
    pushbench()
        .args(["run", &tiny_scenario(dir, thresholds), "--out"])
        .arg(dir.join("out"))
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn thresholds_that_hold_exit_zero_and_json_is_one_document_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_tiny(
        dir.path(),
        "all = [\"delivery_ratio == 1\", \"connect_failures == 0\"]\n\
         websocket = [\"overhead_bytes_per_message <= 2\"]",
        &["--json"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["results"].as_array().unwrap().len(), 1);
    let outcomes = doc["thresholds"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|o| o["held"] == true), "{stdout}");
}

#[test]
fn a_broken_threshold_exits_99_names_it_and_still_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_tiny(
        dir.path(),
        "all = [\"connect_failures == 0\"]\nwebsocket = [\"overhead_bytes_per_message < 2\"]",
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(i32::from(EXIT_THRESHOLDS_BROKEN)),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("BROKEN websocket: overhead_bytes_per_message < 2 (measured 2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok     websocket: connect_failures == 0"),
        "{stdout}"
    );
    assert!(stdout.contains("thresholds: 1 held, 1 broken"), "{stdout}");
    let results = report::read_json(&dir.path().join("out/summary.json")).unwrap();
    assert_eq!(results.len(), 1);
}

fn result(transport: &str, kind: &str, bytes_per_message: f64, p99_us: u64) -> RunResult {
    RunResult {
        scenario: "fixture".into(),
        transport: transport.into(),
        transport_kind: kind.into(),
        complete: true,
        clients: 300,
        payload_bytes: 20,
        messages_expected: 6000,
        messages_delivered: 6000,
        delivery_ratio: 1.0,
        window_messages: 6000,
        bytes_per_message,
        overhead_bytes_per_message: bytes_per_message - 20.0,
        setup_bytes_per_client: 328.0,
        latency_p50_us: Some(4000),
        latency_p99_us: Some(p99_us),
        ..RunResult::default()
    }
}

/// Writes `results` as a summary.json the way `run` does, into `dir/name/`.
fn fixture(dir: &Path, name: &str, results: &[RunResult]) -> String {
    let folder = dir.join(name);
    let (_, errors) = report::write_summaries(&folder, results);
    assert!(errors.is_empty(), "{errors:?}");
    folder.display().to_string()
}

fn compare(baseline: &str, current: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = pushbench()
        .args(["compare", baseline, current])
        .args(extra)
        .output()
        .unwrap();
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

/// The output line of one transport's metric, split into cells.
fn cells<'a>(output: &'a str, transport: &str, metric: &str) -> Vec<&'a str> {
    output
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.len() > 2 && cells[0] == transport && cells[1] == metric)
        .unwrap_or_else(|| panic!("no {transport} {metric} line in:\n{output}"))
}

#[test]
fn compare_flags_one_more_byte_per_message_and_passes_noise_in_latency() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = fixture(
        dir.path(),
        "base",
        &[result("websocket", "websocket", 22.0, 8000)],
    );
    // The same latency, 10% slower: inside the default tolerance.
    let slower = fixture(
        dir.path(),
        "slower",
        &[result("websocket", "websocket", 22.0, 8800)],
    );
    let (code, output) = compare(&baseline, &slower, &[]);
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(
        cells(&output, "websocket", "latency_p99_us").last(),
        Some(&"ok")
    );
    assert!(output.contains("no regressions"), "{output}");

    let fatter = fixture(
        dir.path(),
        "fatter",
        &[result("websocket", "websocket", 23.0, 8000)],
    );
    let (code, output) = compare(&baseline, &fatter, &[]);
    assert_eq!(code, Some(i32::from(EXIT_REGRESSION)), "{output}");
    let row = cells(&output, "websocket", "bytes_per_message");
    assert_eq!(row[2..5], ["22", "23", "+4.55%"], "{output}");
    assert_eq!(row.last(), Some(&"REGRESSION"));
    assert_eq!(
        cells(&output, "websocket", "latency_p99_us").last(),
        Some(&"ok")
    );
}

#[test]
fn compare_flags_latency_beyond_the_tolerance_and_max_regression_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = fixture(
        dir.path(),
        "base",
        &[result("websocket", "websocket", 22.0, 20_000)],
    );
    let slower = fixture(
        dir.path(),
        "slow",
        &[result("websocket", "websocket", 22.0, 40_000)],
    );
    let (code, output) = compare(&baseline, &slower, &[]);
    assert_eq!(code, Some(i32::from(EXIT_REGRESSION)), "{output}");
    assert_eq!(
        cells(&output, "websocket", "latency_p99_us").last(),
        Some(&"REGRESSION")
    );
    let (code, output) = compare(
        &baseline,
        &slower,
        &["--max-regression", "latency_p99_us=150%"],
    );
    assert_eq!(code, Some(0), "{output}");
    let (code, output) = compare(&baseline, &slower, &["--latency-slack", "25ms"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("+50% and > 25 ms"), "{output}");
}

#[test]
fn compare_reports_transports_on_one_side_and_writes_markdown_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = fixture(
        dir.path(),
        "base",
        &[
            result("websocket", "websocket", 22.0, 8000),
            result("http-longpoll(minimal)", "http-longpoll", 275.45, 9000),
        ],
    );
    let current = fixture(
        dir.path(),
        "cur",
        &[
            result("websocket", "websocket", 22.0, 8000),
            result("mqtt(qos1)", "mqtt", 30.0, 9000),
        ],
    );
    let (code, output) = compare(&baseline, &current, &["--format", "md"]);
    assert_eq!(code, Some(i32::from(EXIT_REGRESSION)), "{output}");
    assert!(
        output.starts_with("### pushbench compare: regressions found"),
        "{output}"
    );
    assert!(
        output.contains("| websocket | bytes_per_message | 22 | 22 | 0% | exact | ok |"),
        "{output}"
    );
    assert!(
        output.contains("http-longpoll(minimal) is in the baseline but not in the current run"),
        "{output}"
    );
    assert!(
        output.contains("mqtt(qos1) is new in the current run"),
        "{output}"
    );

    let out = pushbench()
        .args(["compare", &baseline, &current, "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["exit_code"], i64::from(EXIT_REGRESSION));
    assert_eq!(doc["only_in_baseline"][0], "http-longpoll(minimal)");
    assert_eq!(doc["only_in_current"][0], "mqtt(qos1)");
}

#[test]
fn compare_of_a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.json").display().to_string();
    let (code, output) = compare(&missing, &missing, &[]);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("reading the baseline"), "{output}");
}
