//! Scale-out: a run split over worker processes and target shards (the real binary, since
//! workers re-execute it) merges to exactly what its parts measured.

use std::path::Path;
use std::process::Command;

use pushbench::report;
use pushbench::result::RunResult;
use pushbench::stats::decode_histogram;

const SCENARIO: &str = r#"
name = "workers"
clients = 30
connect_rate = "300/s"
warmup = "1s"
duration = "2s"
drain = "3s"

[messages]
rate = "5/s"
payload_bytes = 16

[scale]
clients_per_worker = 10     # 3 worker processes
clients_per_shard = 15      # 2 hub (or broker) processes

[[transports]]
kind = "websocket"

[[transports]]
kind = "http-longpoll"

[[transports]]
kind = "mqtt"
qos = 1
"#;

/// Runs `scenario` with the real binary (workers re-execute it); returns its folder and
/// its summary.json, raw and read.
fn run(scenario: &str) -> (tempfile::TempDir, serde_json::Value, Vec<RunResult>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = Path::new(dir.path()).join("summary.json");
    let raw = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let results = report::read_json(&summary).unwrap();
    (dir, raw, results)
}

#[test]
fn a_run_over_three_workers_and_two_shards_adds_up() {
    let (_dir, _, results) = run(SCENARIO);
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r.fleet_workers, 3, "{}", r.transport);
        assert_eq!(r.fleet_workers_lost, 0, "{}", r.transport);
        assert_eq!(r.target_shards, 2, "{}", r.transport);
        assert_eq!(
            r.target_shard_cpu_s.len(),
            2,
            "each shard measured: {}",
            r.transport
        );
        assert_eq!(r.messages_expected, 30 * 10);
        assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
        // The merged result is the sum of the workers' counts...
        assert_eq!(r.fleet_worker_delivered.len(), 3);
        assert_eq!(
            r.fleet_worker_delivered.iter().sum::<u64>(),
            r.messages_delivered
        );
        assert!(
            r.fleet_worker_delivered.iter().all(|&d| d == 10 * 10),
            "{r:?}"
        );
        // ...and the merged histogram holds one latency per delivered message.
        let histogram = decode_histogram(&r.latency_histogram).unwrap();
        assert_eq!(histogram.len(), r.messages_delivered, "{}", r.transport);
    }
}

const LAST_WILL: &str = r#"
name = "last-will-scaled"
clients = 40
connect_rate = "200/s"
warmup = "1s"
duration = "6s"
drain = "2s"

[messages]
rate = "1/s"

[scale]
clients_per_worker = 20     # 2 worker processes
clients_per_shard = 20      # 2 broker processes

[[transports]]
kind = "mqtt"
qos = 1
keep_alive = "2s"
last_will = { topic = "wills/{client}", cut = "silence" }
"#;

/// A Last Will run is a mode of the shared run: with the broker in two shards and the clients
/// in two worker processes, every cut client's will arrives (each at the watcher of its own
/// shard), and what a Last Will run does not measure stays "not measured".
#[test]
fn every_will_arrives_across_broker_shards_and_workers() {
    let (_dir, raw, results) = run(LAST_WILL);
    let r = &results[0];
    assert_eq!((r.fleet_workers, r.fleet_workers_lost), (2, 0), "{r:?}");
    assert_eq!(r.target_shards, 2, "{r:?}");
    assert_eq!(r.clients_connected, 40, "{r:?}");
    assert_eq!(
        (r.messages_expected, r.messages_delivered),
        (40, 40),
        "{r:?}"
    );
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert_eq!(r.will_expected_within_us, Some(3_000_000));
    assert!(r.fault.is_empty() && !r.saturated, "{r:?}");
    for column in [
        "bytes_per_message",
        "bandwidth_bps",
        "publish_rate_requested_per_s",
        "publish_rate_achieved_per_s",
        "fleet_cpu_us_per_message",
        "target_cpu_us_per_message",
    ] {
        assert!(
            raw[0][column].is_null(),
            "{column} should be not measured (null), is {}",
            raw[0][column]
        );
    }
    assert!(raw[0]["fleet_cpu_s"].as_f64().is_some_and(|s| s > 0.0));
    assert!(raw[0]["target_cpu_s"].as_f64().is_some_and(|s| s > 0.0));
}
