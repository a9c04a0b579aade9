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
    Closed {
        start: WireCounts,
        end: WireCounts,
    },
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
    let mut outcome = FleetOutcome::default();
    let mut earlier = WireCounts::default(); // connections that have ended
    let mut bytes = ByteWindow::Waiting;
    let mut payloads: Vec<Received> = Vec::new();
    let mut conn: Option<T> = None;

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
                let Some(t) = connect::<T>(&spec, &shared).await else {
                    break;
                };
                if outcome.clients_connected == 0 {
                    outcome.setup = t.wire();
                    outcome.clients_connected = 1;
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
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
        if step.is_err() {
            earlier += transport.wire();
            conn = None;
            shared.disconnects.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (count, highest) = account(&payloads, &mut delivery, &shared, index);
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
                outcome.window_messages += count;
                outcome.window_exchanges += 1;
                if highest.is_some_and(|h| h >= window.last) {
                    ByteWindow::Closed {
                        start,
                        end: earlier + transport.wire(),
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
    outcome.total_wire = now;
    outcome.window_wire = match bytes {
        ByteWindow::Waiting => WireCounts::default(),
        ByteWindow::Open { start } => now - start,
        ByteWindow::Closed { start, end } => end - start,
    };
    outcome.delivery = delivery.counts(shared.due_through());
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
    shared: &Shared,
    index: usize,
) -> (u64, Option<u64>) {
    let mut highest = None;
    let mut count = 0;
    for (stamp, at) in payloads
        .iter()
        .filter_map(|r| Some((Stamp::decode(&r.payload)?, r.at)))
    {
        let received_us = unix_us(at);
        count += 1;
        highest = highest.max(Some(stamp.seq));
        delivery.record(stamp.seq);
        if delivery.tracks(stamp.seq) {
            shared.record_latency(index, received_us.saturating_sub(stamp.intended_us));
        }
    }
    shared.delivered.fetch_add(count, Ordering::Relaxed);
    (count, highest)
}
