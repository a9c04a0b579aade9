//! One run as 3 shards (3 processes on loopback, one of them with its clock skewed by +250 ms)
//! plus `merge`, against the same run on one machine: the same deliveries and bytes, every
//! measured message once, the skewed shard's offset found within its uncertainty and its
//! latencies corrected; a shard that never arrives is named by `merge` and its share lost.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use pushbench::report;
use pushbench::result::RunResult;
use pushbench::stats::{Percentiles, decode_histogram};

const EXE: &str = env!("CARGO_BIN_EXE_pushbench");
/// Clients of the scenario: shards of 2 each.
const CLIENTS: u64 = 6;
/// Measured messages per client: 1 s at 10/s.
const MEASURED: u64 = 10;
const SKEW_MS: i64 = 250;

fn scenario(url: &str) -> String {
    scenario_with(url, "")
}

/// The scenario with `extra` TOML before its transport.
fn scenario_with(url: &str, extra: &str) -> String {
    format!(
        r#"
name = "sharded"
clients = {CLIENTS}
channels = 2
connect_rate = "1000/s"
warmup = "500ms"
duration = "1s"
drain = "5s"

[messages]
rate = "10/s"
payload_bytes = 64

[target]
kind = "external"
urls = ["{url}"]
{extra}
[[transports]]
kind = "websocket"
"#
    )
}

/// `pushbench serve` on a free loopback port, killed on drop.
struct Hub(Child, String);

impl Hub {
    fn start() -> Hub {
        Hub::start_with(&[])
    }

    /// With `--tls`, the hub takes TLS and cleartext on its one port.
    fn start_with(args: &[&str]) -> Hub {
        let mut child = Command::new(EXE)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut ready).unwrap();
        let addr = ready
            .trim()
            .strip_prefix(pushbench::targets::READY_PREFIX)
            .unwrap_or_else(|| panic!("unexpected first line {ready:?}"))
            .to_string();
        // Read to the end: a hub that prints to a closed pipe (its certificate line, with
        // `--tls`) dies.
        std::thread::spawn(move || stdout.lines().count());
        Hub(child, format!("http://{addr}"))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `pushbench run --shard K/3 --only RUN` for K = 0..3 and merges the three results.
fn sharded_run(path: &Path, dir: &Path, run: &str) -> RunResult {
    let shards_dir = dir.join(format!("shards-{run}"));
    let control = format!("127.0.0.1:{}", free_port());
    let children: Vec<Child> = (0..3)
        .map(|k| shard_with(path, &shards_dir, k, &control, 0, &["--only", run]))
        .collect();
    for child in children {
        finished(child);
    }
    let files: Vec<PathBuf> = (0..3).map(|k| shard_file(&shards_dir, k)).collect();
    let merged_dir = dir.join(format!("merged-{run}"));
    let merged = merge(&files, &merged_dir);
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    summary(&merged_dir)
}

/// Two runs of one kind in one scenario, one over TLS: each sharded run is merged as the run
/// it was (matched by its run label, not its kind's), with its own overhead: the 2-byte frame
/// header, and over TLS 1.3 the record's 22 bytes on top.
#[test]
fn a_websocket_and_a_websocket_over_tls_shard_and_merge_each_as_itself() {
    let hub = Hub::start_with(&["--tls"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    let https = hub.1.replacen("http://", "https://", 1);
    let text = scenario(&format!(r#"{}", "{https}"#, hub.1))
        .replace("[[transports]]", "[tls]\ninsecure = true\n\n[[transports]]")
        + "tls = false\n\n[[transports]]\nkind = \"websocket\"\n";
    std::fs::write(&path, text).unwrap();

    let clear = sharded_run(&path, dir.path(), "websocket");
    let tls = sharded_run(&path, dir.path(), "websocket+tls(insecure)");
    for r in [&clear, &tls] {
        assert_eq!(r.messages_delivered, CLIENTS * MEASURED, "{r:?}");
        assert_eq!((r.lost, r.duplicated, r.shards), (0, 0, 3), "{r:?}");
        assert!(r.fault.is_empty(), "{}", r.fault);
        // Measured over the connect phase, on every shard, and added up.
        assert!(r.connects_per_s > 0.0, "{r:?}");
        assert!(
            r.fleet_connect_cpu_us_per_connection
                .is_some_and(|us| us >= 0.0),
            "{r:?}"
        );
    }
    assert_eq!(
        (clear.transport.as_str(), clear.tls.as_str()),
        ("websocket", "")
    );
    assert_eq!(format!("{:.2}", clear.overhead_bytes_per_message), "2.00");
    assert!(clear.tls_overhead_bytes_per_message.is_nan(), "{clear:?}");
    assert_eq!(
        (tls.transport.as_str(), tls.tls.as_str()),
        ("websocket+tls(insecure)", "1.3 insecure")
    );
    assert_eq!(format!("{:.2}", tls.overhead_bytes_per_message), "24.00");
    assert_eq!(tls.tls_overhead_bytes_per_message, 22.0, "{tls:?}");
    assert_eq!(tls.tls_records_per_message, 1.0, "{tls:?}");
}

/// Starts `pushbench run --shard K/3`, the publisher (shard 0 unless `extra` says otherwise)
/// listening on `control`.
fn shard(scenario: &Path, out: &Path, k: u32, control: &str, skew_ms: i64) -> Child {
    shard_with(scenario, out, k, control, skew_ms, &[])
}

fn shard_with(
    scenario: &Path,
    out: &Path,
    k: u32,
    control: &str,
    skew_ms: i64,
    extra: &[&str],
) -> Child {
    Command::new(EXE)
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(["--shard", &format!("{k}/3"), "--listen", control])
        .args(["--peers", &format!("{control},{control},{control}")])
        .args(["--barrier-timeout", "8s"])
        .args(extra)
        .env(pushbench::clock::TEST_SKEW_ENV, skew_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "shard failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn shard_file(out: &Path, k: u32) -> PathBuf {
    out.join(format!("shard-{k}-of-3.json"))
}

fn merge(files: &[PathBuf], out: &Path) -> Output {
    Command::new(EXE)
        .arg("merge")
        .args(files)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn summary(dir: &Path) -> RunResult {
    report::read_json(&dir.join("summary.json"))
        .unwrap()
        .remove(0)
}

/// Each shard spreads its 2 clients over 2 worker processes, as a run on one machine would:
/// the clock correction must reach them.
#[test]
fn three_shards_merge_into_the_run_one_machine_makes() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    let workers = "[scale]\nclients_per_worker = 1\n";
    std::fs::write(&path, scenario_with(&hub.1, workers)).unwrap();

    let whole_dir = dir.path().join("whole");
    let whole = Command::new(EXE)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&whole_dir)
        .output()
        .unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let whole = summary(&whole_dir);

    let shards_dir = dir.path().join("shards");
    let control = format!("127.0.0.1:{}", free_port());
    let skews = [0, 0, SKEW_MS];
    let children: Vec<Child> = (0..3)
        .map(|k| shard(&path, &shards_dir, k, &control, skews[k as usize]))
        .collect();
    for child in children {
        finished(child);
    }
    let files: Vec<PathBuf> = (0..3).map(|k| shard_file(&shards_dir, k)).collect();
    let merged_dir = dir.path().join("merged");
    let merged = merge(&files, &merged_dir);
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let m = summary(&merged_dir);

    // Every measured message once, exactly as on one machine.
    assert_eq!(m.messages_expected, CLIENTS * MEASURED);
    assert_eq!(m.messages_delivered, whole.messages_delivered);
    assert_eq!(m.messages_delivered, m.messages_expected, "{m:?}");
    assert_eq!((m.lost, m.duplicated), (0, 0));
    assert_eq!(m.clients_connected, CLIENTS);
    assert_eq!(m.window_messages, whole.window_messages);
    assert_eq!(m.window_bytes_down, whole.window_bytes_down);
    assert_eq!(m.window_bytes_up, whole.window_bytes_up);
    assert_eq!(m.bytes_per_message, whole.bytes_per_message);
    // The sum of the parts: each shard delivered its 2 clients' messages.
    let per_shard: Vec<Option<u64>> = vec![Some(2 * MEASURED); 3];
    assert_eq!(m.shard_delivered, per_shard);
    assert_eq!((m.shards, m.shards_lost.len()), (3, 0));
    assert_eq!((m.fleet_workers, whole.fleet_workers), (CLIENTS, CLIENTS));
    assert!(m.fault.is_empty(), "{}", m.fault);
    let histogram = decode_histogram(&m.latency_histogram).unwrap();
    assert_eq!(histogram.len(), m.messages_delivered);
    assert!(
        m.shard_fleet_cpu_s
            .iter()
            .all(|c| c.is_some_and(|s| s > 0.0))
    );

    // The skewed shard's offset, within its uncertainty of the skew (1 µs for the stamps'
    // truncation to whole µs), and the others' within theirs of 0.
    for (k, skew) in skews.iter().enumerate() {
        let offset = m.shard_clock_offset_us[k].unwrap();
        let uncertainty = m.shard_clock_uncertainty_us[k].unwrap();
        assert!(
            (offset - (skew * 1000) as f64).abs() <= uncertainty + 1.0,
            "shard {k}: offset {offset} µs ± {uncertainty}, skew {skew} ms"
        );
    }
    // Corrected: uncorrected, every latency of the shard 250 ms ahead would read over 250 ms.
    let skewed =
        decode_histogram(&read_shard(&shard_file(&shards_dir, 2)).latency_histogram).unwrap();
    assert_eq!(skewed.len(), 2 * MEASURED);
    let skew_us = (SKEW_MS * 1000) as u64;
    assert!(skewed.min() < skew_us && skewed.value_at_quantile(0.5) < skew_us);
    let p = Percentiles::of(&histogram).unwrap();
    assert!(p.p50 < skew_us, "merged p50 {} µs", p.p50);
    // The same magnitude as on one machine: both medians under the skew.
    assert!(whole.latency_p50_us.is_some_and(|p50| p50 < skew_us));
}

fn read_shard(path: &Path) -> pushbench::shard::result::ShardResult {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_shard_that_never_arrives_is_named_and_its_share_lost() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    std::fs::write(&path, scenario(&hub.1)).unwrap();
    let shards_dir = dir.path().join("shards");
    let control = format!("127.0.0.1:{}", free_port());
    let children: Vec<Child> = (0..2)
        .map(|k| shard(&path, &shards_dir, k, &control, 0))
        .collect();
    for child in children {
        finished(child);
    }
    let files: Vec<PathBuf> = (0..2).map(|k| shard_file(&shards_dir, k)).collect();
    let merged_dir = dir.path().join("merged");
    let merged = merge(&files, &merged_dir);
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing shard result(s): 2 of 3"),
        "{stderr}"
    );
    let m = summary(&merged_dir);
    assert_eq!(m.shards_lost, vec![2]);
    assert_eq!(m.messages_expected, CLIENTS * MEASURED);
    assert_eq!(m.messages_delivered, 4 * MEASURED);
    assert_eq!(m.lost, 2 * MEASURED);
    assert!(m.fault.contains("shard(s) 2 of 3 lost"), "{}", m.fault);
    let publisher = read_shard(&shard_file(&shards_dir, 0));
    assert_eq!(publisher.started_with, vec![0, 1]);

    // A shard of another run is refused, named.
    let other = dir.path().join("other.json");
    let mut foreign = read_shard(&shard_file(&shards_dir, 1));
    foreign.run_id ^= 1;
    foreign.shard = 2;
    std::fs::write(&other, serde_json::to_vec(&foreign).unwrap()).unwrap();
    let refused = merge(
        &[files[0].clone(), other.clone()],
        &dir.path().join("refused"),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shards of different runs"), "{stderr}");

    // So is one of the same run with another scenario, and a shard given twice.
    foreign.run_id ^= 1;
    foreign.scenario.push_str("\n# edited\n");
    std::fs::write(&other, serde_json::to_vec(&foreign).unwrap()).unwrap();
    let refused = merge(&[files[0].clone(), other], &dir.path().join("refused"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ran different scenarios"), "{stderr}");
    let twice = merge(
        &[files[0].clone(), files[0].clone()],
        &dir.path().join("twice"),
    );
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert!(stderr.contains("are both shard 0"), "{stderr}");
    assert!(!dir.path().join("refused").exists() && !dir.path().join("twice").exists());
}

/// The scenario the Kubernetes manifests put in their ConfigMap parses, and is one a shard
/// runs: an external target, one transport.
#[test]
fn the_kubernetes_scenario_is_a_shardable_plan() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/scenario.toml");
    let plan = pushbench::scenario::load(&path).unwrap();
    assert!(matches!(
        plan.target,
        pushbench::plan::TargetPlan::External { .. }
    ));
    assert_eq!(plan.transports.len(), 1);
}

/// One of the hub's counters, from its /stats.
fn hub_stat(url: &str, field: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("{}");
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v[field].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_shard_killed_mid_run_is_named_and_its_share_lost() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    std::fs::write(&path, scenario(&hub.1)).unwrap();
    let shards_dir = dir.path().join("shards");
    let control = format!("127.0.0.1:{}", free_port());
    let mut children: Vec<Child> = (0..3)
        .map(|k| shard(&path, &shards_dir, k, &control, 0))
        .collect();
    // Publishing has begun, so every shard is past the barrier (1.5 s of publishing to go):
    // kill shard 2.
    let waited = std::time::Instant::now();
    while hub_stat(&hub.1, "published") == 0 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "publishing never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut killed = children.pop().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    for child in children {
        finished(child);
    }
    assert!(!shard_file(&shards_dir, 2).exists());
    let files: Vec<PathBuf> = (0..2).map(|k| shard_file(&shards_dir, k)).collect();
    let merged_dir = dir.path().join("merged");
    let merged = merge(&files, &merged_dir);
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing shard result(s): 2 of 3"),
        "{stderr}"
    );
    let m = summary(&merged_dir);
    assert_eq!(m.shards_lost, vec![2]);
    assert_eq!((m.messages_delivered, m.lost), (4 * MEASURED, 2 * MEASURED));
    assert!(!m.complete);
    let publisher = read_shard(&shard_file(&shards_dir, 0));
    assert_eq!(publisher.started_with, vec![0, 1, 2]);
    assert_eq!(publisher.gone_before_end, vec![2]);
    assert!(stderr.contains("saw shard(s) 2 leave mid-run"), "{stderr}");
}

#[test]
fn a_publisher_only_shard_leaves_the_clients_to_the_others() {
    let hub = Hub::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharded.toml");
    std::fs::write(&path, scenario(&hub.1)).unwrap();
    let shards_dir = dir.path().join("shards");
    let control = format!("127.0.0.1:{}", free_port());
    let extra = ["--publisher", "1", "--publisher-only"];
    let children: Vec<Child> = (0..3)
        .map(|k| shard_with(&path, &shards_dir, k, &control, 0, &extra))
        .collect();
    for child in children {
        finished(child);
    }
    let files: Vec<PathBuf> = (0..3).map(|k| shard_file(&shards_dir, k)).collect();
    let merged_dir = dir.path().join("merged");
    let merged = merge(&files, &merged_dir);
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let m = summary(&merged_dir);
    assert_eq!(m.messages_delivered, CLIENTS * MEASURED);
    let half = Some(CLIENTS / 2 * MEASURED);
    assert_eq!(m.shard_delivered, vec![half, Some(0), half]);
    assert_eq!(read_shard(&shard_file(&shards_dir, 1)).clients, 0);
}
