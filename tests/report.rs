//! Every chart and table rendered from a fixed, hand-written results file: deterministic input,
//! so a chart that comes out blank, mis-sized or unreadable fails here.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use pushbench::report::{self, bytes, cost, latency, use_cases};
use pushbench::result::RunResult;

const FIXTURE: &str = "tests/fixtures/report-results.json";

fn fixture() -> Vec<RunResult> {
    report::read_inputs(&[PathBuf::from(FIXTURE)]).unwrap()
}

/// Decodes a PNG: its size and RGB pixels.
fn decode(path: &Path) -> ((u32, u32), Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    let pixels = buffer[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    ((info.width, info.height), pixels)
}

/// A chart is more than a white canvas: bars, text and lines in several colours.
fn assert_drawn(path: &Path, pixels: &[[u8; 3]]) {
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    let inked = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(
        colours.len() >= 20,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
    assert!(
        inked * 50 > pixels.len(),
        "{}: only {inked} of {} pixels drawn",
        path.display(),
        pixels.len()
    );
}

#[test]
fn every_chart_renders_decodes_at_its_size_and_is_not_blank() {
    let results = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (written, errors) = report::write_reports(dir.path(), &results);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(written.len(), 7);
    let charts = [
        ("use-cases.png", use_cases::SIZE),
        ("use-cases-log.png", use_cases::SIZE),
        ("bytes-per-message.png", bytes::SIZE),
        ("latency.png", latency::SIZE),
        (
            "latency-distribution.png",
            latency::distribution_size(&results),
        ),
        ("cost.png", cost::SIZE),
    ];
    for (name, size) in charts {
        let path = dir.path().join(name);
        let (decoded_size, pixels) = decode(&path);
        assert_eq!(decoded_size, size, "{name}");
        assert_drawn(&path, &pixels);
    }
    // One panel per use case.
    assert_eq!(latency::distribution_size(&results), (1200, 3 * 460));
}

#[test]
fn comparison_carries_the_measured_values_beside_the_article() {
    let dir = tempfile::tempdir().unwrap();
    report::write_reports(dir.path(), &fixture());
    let md = fs::read_to_string(dir.path().join("comparison.md")).unwrap();
    for expected in [
        // Overhead per message, measured vs 871 and 2.
        "| A | http-poll(websocket-org-2010) | overhead B/message | 871 B | 909.03 B | 1.04 |",
        "| A | http-poll(minimal) | overhead B/message | 871 B | 251.70 B | 0.29 |",
        "| C | websocket | overhead B/message | 2 B | 2.00 B | 1.00 |",
        // Bandwidth, measured vs the article's bit/s.
        "| 6,968,000 bit/s (\"6.6 Mbps\") | 7,432,240 bit/s | 1.07 |",
        "| 160,000 bit/s (\"0.153 Mbps\") | 1,760,000 bit/s | 11.00 |",
        "| 696,800,000 bit/s (\"665 Mbps\") | 743,200,000 bit/s (projected) | 1.07 |",
        // The reasons.
        "871 counts characters without line ends; the wire carries 909",
        "the article counts only the 2 B of overhead, not the 20 B payload",
        "polls that found nothing new (304) add 0.03 B per message",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    // Long polling is not in the article: summary only. Missing target cost stays missing.
    assert!(!md.contains("| A | http-longpoll(minimal) |"));
    assert!(md.contains("| use-case-a | http-longpoll(minimal) | 1000 | 30000/30000 | 275.70 |"));
    assert!(md.contains("| 17.6 Mbit/s | - | 4.00 ms | 5.96 ms | 17.0 ms | 12 µs | - |"));
}

#[test]
fn a_failing_reporter_leaves_the_others_files() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where latency.png should go: that one write fails.
    fs::create_dir(dir.path().join("latency.png")).unwrap();
    let (written, errors) = report::write_reports(dir.path(), &fixture());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(format!("{:#}", errors[0]).contains("latency.png"));
    assert_eq!(written.len(), 6);
    assert!(dir.path().join("cost.png").is_file());
    assert!(dir.path().join("comparison.md").is_file());
}

#[test]
fn a_directory_without_results_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = report::read_inputs(&[dir.path().to_path_buf()]).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("no summary.json"), "{message}");
    assert!(message.contains(&dir.path().display().to_string()));
}

#[test]
fn no_results_still_render() {
    let dir = tempfile::tempdir().unwrap();
    let (_, errors) = report::write_reports(dir.path(), &[]);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn the_report_command_renders_from_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["report", FIXTURE, "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("use-cases-log.png").is_file());

    let several = std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["report", FIXTURE, FIXTURE])
        .output()
        .unwrap();
    assert!(!several.status.success());
    let stderr = String::from_utf8_lossy(&several.stderr);
    assert!(stderr.contains("--out DIR"), "{stderr}");
}
