//! MQTT transport: exact per-message overhead and QoS delivery semantics against a real
//! broker on 127.0.0.1 (the embedded rumqttd here; mosquitto in tests/mosquitto.rs).

mod common;

use std::time::Duration;

use common::{mqtt, run_in_process, small_plan};
use pushbench::plan::{
    LastWillPlan, MqttClient, MqttOver, MqttVersion, TlsPlan, TlsVersion, TransportPlan, WillCut,
};
use pushbench::result::RunResult;

async fn run(qos: u8, over: MqttOver) -> RunResult {
    let r = run_in_process(&small_plan(30, 16, mqtt(qos, over))).await;
    assert_eq!(r.messages_delivered, 30 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.window_messages, 30 * 10, "{r:?}");
    r
}

/// PUBLISH at QoS 0: fixed header 1 + remaining length 1 + topic length 2 + topic 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_publish_costs_exactly_11_bytes_over_its_payload() {
    let r = run(0, MqttOver::Tcp).await;
    assert_eq!(r.overhead_bytes_per_message, 11.0, "{r:?}");
    assert_eq!(r.window_bytes_up, 0, "a QoS 0 subscriber sends nothing");
}

/// QoS 1 adds the packet id (2) and the subscriber's PUBACK (4), on either client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_adds_packet_id_and_puback() {
    for r in [run(1, MqttOver::Tcp).await, run_lean(1).await] {
        assert_eq!(r.overhead_bytes_per_message, 11.0 + 2.0 + 4.0, "{r:?}");
        assert_eq!(r.window_bytes_up, 4 * r.window_messages, "{r:?}");
    }
}

/// QoS 2 adds the packet id (2) and PUBREC + PUBREL + PUBCOMP (4 each), on either client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_adds_packet_id_and_three_acks() {
    for r in [run(2, MqttOver::Tcp).await, run_lean(2).await] {
        assert_eq!(r.overhead_bytes_per_message, 11.0 + 2.0 + 12.0, "{r:?}");
        assert_eq!(
            r.window_bytes_up,
            8 * r.window_messages,
            "PUBREC and PUBCOMP: {r:?}"
        );
    }
}

/// Over WebSocket each broker→client PUBLISH travels in its own binary frame: 2 bytes more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websocket_adds_the_frame_header() {
    let r = run(0, MqttOver::Websocket).await;
    assert_eq!(r.overhead_bytes_per_message, 13.0, "{r:?}");
    assert!(
        r.setup_bytes_per_client > 200.0,
        "the HTTP upgrade is setup: {r:?}"
    );
}

/// Clients that fall silent: the broker must notice by its keep-alive timeout (1.5 × 1 s)
/// and publish every will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_silenced_client_leaves_its_will_within_the_keep_alive_bound() {
    let mut plan = small_plan(20, 16, mqtt(1, MqttOver::Tcp));
    let TransportPlan::Mqtt(m) = &mut plan.transports[0].transport else {
        unreachable!()
    };
    m.keep_alive = Duration::from_secs(1);
    m.last_will = Some(LastWillPlan {
        topic: "wills/{client}".into(),
        cut: WillCut::Silence,
    });
    plan.duration = Duration::from_secs(5);
    let r = run_in_process(&plan).await;
    assert_eq!(r.messages_expected, 20, "{r:?}");
    assert_eq!(r.messages_delivered, 20, "{r:?}");
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert_eq!(r.will_expected_within_us, Some(1_500_000));
    assert_eq!(r.clients_connected, 20, "{r:?}");
}

/// MQTT 5: the PUBLISH carries a property length (1 byte, no properties); a PUBACK with
/// reason Success and no properties stays 4 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_publish_adds_the_property_length() {
    for (qos, expected) in [(0, 12.0), (1, 12.0 + 2.0 + 4.0)] {
        let mut transport = mqtt(qos, MqttOver::Tcp);
        if let TransportPlan::Mqtt(m) = &mut transport {
            m.version = MqttVersion::V5;
        }
        let r = run_in_process(&small_plan(30, 16, transport)).await;
        assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
        assert_eq!(r.overhead_bytes_per_message, expected, "QoS {qos}: {r:?}");
    }
}

/// The lean client's subscribers of `bench/t` at `qos`: the same run as `run`.
async fn run_lean(qos: u8) -> RunResult {
    let mut transport = mqtt(qos, MqttOver::Tcp);
    if let TransportPlan::Mqtt(m) = &mut transport {
        m.client = MqttClient::Lean;
    }
    let r = run_in_process(&small_plan(30, 16, transport)).await;
    assert_eq!(r.messages_delivered, 30 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.window_messages, 30 * 10, "{r:?}");
    assert_eq!(r.qos_granted, Some(u64::from(qos)), "{r:?}");
    r
}

/// The lean client counts at its own stream what rumqttc's derives from the kernel: the
/// same 11 bytes of a QoS 0 PUBLISH, and nothing up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_qos0_costs_the_same_11_bytes_as_rumqttc() {
    let r = run_lean(0).await;
    assert_eq!(r.overhead_bytes_per_message, 11.0, "{r:?}");
    assert_eq!(r.window_bytes_up, 0, "a QoS 0 subscriber sends nothing");
    assert!(r.transport.ends_with(",lean)"), "{}", r.transport);
}

/// A QoS 0 subscriber sends nothing else, so the lean client must ping at its keep-alive
/// (the broker may drop a client silent for 1.5 × 1 s): over 4 s it sends its 2-byte
/// PINGREQs and keeps its one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_client_pings_at_its_keep_alive() {
    let mut transport = mqtt(0, MqttOver::Tcp);
    if let TransportPlan::Mqtt(m) = &mut transport {
        m.client = MqttClient::Lean;
        m.keep_alive = Duration::from_secs(1);
    }
    let mut plan = small_plan(5, 16, transport);
    plan.duration = Duration::from_secs(4);
    let r = run_in_process(&plan).await;
    assert_eq!(r.reconnects, 0, "{r:?}");
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert!(r.window_bytes_up >= 5 * 2 * 3, "PINGREQs of 2 bytes: {r:?}");
    assert_eq!(r.window_bytes_up % 2, 0, "only PINGREQs go up: {r:?}");
}

/// Over TLS 1.3 (the same `spec.open` as every stream client) each PUBLISH and each PUBACK
/// travels in a record of its own: 5-byte header, 1-byte content type, 16-byte tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_client_over_tls13_costs_its_framing_plus_a_record_per_packet() {
    const RECORD_BYTES: f64 = 5.0 + 1.0 + 16.0;
    for (qos, framing, records) in [(0, 11.0, 1.0), (1, 17.0, 2.0)] {
        let mut transport = mqtt(qos, MqttOver::Tcp);
        if let TransportPlan::Mqtt(m) = &mut transport {
            m.client = MqttClient::Lean;
        }
        let mut plan = small_plan(20, 16, transport);
        plan.transports[0].tls = Some(TlsPlan {
            version: TlsVersion::V1_3,
            ..TlsPlan::default()
        });
        let r = run_in_process(&plan).await;
        assert_eq!(r.messages_delivered, r.messages_expected, "{r:?}");
        assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
        assert_eq!(r.transport, format!("mqtt(qos{qos},tcp,lean)+tls"));
        assert_eq!(
            r.tls_overhead_bytes_per_message,
            records * RECORD_BYTES,
            "QoS {qos}: {r:?}"
        );
        assert_eq!(
            r.overhead_bytes_per_message,
            framing + records * RECORD_BYTES,
            "QoS {qos}: {r:?}"
        );
        // Counted at the stream, unlike rumqttc's: a PUBLISH and its PUBACK, a record each.
        assert_eq!(r.tls_records_per_message, records, "QoS {qos}: {r:?}");
        assert!(r.tls_setup_bytes_per_client > 0.0, "QoS {qos}: {r:?}");
    }
}
