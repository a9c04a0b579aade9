//! TLS under the transports, against the embedded hub over TLS on 127.0.0.1: what each record
//! adds, derived from the RFCs' record layouts, and what a resumed handshake saves.

mod common;

use std::time::Duration;

use common::{run_in_process, small_plan};
use pushbench::plan::{HttpVersion, Plan, TlsPlan, TlsVersion, TransportPlan};
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
    }
}

fn over_tls(mut plan: Plan, version: TlsVersion) -> Plan {
    plan.tls = Some(TlsPlan {
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
    assert_eq!(
        tls.overhead_bytes_per_message,
        clear.overhead_bytes_per_message + TLS13_RECORD_BYTES * tls.tls_records_per_message,
        "cleartext {clear:?}\nTLS {tls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_long_polling_costs_its_cleartext_bytes_plus_22_per_record() {
    assert_cleartext_plus_records(longpoll(HttpVersion::Http11)).await;
}
