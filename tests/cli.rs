//! The command line end to end: the real binary, the embedded hub as its child process.

use std::path::Path;
use std::process::Command;

use pushbench::report;

fn pushbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pushbench"))
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn validate_accepts_every_shipped_scenario() {
    let mut files: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|p| p.ends_with(".toml"))
            .collect();
    files.sort();
    let out = pushbench().arg("validate").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_names_file_line_and_field_of_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "clients = 10\nduration = \"10 parsecs\"\n[messages]\nrate = \"1/s\"\n[[transports]]\nkind = \"websocket\"\n",
    )
    .unwrap();
    let out = pushbench().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
    assert!(stderr.contains("duration"), "{stderr}");
}

#[test]
fn run_smoke_writes_summaries_with_every_message_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let out = pushbench()
        .args(["run", &scenario("smoke.toml"), "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = report::read_json(&dir.path().join("summary.json")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), results.len() + 1);
    assert!(csv.starts_with("scenario,transport,"));
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
        assert!(
            r.target_cpu_s.is_some() && r.target_peak_rss_bytes.is_some(),
            "child hub measured: {r:?}"
        );
        assert!(stdout.contains(&r.transport), "{stdout}");
    }
}

#[test]
fn unknown_transport_in_only_is_an_error() {
    let out = pushbench()
        .args(["run", &scenario("smoke.toml"), "--only", "carrier-pigeon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("carrier-pigeon"));
}

#[test]
fn validate_names_the_file_and_the_cause_of_a_non_utf8_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    std::fs::write(&path, b"name = \"caf\xe9\"\n").unwrap();
    let out = pushbench().arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = format!(
        "error: cannot read scenario file {}: stream did not contain valid UTF-8",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
