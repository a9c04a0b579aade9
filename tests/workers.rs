//! Scale-out: a run split over worker processes and target shards (the real binary, since
//! workers re-execute it) merges to exactly what its parts measured.

use std::path::Path;
use std::process::Command;

use pushbench::report;
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

#[test]
fn a_run_over_three_workers_and_two_shards_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("workers.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = report::read_json(&Path::new(dir.path()).join("summary.json")).unwrap();
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
