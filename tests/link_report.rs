//! The reports of runs over a link, from hand-made results: `links.png` (latency across link
//! profiles) and the per-fault table of `comparison.md` and the console.

use std::collections::HashSet;

use plotters::style::Color;
use pushbench::fleet::spans::FaultDelivery;
use pushbench::report::{self, charts, comparison, console, link};
use pushbench::result::{FaultResult, RunResult};

const TRANSPORTS: [&str; 3] = ["websocket", "sse(minimal)", "http-longpoll(minimal)"];

/// One run of `transport` over profile `profile` (round trip `rtt_ms`): push pays half the
/// round trip, long polling one and a half.
fn run(transport: &str, profile: &str, rtt_ms: f64) -> RunResult {
    let trips = if transport.starts_with("http") {
        1.5
    } else {
        0.5
    };
    let p50 = (rtt_ms * trips * 1e3) as u64 + 300;
    RunResult {
        scenario: format!("matrix-{profile}"),
        transport: transport.to_string(),
        link_profile: profile.to_string(),
        link_rtt_configured_ms: rtt_ms,
        latency_p50_us: Some(p50),
        latency_p99_us: Some(p50 * 3),
        ..RunResult::not_measured()
    }
}

fn matrix() -> Vec<RunResult> {
    let mut results = Vec::new();
    for (profile, rtt) in [("satellite", 600.0), ("custom", 20.0), ("4g", 150.0)] {
        results.extend(TRANSPORTS.iter().map(|t| run(t, profile, rtt)));
    }
    results
}

fn restart() -> FaultResult {
    FaultResult {
        kind: "restart".to_string(),
        at_s: 2.0,
        duration_s: 0.0097,
        delivered_during: 3,
        reconnects_after: 20,
        reconnect_bytes_after: Some(6_580),
        first_delivery_after_ms: Some(56.1),
        clients_recovered: 20,
        recovery_p50_ms: Some(47.9),
        recovery_p99_ms: Some(52.8),
        recovery_max_ms: Some(52.8),
        publishes_failed: 1,
        // The refused message was due to all 20 clients; one came twice.
        due_messages: Some(FaultDelivery {
            due: 20,
            lost: 20,
            duplicated: 1,
            ..FaultDelivery::default()
        }),
        ..FaultResult::default()
    }
}

#[test]
fn the_link_chart_renders_every_transport_and_only_when_there_is_a_link() {
    let results = matrix();
    let png = link::chart(&results).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!((info.width, info.height), link::SIZE);
    let pixels: Vec<[u8; 3]> = buffer[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    let inked = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(colours.len() >= 20, "only {} colours", colours.len());
    assert!(inked * 100 > pixels.len(), "only {inked} pixels drawn");
    let transports = charts::transports(&results);
    for t in TRANSPORTS {
        let (r, g, b) = charts::colour(&transports, t).to_rgba().rgb();
        assert!(colours.contains(&[r, g, b]), "no line of {t}");
    }
    let loopback = RunResult {
        link_profile: String::new(),
        ..run("websocket", "", 0.0)
    };
    assert!(
        link::chart(std::slice::from_ref(&loopback))
            .unwrap()
            .is_empty()
    );
    let dir = tempfile::tempdir().unwrap();
    let (written, errors) = report::write_reports(dir.path(), &[loopback]);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!written.iter().any(|p| p.ends_with("links.png")));
}

#[test]
fn each_fault_is_a_row_of_the_comparison_and_a_console_note() {
    let mut results = matrix();
    results[1].link_faults = vec![
        restart(),
        FaultResult {
            kind: "cut".to_string(),
            at_s: 5.0,
            error: "not carried out: publishing ended first".to_string(),
            ..FaultResult::default()
        },
    ];
    results[1].lost = 20;
    let md = String::from_utf8(comparison::render(&results).unwrap()).unwrap();
    assert!(md.contains("## Faults"), "{md}");
    let row = "| matrix-satellite | sse(minimal) | satellite (600 ms RTT) | restart | 2.0 s | \
               9.70 ms | 3 | 1 | 20 | 6,580 B | 56.1 ms | 20 | 47.9 ms / 52.8 ms / 52.8 ms | 20 | \
               0 / 0 / 20 (+1 duplicated) | 20 |";
    assert!(md.contains(row), "missing {row:?} in\n{md}");
    assert!(
        md.contains("| cut (failed: not carried out: publishing ended first) | 5.0 s |"),
        "{md}"
    );
    let text = console::table(&results);
    assert!(
        text.contains(
            "note: sse(minimal) restart at 2.0 s (lasted 9.70 ms): 3 delivered during it, 1 \
             publishes refused, 20 reconnects (6,580 B), first delivery 56.1 ms after it, recovery \
             p50/p99/max 47.9 ms / 52.8 ms / 52.8 ms over 20 clients; 20 due in it, of them \
             during / after / lost: 0 / 0 / 20 (+1 duplicated)"
        ),
        "{text}"
    );
    let none = String::from_utf8(comparison::render(&matrix()).unwrap()).unwrap();
    assert!(!none.contains("## Faults"));
}
