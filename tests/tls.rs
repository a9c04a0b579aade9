//! TLS under the transports, against the embedded hub over TLS on 127.0.0.1: what each record
//! adds, derived from the RFCs' record layouts, and what a resumed handshake saves.

mod common;

use std::time::Duration;

use common::{run_in_process, small_plan};
use pushbench::plan::{HttpVersion, MqttOver, Plan, TlsCipher, TlsPlan, TlsVersion, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::result::RunResult;

/// RFC 8446 §5.1–5.2: a TLS 1.3 record is a 5-byte header, then the AEAD-protected
/// plaintext followed by its 1-byte inner content type, then the AEAD tag (16 bytes for
/// AES-GCM and ChaCha20-Poly1305).
const TLS13_RECORD_BYTES: f64 = 5.0 + 1.0 + 16.0;

/// RFC 5246 §6.2.3.3 with RFC 5288 §3: a TLS 1.2 AES-GCM record is the 5-byte header, an
/// 8-byte explicit nonce, then the ciphertext and the 16-byte tag.
const TLS12_AES_GCM_RECORD_BYTES: f64 = 5.0 + 8.0 + 16.0;

fn websocket() -> TransportPlan {
    TransportPlan::Websocket {
        read_buffer_bytes: 4096,
        ping: None,
    }
}

fn over_tls(mut plan: Plan, version: TlsVersion) -> Plan {
    plan.transports[0].tls = Some(TlsPlan {
        version,
        ..TlsPlan::default()
    });
    plan
}

async fn run_tls(
    clients: u32,
    payload: usize,
    transport: TransportPlan,
    v: TlsVersion,
) -> RunResult {
    run_in_process(&over_tls(small_plan(clients, payload, transport), v)).await
}

fn assert_all_delivered(r: &RunResult) {
    assert_eq!(r.messages_delivered, r.messages_expected, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls13_costs_2_plus_22_bytes_per_16_byte_message() {
    let r = run_tls(20, 16, websocket(), TlsVersion::V1_3).await;
    assert_all_delivered(&r);
    assert_eq!(r.transport, "websocket+tls");
    assert_eq!(r.tls, "1.3");
    assert_eq!(r.tls_records_per_message, 1.0, "{r:?}");
    assert_eq!(
        r.tls_overhead_bytes_per_message, TLS13_RECORD_BYTES,
        "{r:?}"
    );
    assert_eq!(
        r.overhead_bytes_per_message,
        2.0 + TLS13_RECORD_BYTES,
        "{r:?}"
    );
    // The handshake (a certificate of a few hundred bytes among it) is setup.
    assert!(r.tls_setup_bytes_per_client > 500.0, "{r:?}");
    // Its CPU is the connect phase's: the fleet's measured; the target's is inside the
    // fleet's process here, so not measured on its own.
    assert!(
        r.fleet_connect_cpu_us_per_connection
            .is_some_and(|us| us >= 0.0),
        "{r:?}"
    );
    assert_eq!(r.target_connect_cpu_us_per_connection, None, "{r:?}");
    assert!(r.connects_per_s > 0.0, "{r:?}");
    // The whole run's records (what the capture cross-check compares): the window's, and
    // beyond them at least a ClientHello and a ServerHello for every client.
    let window_records = r.window_messages; // one record a message, asserted above
    let total = r.total_tls_records.expect("a TLS run counts its records");
    assert!(total >= window_records + 2 * r.clients, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls13_costs_4_plus_22_bytes_per_200_byte_message() {
    let r = run_tls(20, 200, websocket(), TlsVersion::V1_3).await;
    assert_all_delivered(&r);
    assert_eq!(r.tls_records_per_message, 1.0, "{r:?}");
    assert_eq!(
        r.overhead_bytes_per_message,
        4.0 + TLS13_RECORD_BYTES,
        "{r:?}"
    );
}

/// rustls prefers AES-256-GCM on both sides, so TLS 1.2 negotiates an AES-GCM suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls12_aes_gcm_costs_2_plus_29_bytes_per_16_byte_message() {
    let r = run_tls(20, 16, websocket(), TlsVersion::V1_2).await;
    assert_all_delivered(&r);
    assert_eq!(r.transport, "websocket+tls1.2");
    assert_eq!(r.tls_records_per_message, 1.0, "{r:?}");
    assert_eq!(
        r.tls_overhead_bytes_per_message, TLS12_AES_GCM_RECORD_BYTES,
        "{r:?}"
    );
    assert_eq!(
        r.overhead_bytes_per_message,
        2.0 + TLS12_AES_GCM_RECORD_BYTES,
        "{r:?}"
    );
}

/// RFC 7905 §2: ChaCha20-Poly1305 over TLS 1.2 has an implicit nonce: 5 + 16 = 21 bytes a
/// record. Over TLS 1.3 every AEAD costs the same 22.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chosen_cipher_decides_the_tls12_record_and_not_the_tls13_one() {
    for (version, record) in [
        (TlsVersion::V1_2, 5.0 + 16.0),
        (TlsVersion::V1_3, TLS13_RECORD_BYTES),
    ] {
        let mut plan = over_tls(small_plan(10, 16, websocket()), version);
        if let Some(tls) = &mut plan.transports[0].tls {
            tls.cipher = Some(TlsCipher::Chacha20Poly1305);
        }
        let r = run_in_process(&plan).await;
        assert_all_delivered(&r);
        assert!(
            r.transport.ends_with("(chacha20-poly1305)"),
            "{}",
            r.transport
        );
        assert_eq!(r.tls_records_per_message, 1.0, "{r:?}");
        assert_eq!(r.tls_overhead_bytes_per_message, record, "{r:?}");
        assert_eq!(r.overhead_bytes_per_message, 2.0 + record, "{r:?}");
    }
}

fn longpoll(http: HttpVersion) -> TransportPlan {
    TransportPlan::HttpLongpoll {
        http,
        headers: HeaderProfile::Minimal,
        timeout: Duration::from_secs(30),
    }
}

/// Over TLS a poll exchange costs its cleartext bytes plus one record per write: the
/// overhead is the cleartext run's plus 22 bytes per record counted.
async fn assert_cleartext_plus_records(transport: TransportPlan) {
    let clear = run_in_process(&small_plan(10, 16, transport.clone())).await;
    let tls = run_tls(10, 16, transport, TlsVersion::V1_3).await;
    assert_all_delivered(&clear);
    assert_all_delivered(&tls);
    assert!(tls.tls_records_per_message >= 2.0, "{tls:?}");
    assert_window_is_cleartext_plus_records(&clear, &tls);
}

/// The TLS run's window bytes are the cleartext run's plus 22 per record, to the byte (in
/// whole bytes: per-message figures are rounded floats).
fn assert_window_is_cleartext_plus_records(clear: &RunResult, tls: &RunResult) {
    assert_eq!(clear.window_messages, tls.window_messages);
    let bytes = |r: &RunResult| r.window_bytes_up + r.window_bytes_down;
    let records = (tls.tls_records_per_message * tls.window_messages as f64).round() as u64;
    assert_eq!(
        bytes(tls),
        bytes(clear) + TLS13_RECORD_BYTES as u64 * records,
        "cleartext {clear:?}\nTLS {tls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_long_polling_costs_its_cleartext_bytes_plus_22_per_record() {
    assert_cleartext_plus_records(longpoll(HttpVersion::Http11)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_long_polling_over_h2_costs_its_cleartext_bytes_plus_22_per_record() {
    assert_cleartext_plus_records(longpoll(HttpVersion::Http2)).await;
}

fn sse(http: HttpVersion) -> TransportPlan {
    TransportPlan::Sse {
        headers: HeaderProfile::Minimal,
        http,
        keepalive: None,
    }
}

/// One event, one record: an event stream costs its cleartext framing plus 22 bytes.
async fn assert_one_record_per_event(http: HttpVersion) {
    let clear = run_in_process(&small_plan(10, 16, sse(http))).await;
    let tls = run_tls(10, 16, sse(http), TlsVersion::V1_3).await;
    assert_all_delivered(&clear);
    assert_all_delivered(&tls);
    assert_eq!(tls.tls_records_per_message, 1.0, "{tls:?}");
    assert_window_is_cleartext_plus_records(&clear, &tls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_over_tls_costs_one_record_per_event() {
    assert_one_record_per_event(HttpVersion::Http11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_over_h2_and_tls_costs_one_record_per_event() {
    assert_one_record_per_event(HttpVersion::Http2).await;
}

/// Interval polls that find nothing cost records too: whatever the number of polls per
/// message, the TLS share is exactly 22 bytes per record counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_interval_polling_pays_22_bytes_per_record() {
    for http in [HttpVersion::Http11, HttpVersion::Http2] {
        let transport = TransportPlan::HttpPoll {
            http,
            interval: Duration::from_millis(20),
            headers: HeaderProfile::Minimal,
        };
        let r = run_tls(10, 16, transport, TlsVersion::V1_3).await;
        assert_all_delivered(&r);
        assert!(r.tls_records_per_message >= 2.0, "{r:?}");
        let whole = |per_message: f64| (per_message * r.window_messages as f64).round();
        assert_eq!(
            whole(r.tls_overhead_bytes_per_message),
            TLS13_RECORD_BYTES * whole(r.tls_records_per_message),
            "{r:?}"
        );
    }
}

/// A client's second connection resumes the session its first one was given a ticket for:
/// no certificate, no signature, so fewer setup bytes.
#[tokio::test]
async fn a_reconnect_resumes_the_session_with_fewer_setup_bytes() {
    use pushbench::targets::hub::{Hub, HubConfig};
    use pushbench::tls::{EMBEDDED_SERVER_NAME, EndpointTls, Trust};
    use pushbench::transport::{ClientSpec, Transport, WebSocket};
    use std::sync::Arc;

    let config = HubConfig {
        tls: true,
        ..HubConfig::default()
    };
    let hub = Hub::start(([127, 0, 0, 1], 0).into(), config)
        .await
        .unwrap();
    let certificate = hub.certificate_der().expect("a TLS hub has a certificate");
    let tls = EndpointTls::new(
        &TlsPlan::default(),
        EMBEDDED_SERVER_NAME.to_string(),
        Trust::Certificates(vec![certificate.to_vec()]),
    );
    let spec = ClientSpec {
        endpoint: Arc::new(pushbench::targets::Endpoint {
            addr: hub.local_addr(),
            authority: hub.local_addr().to_string(),
            tls: Some(tls),
        }),
        channel: "0".into(),
        plan: Arc::new(websocket()),
        index: 0,
        client_id: "resumer".into(),
        last_event_id: Default::default(),
        tls_sessions: Default::default(),
        qos2_session: Default::default(),
        adapter: Default::default(),
        validators: Default::default(),
    };
    let full = WebSocket::connect(&spec).await.unwrap().wire();
    let resumed = WebSocket::connect(&spec).await.unwrap().wire();
    let setup = |w: pushbench::wire::WireCounts| w.total() - w.plaintext_total();
    assert!(
        setup(resumed) < setup(full),
        "TLS handshake bytes: full {} B, resumed {} B",
        setup(full),
        setup(resumed)
    );
    // Everything above TLS is the same: the HTTP upgrade.
    assert_eq!(full.plaintext_total(), resumed.plaintext_total());
    let other = ClientSpec {
        tls_sessions: Default::default(),
        qos2_session: Default::default(),
        ..spec.clone()
    };
    let fresh = WebSocket::connect(&other).await.unwrap().wire();
    // (A full handshake's size varies by a byte or two: the ECDSA signature's DER length.)
    assert!(
        setup(fresh) > setup(resumed),
        "another client resumes nothing: fresh {} B, resumed {} B",
        setup(fresh),
        setup(resumed)
    );
}

const SCENARIO_HEAD: &str = "name = \"t\"\nclients = 1\nduration = \"1s\"\n\
    [messages]\nrate = \"1/s\"\n[[transports]]\nkind = \"websocket\"\n";

#[test]
fn a_tls_section_sets_version_and_resumption_and_labels_the_runs() {
    let text = format!("{SCENARIO_HEAD}[tls]\nversion = \"1.2\"\nresumption = false\n");
    let plan = pushbench::scenario::parse(&text, "t.toml").unwrap();
    let tls = plan.transports[0].tls.clone().expect("[tls] given");
    assert_eq!((tls.version, tls.resumption), (TlsVersion::V1_2, false));
    assert_eq!(tls.label_suffix(), "+tls1.2");
    let text = format!("{SCENARIO_HEAD}[tls]\ncipher = \"aes-128-gcm\"\n");
    let plan = pushbench::scenario::parse(&text, "t.toml").unwrap();
    let tls = &plan.transports[0].tls;
    assert_eq!(
        tls.as_ref().and_then(|t| t.cipher),
        Some(TlsCipher::Aes128Gcm)
    );
    let none = pushbench::scenario::parse(SCENARIO_HEAD, "t.toml").unwrap();
    assert_eq!(none.transports[0].tls, None);
}

/// A threshold names a TLS run by the label its results carry.
#[test]
fn thresholds_scope_tls_runs_by_their_tls_label() {
    let tls = format!("{SCENARIO_HEAD}[tls]\n[thresholds]\n\"websocket+tls\" = [\"lost == 0\"]\n");
    let plan = pushbench::scenario::parse(&tls, "t.toml").unwrap();
    assert_eq!(plan.thresholds[0].scope, "websocket+tls");
    let clear = format!("{SCENARIO_HEAD}[thresholds]\n\"websocket+tls\" = [\"lost == 0\"]\n");
    let e = pushbench::scenario::parse(&clear, "t.toml").unwrap_err();
    assert!(e.to_string().contains("names no transport"), "{e}");
}

#[test]
fn tls_errors_say_where_and_what_to_write() {
    let embedded_ca = format!("{SCENARIO_HEAD}[tls]\nca = \"ca.pem\"\n");
    let e = pushbench::scenario::parse(&embedded_ca, "t.toml").unwrap_err();
    assert!(e.to_string().starts_with("t.toml:9:1: `tls.ca`"), "{e}");
    let version = format!("{SCENARIO_HEAD}[tls]\nversion = \"1.1\"\n");
    let e = pushbench::scenario::parse(&version, "t.toml").unwrap_err();
    assert!(e.to_string().contains("1.3"), "{e}");
    let external = SCENARIO_HEAD.replace(
        "[[transports]]",
        "[target]\nkind = \"external\"\nurls = [\"https://127.0.0.1:8443\"]\n[tls]\n[[transports]]",
    );
    let e = pushbench::scenario::parse(&external, "t.toml").unwrap_err();
    assert!(e.to_string().contains("insecure = true"), "{e}");
}

/// MQTT over TLS 1.3 to the embedded broker (rumqttd behind pushbench's TLS front), topic
/// `bench/t`, 16-byte payload: PUBLISH's 11 bytes of framing plus one record, 22 bytes; the
/// plaintext is derived from the packets rumqttc handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_qos0_over_tls13_costs_11_plus_22_bytes() {
    let r = run_tls(20, 16, common::mqtt(0, MqttOver::Tcp), TlsVersion::V1_3).await;
    assert_all_delivered(&r);
    assert_eq!(r.transport, "mqtt(qos0,tcp)+tls");
    assert_eq!(
        r.tls_overhead_bytes_per_message, TLS13_RECORD_BYTES,
        "{r:?}"
    );
    assert_eq!(
        r.overhead_bytes_per_message,
        11.0 + TLS13_RECORD_BYTES,
        "{r:?}"
    );
    assert!(
        r.tls_records_per_message.is_nan(),
        "not seen on rumqttc's socket: {r:?}"
    );
    assert_eq!(r.total_tls_records, None, "{r:?}");
}

/// MQTT over WebSocket over TLS (`wss`): the broker's frame header (2 bytes for a short
/// frame) joins PUBLISH's 11, all in one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_wss_costs_11_plus_2_plus_22_bytes() {
    let r = run_tls(
        20,
        16,
        common::mqtt(0, MqttOver::Websocket),
        TlsVersion::V1_3,
    )
    .await;
    assert_all_delivered(&r);
    assert_eq!(r.transport, "mqtt(qos0,ws)+tls");
    assert_eq!(
        r.tls_overhead_bytes_per_message, TLS13_RECORD_BYTES,
        "{r:?}"
    );
    assert_eq!(
        r.overhead_bytes_per_message,
        11.0 + 2.0 + TLS13_RECORD_BYTES,
        "{r:?}"
    );
}

/// QoS 1: the PUBLISH (11 + 2-byte packet id) and the client's PUBACK (4), each in a record
/// of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_qos1_over_tls13_costs_17_plus_two_records() {
    let r = run_tls(20, 16, common::mqtt(1, MqttOver::Tcp), TlsVersion::V1_3).await;
    assert_all_delivered(&r);
    assert_eq!(
        r.tls_overhead_bytes_per_message,
        2.0 * TLS13_RECORD_BYTES,
        "{r:?}"
    );
    assert_eq!(
        r.overhead_bytes_per_message,
        17.0 + 2.0 * TLS13_RECORD_BYTES,
        "{r:?}"
    );
}

/// MQTT over TLS 1.3 against mosquitto's TLS listener (`scripts/targets/mosquitto.sh`),
/// trusting only the CA the script made.
async fn run_against_mosquitto_over_tls(qos: u8) -> RunResult {
    let broker = common::Mosquitto::start_with_tls();
    let mut plan = small_plan(20, 16, common::mqtt(qos, MqttOver::Tcp));
    plan.target = pushbench::plan::TargetPlan::External {
        urls: broker.urls(),
        processes: None,
        name: None,
    };
    plan.transports[0].tls = Some(TlsPlan {
        ca: Some(broker.ca()),
        ..TlsPlan::default()
    });
    let r = run_in_process(&plan).await;
    drop(broker);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_mqtt_over_tls13_costs_11_plus_22_at_qos0_and_17_plus_44_at_qos1() {
    let r = run_against_mosquitto_over_tls(0).await;
    assert_all_delivered(&r);
    assert_eq!(
        r.overhead_bytes_per_message,
        11.0 + TLS13_RECORD_BYTES,
        "{r:?}"
    );
    let r = run_against_mosquitto_over_tls(1).await;
    assert_all_delivered(&r);
    assert_eq!(
        r.overhead_bytes_per_message,
        17.0 + 2.0 * TLS13_RECORD_BYTES,
        "{r:?}"
    );
}

/// The real binary, its clients in 3 worker processes and its target in 2 shard processes:
/// each shard generates its own certificate, prints it, and the workers get the trust with
/// their endpoints; the bytes are those of one process.
#[test]
fn worker_processes_and_target_shards_speak_tls_with_each_shards_certificate() {
    let scenario = r#"
name = "tls-workers"
clients = 30
connect_rate = "300/s"
warmup = "1s"
duration = "2s"
drain = "3s"

[messages]
rate = "5/s"
payload_bytes = 16

[scale]
clients_per_worker = 10
clients_per_shard = 15

[tls]

[[transports]]
kind = "websocket"

[[transports]]
kind = "mqtt"
qos = 1
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, scenario).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
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
    let results = pushbench::report::read_json(&dir.path().join("summary.json")).unwrap();
    let expected = [
        ("websocket+tls", 2.0 + TLS13_RECORD_BYTES),
        ("mqtt(qos1,tcp)+tls", 17.0 + 2.0 * TLS13_RECORD_BYTES),
    ];
    assert_eq!(results.len(), expected.len());
    for (r, (label, overhead)) in results.iter().zip(expected) {
        assert_eq!(r.transport, label);
        assert_all_delivered(r);
        assert_eq!((r.fleet_workers, r.target_shards), (3, 2), "{r:?}");
        assert_eq!(r.overhead_bytes_per_message, overhead, "{r:?}");
        // What the handshakes cost: measured on both sides, the workers' and the target
        // processes' CPU read at the end of the connect phase.
        assert!(r.connects_per_s > 0.0, "{r:?}");
        for cpu in [
            r.fleet_connect_cpu_us_per_connection,
            r.target_connect_cpu_us_per_connection,
        ] {
            assert!(cpu.is_some_and(|us| us >= 0.0), "{r:?}");
        }
    }
}

/// Two websocket transports, the first with `tls = true`, the second plain, and no `[tls]`.
const SIDE_BY_SIDE: &str = "name = \"t\"\nclients = 20\nconnect_rate = \"2000/s\"\n\
    warmup = \"500ms\"\nduration = \"1s\"\ndrain = \"5s\"\n\
    [messages]\nrate = \"10/s\"\npayload_bytes = 16\n\
    [[transports]]\nkind = \"websocket\"\ntls = true\n\
    [[transports]]\nkind = \"websocket\"\n";

#[test]
fn tls_true_on_one_transport_puts_only_that_one_over_tls() {
    let plan = pushbench::scenario::parse(SIDE_BY_SIDE, "t.toml").unwrap();
    let labels: Vec<String> = plan.transports.iter().map(|run| run.label()).collect();
    assert_eq!(labels, ["websocket+tls", "websocket"]);
    assert_eq!(plan.transports[0].tls, Some(TlsPlan::default()));
    assert_eq!(plan.transports[1].tls, None);
    // A copy of a run keeps its TLS: it carries it.
    let copy = plan.transports[0].clone();
    assert_eq!(copy.label(), "websocket+tls");
    let summary = pushbench::scenario::describe(&plan);
    assert!(
        summary.contains("1. websocket+tls: read buffer 512 bytes (over TLS 1.3,"),
        "{summary}"
    );
    let scoped = format!("{SIDE_BY_SIDE}[thresholds]\n\"websocket+tls\" = [\"lost == 0\"]\n");
    let plan = pushbench::scenario::parse(&scoped, "t.toml").unwrap();
    assert_eq!(plan.thresholds[0].scope, "websocket+tls");
}

#[test]
fn tls_false_keeps_one_transport_in_clear_under_a_tls_section() {
    let text = format!(
        "{SCENARIO_HEAD}[[transports]]\nkind = \"sse\"\ntls = false\n[tls]\nversion = \"1.2\"\n"
    );
    let plan = pushbench::scenario::parse(&text, "t.toml").unwrap();
    let labels: Vec<String> = plan.transports.iter().map(|run| run.label()).collect();
    assert_eq!(labels, ["websocket+tls1.2", "sse(minimal)"]);
    assert_eq!(plan.transports[1].tls, None);
    let summary = pushbench::scenario::describe(&plan);
    assert!(
        summary.contains("2. sse(minimal): no keep-alive, HTTP/1.1 (in clear)"),
        "{summary}"
    );
    assert!(
        summary.contains("1. websocket+tls1.2: read buffer 512 bytes (over TLS 1.2,"),
        "{summary}"
    );
}

#[test]
fn transport_tls_errors_say_where_and_what_to_write() {
    let text = format!("{SCENARIO_HEAD}tls = \"yes\"\n");
    let e = pushbench::scenario::parse(&text, "t.toml").unwrap_err();
    assert!(e.to_string().starts_with("t.toml:8:7: "), "{e}");
    assert!(e.to_string().contains("expected true or false"), "{e}");
    let external = SCENARIO_HEAD.replace(
        "[[transports]]",
        "[target]\nkind = \"external\"\nurls = [\"http://127.0.0.1:8080\"]\n[[transports]]",
    ) + "tls = true\n";
    let e = pushbench::scenario::parse(&external, "t.toml").unwrap_err();
    assert!(e.to_string().starts_with("t.toml:11:7: "), "{e}");
    assert!(e.to_string().contains("insecure = true"), "{e}");
}

/// One scenario, two websocket runs on the embedded hub: the `tls = true` one pays a TLS 1.3
/// record (22 bytes) on top of the 2-byte frame header, the plain one only the frame header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_and_a_plain_websocket_run_side_by_side_in_one_plan() {
    let plan = pushbench::scenario::parse(SIDE_BY_SIDE, "t.toml").unwrap();
    let options = pushbench::runner::RunOptions {
        launch: pushbench::targets::Launch::InProcess,
        interrupt: tokio_util::sync::CancellationToken::new(),
    };
    let mut results = Vec::new();
    for transport in &plan.transports {
        let r = pushbench::runner::run_transport(&plan, transport, &options, &())
            .await
            .expect("run completes");
        assert_all_delivered(&r);
        results.push(r);
    }
    let (tls, clear) = (&results[0], &results[1]);
    assert_eq!(
        (tls.transport.as_str(), tls.tls.as_str()),
        ("websocket+tls", "1.3")
    );
    assert_eq!(
        tls.overhead_bytes_per_message,
        2.0 + TLS13_RECORD_BYTES,
        "{tls:?}"
    );
    assert_eq!(format!("{:.2}", tls.overhead_bytes_per_message), "24.00");
    assert_eq!(
        (clear.transport.as_str(), clear.tls.as_str()),
        ("websocket", "")
    );
    assert_eq!(clear.overhead_bytes_per_message, 2.0, "{clear:?}");
    assert_eq!(format!("{:.2}", clear.overhead_bytes_per_message), "2.00");
    assert!(clear.tls_overhead_bytes_per_message.is_nan(), "{clear:?}");
}
