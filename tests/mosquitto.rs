//! MQTT against a broker nobody here wrote: mosquitto on 127.0.0.1 (installed by .ci/run and
//! scripts/test.sh; these tests fail, not skip, without it).

mod common;

use common::{Mosquitto, mqtt, run_in_process, small_plan};
use pushbench::plan::{MqttOver, MqttVersion, TargetPlan, TargetProcesses, TransportPlan};
use pushbench::result::RunResult;

/// A run against a fresh mosquitto, its cost measured through the pidfile its script wrote.
async fn run(qos: u8, over: MqttOver) -> RunResult {
    let broker = Mosquitto::start();
    let mut plan = small_plan(30, 16, mqtt(qos, over));
    plan.target = TargetPlan::External {
        urls: broker.urls(),
        processes: Some(TargetProcesses::Pidfile(broker.pidfile())),
        name: Some("mosquitto".into()),
    };
    let r = run_in_process(&plan).await;
    assert_eq!(r.messages_delivered, 30 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    // Measured, in clock ticks: a short run may take less than one (10 ms), so 0 s is valid.
    assert!(r.target_cpu_s.is_some_and(|s| s >= 0.0), "{r:?}");
    assert!(r.target_peak_rss_bytes.is_some_and(|b| b > 0), "{r:?}");
    assert!(r.target_cpu_us_per_message.is_finite(), "{r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_costs_exactly_11_bytes_on_mosquitto() {
    let r = run(0, MqttOver::Tcp).await;
    assert_eq!(r.overhead_bytes_per_message, 11.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_costs_exactly_17_bytes_on_mosquitto() {
    let r = run(1, MqttOver::Tcp).await;
    assert_eq!(r.overhead_bytes_per_message, 17.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_costs_exactly_25_bytes_on_mosquitto() {
    let r = run(2, MqttOver::Tcp).await;
    assert_eq!(r.overhead_bytes_per_message, 25.0, "{r:?}");
}

/// Each PUBLISH in its own binary frame from the broker: 2 bytes of frame header more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_listener_adds_exactly_the_frame_header() {
    let r = run(0, MqttOver::Websocket).await;
    assert_eq!(r.overhead_bytes_per_message, 13.0, "{r:?}");
}

/// MQTT 5 through mosquitto: one property-length byte more than 3.1.1, over TCP and WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_costs_one_byte_more_on_mosquitto() {
    for (over, expected) in [(MqttOver::Tcp, 12.0), (MqttOver::Websocket, 14.0)] {
        let broker = Mosquitto::start();
        let mut transport = mqtt(0, over);
        if let TransportPlan::Mqtt(m) = &mut transport {
            m.version = MqttVersion::V5;
        }
        let mut plan = small_plan(30, 16, transport);
        plan.target = TargetPlan::External {
            urls: broker.urls(),
            processes: None,
            name: None,
        };
        let r = run_in_process(&plan).await;
        assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
        assert_eq!(r.overhead_bytes_per_message, expected, "{over:?}: {r:?}");
    }
}
