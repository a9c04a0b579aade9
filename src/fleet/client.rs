//! The one client loop every transport runs: connect (with retries), receive, account.
//!
//! The byte window of a client opens right after the exchange that delivers the last warm-up
//! message and closes with the exchange that delivers the last measured one. Bytes and the
//! messages they carried are thus counted over exactly the same exchanges, which makes
//! per-message figures exact (a WebSocket frame of a 16-byte payload is 2 bytes more, never
//! 1.97), while the delivery accounting follows sequence numbers, not windows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{FleetOutcome, Shared};
use crate::payload::{Stamp, unix_us};
use crate::plan::WillCut;
use crate::stats::Delivery;
use crate::transport::{ClientSpec, Received, Transport};
use crate::wire::WireCounts;

/// First wait after a failed connect; doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where a client's byte window stands.
enum ByteWindow {
    /// Before the last warm-up message arrived.
    Waiting,
    Open {
        start: WireCounts,
    },
    /// What the window carried (its end less its start).
    Closed {
        counted: WireCounts,
    },
}

/// What a client counts while it runs; its outcome is made of it when it ends. Smaller than
/// the whole outcome, whose other figures are known only then: every client's task holds it.
#[derive(Default)]
struct Tally {
    /// The first connection's connect and subscribe.
    setup: WireCounts,
    connected: bool,
    granted_qos: Option<u8>,
    window_messages: u64,
    window_exchanges: u64,
    total_exchanges: u64,
    arrivals: super::spans::Arrivals,
}

impl Tally {
    fn into_outcome(self) -> FleetOutcome {
        let mut outcome = FleetOutcome {
            setup: self.setup,
            clients_connected: u64::from(self.connected),
            window_messages: self.window_messages,
            window_exchanges: self.window_exchanges,
            total_exchanges: self.total_exchanges,
            arrivals: self.arrivals,
            ..FleetOutcome::default()
        };
        if let Some(qos) = self.granted_qos {
            outcome.granted(qos);
        }
        outcome
    }
}

/// Runs one client until it has received the last measured message, the run stops, or the
/// client is cut off (then it stays down until the run stops).
pub async fn run_client<T: Transport>(
    spec: ClientSpec,
    shared: Arc<Shared>,
    index: usize,
) -> FleetOutcome {
    let window = shared.window;
    let mut delivery = Delivery::new(window.first, window.last);
    let mut tally = Tally::default();
    let mut earlier = WireCounts::default(); // connections that have ended
    let mut bytes = ByteWindow::Waiting;
    // Room for the one message a frame usually brings: a first push into an empty Vec would
    // reserve four, held by every client for its life.
    let mut payloads: Vec<Received> = Vec::with_capacity(1);
    let mut conn: Option<T> = None;
    let mut silence = super::silence::LongestSilence::default();
    // What the server sent that carried no payload, for a client that gets nothing else.
    let mut unrecognised: Option<String> = None;

    // One registration with the stop token for the client's life: a fresh `cancelled()` per
    // message would take the token's lock 100k times a second.
    let stopped = shared.stop.cancelled();
    tokio::pin!(stopped);
    let cut = shared.cut.cancelled();
    tokio::pin!(cut);
    while !shared.stop.is_cancelled() {
        let transport = match conn.as_mut() {
            Some(t) => t,
            None => {
                // Boxed: a handshake's state and its retries' are large and live only while
                // connecting; inline, they would size every client's task for its whole life.
                let Some(t) = Box::pin(connect::<T>(&spec, &shared)).await else {
                    break;
                };
                if !tally.connected {
                    tally.setup = t.wire();
                    tally.connected = true;
                    tally.granted_qos = t.granted_qos();
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    shared
                        .reconnect_bytes
                        .fetch_add(t.wire().total(), Ordering::Relaxed);
                }
                conn.insert(t)
            }
        };
        let step = tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = &mut cut => {
                stay_down(&spec, &mut conn, &mut earlier, &mut stopped).await;
                break;
            }
            step = transport.next(&mut payloads) => step,
        };
        if unrecognised.is_none() {
            unrecognised = transport.unrecognised();
        }
        if let Err(e) = step {
            shared.note_error(&e);
            earlier += transport.wire();
            conn = None;
            shared.disconnects.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tally.total_exchanges += 1;
        let (count, highest) = account(&payloads, &mut delivery, &mut tally, &shared, index);
        if let Some(first) = payloads.first().filter(|_| count > 0) {
            silence.delivered(unix_us(first.at));
        }
        payloads.clear();
        // Counters are read only where the window opens and closes: a read costs syscalls
        // (TCP_INFO, FIONREAD) that a per-message loop of 100k clients cannot afford.
        bytes = match bytes {
            ByteWindow::Waiting if highest.is_some_and(|h| h + 1 >= window.first) => {
                ByteWindow::Open {
                    start: earlier + transport.wire(),
                }
            }
            ByteWindow::Open { start } => {
                tally.window_messages += count;
                tally.window_exchanges += 1;
                if highest.is_some_and(|h| h >= window.last) {
                    ByteWindow::Closed {
                        counted: earlier + transport.wire() - start,
                    }
                } else {
                    ByteWindow::Open { start }
                }
            }
            other => other,
        };
        if matches!(bytes, ByteWindow::Closed { .. }) {
            break;
        }
    }

    let now = earlier + conn.as_ref().map(T::wire).unwrap_or_default();
    let mut outcome = tally.into_outcome();
    outcome.total_wire = now;
    outcome.window_wire = match bytes {
        ByteWindow::Waiting => WireCounts::default(),
        ByteWindow::Open { start } => now - start,
        ByteWindow::Closed { counted } => counted,
    };
    outcome.delivery = delivery.counts(shared.due_through());
    outcome.silences = super::silence::Silences(silence.longest().into_iter().collect());
    // A client waiting for a payload is stopped inside its exchange: ask its connection.
    let unrecognised = unrecognised.or_else(|| conn.as_ref().and_then(T::unrecognised));
    if outcome.delivery.delivered == 0
        && let Some(message) = unrecognised
    {
        shared.note_error(&anyhow::anyhow!(
            "the server sent messages without a pushbench payload, the first: {message}"
        ));
    }
    outcome
}

/// A cut client: it closes its connection without a goodbye (`Close`) or keeps it open but
/// mute (`Silence`, so that only the server's keep-alive can notice), until the run stops.
async fn stay_down<T: Transport>(
    spec: &ClientSpec,
    conn: &mut Option<T>,
    earlier: &mut WireCounts,
    stopped: &mut std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
) {
    if spec.plan.will_cut() != Some(WillCut::Silence)
        && let Some(closed) = conn.take()
    {
        *earlier += closed.wire();
    }
    stopped.as_mut().await;
}

/// Connects, retrying with backoff until it works or the run stops; counts failures.
async fn connect<T: Transport>(spec: &ClientSpec, shared: &Shared) -> Option<T> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return None,
            attempt = T::connect(spec) => attempt,
        };
        match attempt {
            Ok(t) => return Some(t),
            Err(e) => {
                shared.connect_failures.fetch_add(1, Ordering::Relaxed);
                shared.note_error(&e);
            }
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Records the delivery and latency of each payload; returns how many there were and the
/// highest sequence number among them.
fn account(
    payloads: &[Received],
    delivery: &mut Delivery,
    tally: &mut Tally,
    shared: &Shared,
    index: usize,
) -> (u64, Option<u64>) {
    let mut highest = None;
    let mut count = 0;
    for (stamp, at) in payloads
        .iter()
        .filter_map(|r| Some((Stamp::decode(&r.payload)?, r.at)))
    {
        let received_us = crate::clock::received_us(at);
        count += 1;
        highest = highest.max(Some(stamp.seq));
        let first_delivery = delivery.record(stamp.seq);
        if delivery.tracks(stamp.seq) {
            shared.record_latency(index, received_us.saturating_sub(stamp.intended_us));
            let arrivals = &mut tally.arrivals;
            shared
                .spans
                .note(arrivals, stamp.seq, received_us, first_delivery);
        }
    }
    shared.delivered.fetch_add(count, Ordering::Relaxed);
    (count, highest)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::fleet::{Counts, MeasuredSeqs};
    use crate::plan::TransportPlan;
    use crate::targets::Endpoint;
    use crate::transport::fake::{self, Fake, SETUP, Step, deliver};

    /// Warm-up messages 0..=2, measured 3..=5.
    const WINDOW: MeasuredSeqs = MeasuredSeqs { first: 3, last: 5 };

    fn spec(client_id: &str) -> ClientSpec {
        ClientSpec {
            endpoint: Arc::new(Endpoint {
                addr: ([127, 0, 0, 1], 9).into(),
                authority: "127.0.0.1:9".into(),
                tls: None,
            }),
            channel: "0".into(),
            plan: Arc::new(TransportPlan::Websocket {
                read_buffer_bytes: 4096,
                ping: None,
            }),
            index: 0,
            client_id: client_id.into(),
            last_event_id: Default::default(),
            validators: Default::default(),
            adapter: Default::default(),
            tls_sessions: Default::default(),
            qos2_session: Default::default(),
        }
    }

    /// Runs one scripted client to its end: by itself, or once it has delivered `delivered`
    /// messages, by ending the run with `due_through`.
    async fn run(
        client_id: &str,
        connections: Vec<Vec<Step>>,
        end_after: Option<(u64, u64)>,
    ) -> (FleetOutcome, Counts, u64) {
        fake::script(client_id, connections);
        let shared = Arc::new(Shared::new(WINDOW, CancellationToken::new()));
        let client = tokio::spawn(run_client::<Fake>(spec(client_id), Arc::clone(&shared), 0));
        if let Some((delivered, due_through)) = end_after {
            while shared.counts().delivered < delivered {
                tokio::task::yield_now().await;
            }
            shared.end(due_through);
        }
        let outcome = client.await.unwrap();
        let latency = shared.latency();
        assert!(latency.is_empty() || latency.min() == fake::LATENCY.as_micros() as u64);
        (outcome, shared.counts(), latency.len())
    }

    #[tokio::test]
    async fn the_window_opens_after_the_last_warm_up_message_and_closes_with_the_last_measured() {
        let script = vec![vec![
            deliver(&[0]),
            deliver(&[1, 2]),
            deliver(&[3]),
            deliver(&[4]),
            deliver(&[5]),
            deliver(&[6]),
        ]];
        let (o, counts, latencies) = run("window-edges", script, None).await;
        assert_eq!((o.window_messages, o.window_exchanges), (3, 3));
        assert_eq!(
            o.total_exchanges, 5,
            "every exchange read, warm-up included"
        );
        assert_eq!((o.window_wire.sent, o.window_wire.received), (15, 90));
        assert_eq!((o.setup.sent, o.setup.received), SETUP);
        // Everything up to the exchange that closed the window (messages 0..=5); the
        // exchange of message 6 was never read.
        assert_eq!(o.total_wire.sent, SETUP.0 + 5 * 6);
        assert_eq!(o.total_wire.received, SETUP.1 + 30 * 6);
        assert_eq!((o.delivery.expected, o.delivery.delivered), (3, 3));
        assert_eq!((o.delivery.lost, o.clients_connected), (0, 1));
        assert_eq!((counts.connected, counts.reconnects), (1, 0));
        assert_eq!(
            latencies, 3,
            "latency is recorded for measured messages only"
        );
    }

    #[tokio::test]
    async fn a_reconnect_in_the_window_puts_its_setup_in_the_window() {
        let script = vec![
            vec![deliver(&[2]), deliver(&[3]), Step::Break],
            vec![deliver(&[4]), deliver(&[5])],
        ];
        let (o, counts, _) = run("reconnect", script, None).await;
        assert_eq!((counts.reconnects, counts.disconnects), (1, 1));
        assert_eq!(o.window_messages, 3);
        assert_eq!(o.window_wire.sent, 5 + SETUP.0 + 5 + 5);
        assert_eq!(o.window_wire.received, 30 + SETUP.1 + 30 + 30);
        // Setup is the first connection's only.
        assert_eq!((o.setup.sent, o.setup.received), SETUP);
        assert_eq!(o.total_wire.sent, 2 * SETUP.0 + 4 * 5);
        assert_eq!(o.delivery.delivered, 3);
    }

    #[tokio::test]
    async fn duplicates_and_reordering_are_counted_and_carry_their_bytes() {
        let script = vec![vec![
            deliver(&[2]),
            deliver(&[4]),
            deliver(&[3]),
            deliver(&[4]),
            deliver(&[5]),
        ]];
        let (o, _, latencies) = run("duplicate", script, None).await;
        assert_eq!(o.delivery.delivered, 3);
        assert_eq!(o.delivery.duplicated, 1);
        assert_eq!(o.delivery.out_of_order, 1);
        assert_eq!(
            o.window_messages, 4,
            "the duplicate was carried, so it is counted"
        );
        assert_eq!(o.window_wire.received, 4 * 30);
        assert_eq!(latencies, 4);
    }

    #[tokio::test]
    async fn an_interrupted_client_expects_only_what_was_due() {
        let script = vec![vec![deliver(&[2]), deliver(&[3])]];
        let (o, _, _) = run("interrupted", script, Some((2, 4))).await;
        assert_eq!((o.delivery.expected, o.delivery.delivered), (2, 1));
        assert_eq!(o.delivery.lost, 1);
        // The window never closed: it runs to the end of the client.
        assert_eq!((o.window_messages, o.window_wire.received), (1, 30));
    }

    #[tokio::test]
    async fn arrivals_inside_a_faults_span_are_noted_with_their_duplicates() {
        fake::script(
            "fault-span",
            vec![vec![
                deliver(&[2, 3]),
                deliver(&[4]),
                deliver(&[4]),
                deliver(&[5]),
            ]],
        );
        let shared = Arc::new(Shared {
            spans: crate::fleet::spans::Spans::new(1),
            ..Shared::new(WINDOW, CancellationToken::new())
        });
        // Messages 3 and 4 were due during the fault; it ended before any of them arrived.
        shared.spans.began(0, 3);
        shared.spans.ended(0, 5, 0);
        let o = run_client::<Fake>(spec("fault-span"), Arc::clone(&shared), 0).await;
        let sorted = shared.spans.sort(&o.arrivals, WINDOW, u64::MAX);
        let d = sorted.0[0];
        assert_eq!((d.due, d.delivered_after, d.duplicated), (2, 2, 1));
        assert_eq!((d.delivered_during, d.lost), (0, 0));
    }

    #[tokio::test]
    async fn a_client_that_never_connects_has_no_setup_and_loses_everything() {
        let shared = Arc::new(Shared::new(WINDOW, CancellationToken::new()));
        let client = tokio::spawn(run_client::<Fake>(
            spec("never-scripted"),
            Arc::clone(&shared),
            0,
        ));
        while shared.counts().connect_failures < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shared.end(u64::MAX);
        let o = client.await.unwrap();
        assert_eq!(o.clients_connected, 0);
        assert_eq!(o.setup, WireCounts::default());
        assert_eq!((o.delivery.expected, o.delivery.lost), (3, 3));
        assert!(shared.first_error().unwrap().contains("no script left"));
    }
}
