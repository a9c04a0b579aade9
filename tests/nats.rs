//! MQTT against NATS (Debian nats-server 2.9, its MQTT listener): a broker nobody here wrote,
//! with QoS 0 and 1 only. Installed by scripts/test.sh; these tests fail, not skip, without it.

mod common;

use common::{Nats, mqtt, run_in_process, small_plan};
use pushbench::plan::{MqttOver, TargetPlan, TargetProcesses, TransportPlan};
use pushbench::result::RunResult;

async fn run(qos: u8) -> RunResult {
    let nats = Nats::start();
    let mut plan = small_plan(30, 16, mqtt(qos, MqttOver::Tcp));
    plan.target = TargetPlan::External {
        urls: vec![nats.url()],
        processes: Some(TargetProcesses::Pidfile(nats.pidfile())),
        name: Some("nats".into()),
    };
    run_in_process(&plan).await
}

fn assert_all_delivered_and_measured(r: &RunResult) {
    assert_eq!(r.messages_delivered, 30 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert!(r.fault.is_empty(), "{r:?}");
    // Measured, in clock ticks: a short run may take less than one (10 ms), so 0 s is valid.
    assert!(r.target_cpu_s.is_some_and(|s| s >= 0.0), "{r:?}");
    assert!(r.target_peak_rss_bytes.is_some_and(|b| b > 0), "{r:?}");
}

/// The same PUBLISH as any broker's: fixed header 1 + remaining length 1 + topic length 2 +
/// topic `bench/t` 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_costs_exactly_11_bytes_on_nats() {
    let r = run(0).await;
    assert_all_delivered_and_measured(&r);
    assert_eq!(r.overhead_bytes_per_message, 11.0, "{r:?}");
    assert_eq!(r.qos_granted, Some(0));
}

/// + packet id 2 + the subscriber's PUBACK 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_costs_exactly_17_bytes_on_nats() {
    let r = run(1).await;
    assert_all_delivered_and_measured(&r);
    assert_eq!(r.overhead_bytes_per_message, 17.0, "{r:?}");
    assert_eq!(r.qos_granted, Some(1));
}

/// NATS 2.9 has no QoS 2: it grants QoS 1 to a QoS 2 subscription (the label says so) and
/// closes the connection of a publisher that sends a QoS 2 PUBLISH, so nothing arrives; the
/// result names that as its fault instead of a silent loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_is_granted_as_qos1_and_its_publishes_are_refused() {
    let r = run(2).await;
    assert_eq!(r.qos_granted, Some(1), "{r:?}");
    assert_eq!(r.transport, "mqtt(qos2→1,tcp)");
    assert_eq!(r.messages_delivered, 0, "{r:?}");
    assert!(
        r.fault
            .contains("the broker closed the publisher's connection"),
        "{r:?}"
    );
    assert!(!r.saturated, "{r:?}");
}

/// WebSocket subscribers with the `nats` preset: `CONNECT`, `SUB bench.0 1` and a `PING`
/// whose `PONG` ends the setup; the publisher sends `PUB` frames on its own WebSocket.
async fn run_websocket(payload_bytes: usize) -> RunResult {
    let nats = Nats::start();
    let mut plan = small_plan(
        30,
        payload_bytes,
        TransportPlan::Websocket {
            read_buffer_bytes: 4096,
            ping: None,
        },
    );
    plan.target = TargetPlan::External {
        urls: vec![format!("http://127.0.0.1:{}", nats.ws_port)],
        processes: Some(TargetProcesses::Pidfile(nats.pidfile())),
        name: Some("nats".into()),
    };
    plan.adapter = pushbench::adapter::preset::nats();
    run_in_process(&plan).await
}

/// What NATS puts around each payload: its `MSG <subject> <sid> <size>\r\n` line and the
/// closing `\r\n`, inside one server WebSocket frame (unmasked: 2 header bytes up to 125
/// bytes of frame payload, 4 up to 65,535).
fn nats_ws_overhead(subject: &str, sid: u32, payload_bytes: usize) -> f64 {
    let msg = format!("MSG {subject} {sid} {payload_bytes}\r\n").len() + payload_bytes + 2;
    let frame_header = if msg < 126 { 2 } else { 4 };
    (frame_header + msg - payload_bytes) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_with_the_nats_protocol_costs_its_msg_line_and_frame_header() {
    let r = run_websocket(64).await;
    assert_all_delivered_and_measured(&r);
    assert_eq!(
        r.overhead_bytes_per_message,
        nats_ws_overhead("bench.0", 1, 64),
        "{r:?}"
    );
    assert_eq!(
        r.window_bytes_up, 0,
        "no keep-alive fell in the window: {r:?}"
    );
}

/// A payload whose frame needs the 16-bit length: two more header bytes, and the size in
/// the `MSG` line has three digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_nats_message_pays_the_longer_frame_header() {
    let r = run_websocket(200).await;
    assert_all_delivered_and_measured(&r);
    assert_eq!(
        r.overhead_bytes_per_message,
        nats_ws_overhead("bench.0", 1, 200),
        "{r:?}"
    );
}
