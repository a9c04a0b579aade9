//! Faults are reported as what they are: a target that dies mid-run is named in the result's
//! `fault`, not passed off as a saturated run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pushbench::report;

/// Ramp, warm-up, window and drain of the scenario below, with the margin a loaded machine
/// may need: the run must be over by then.
const PLANNED: Duration = Duration::from_secs(1 + 1 + 8 + 2);
const MARGIN: Duration = Duration::from_secs(45);

fn scenario(url: &str) -> String {
    format!(
        r#"
name = "dead-target"
clients = 200
connect_rate = "1000/s"
warmup = "1s"
duration = "8s"
drain = "2s"

[messages]
rate = "10/s"

[target]
kind = "external"
urls = ["{url}"]

[[transports]]
kind = "websocket"
"#
    )
}

#[test]
fn a_target_killed_mid_run_is_a_fault_with_results_written() {
    let mut hub = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(hub.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let addr = ready
        .trim()
        .strip_prefix(pushbench::targets::READY_PREFIX)
        .unwrap_or_else(|| panic!("unexpected first line {ready:?}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead-target.toml");
    std::fs::write(&path, scenario(&format!("http://{addr}"))).unwrap();

    let started = Instant::now();
    let mut run = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Past the ramp and the warm-up: the window is under way.
    std::thread::sleep(Duration::from_secs(4));
    hub.kill().unwrap();
    hub.wait().unwrap();

    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PLANNED + MARGIN {
            run.kill().unwrap();
            panic!("the run did not end within {:?}", PLANNED + MARGIN);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");

    let results = report::read_json(&dir.path().join("summary.json")).unwrap();
    let r = &results[0];
    assert!(
        r.fault.starts_with("target stopped answering"),
        "fault: {:?}",
        r.fault
    );
    assert!(r.fault.contains("publishes failed"), "{:?}", r.fault);
    assert!(r.fault.contains("connections broke"), "{:?}", r.fault);
    assert!(!r.saturated, "a dead target is not a saturated run: {r:?}");
    assert!(r.publish_errors > 0 && r.lost > 0, "{r:?}");
    assert!(stderr.contains("target stopped answering"), "{stderr}");
}
