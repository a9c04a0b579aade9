//! What became of the messages each scheduled fault was due to carry. A fault's span is the
//! sequence numbers whose scheduled publish time fell between its start and its end; the run
//! learns each span as the fault begins and ends, and every client notes its arrivals inside
//! a span as they come (a handful per client: those of the fault's few seconds). Once the run
//! is over and every span is known, each client's arrivals are sorted into delivered during
//! the fault, delivered after it (resent by TCP or the broker's session, or fetched from the
//! server's history), duplicated, and lost.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::MeasuredSeqs;

/// A figure the run has not learnt yet.
const UNKNOWN: u64 = u64::MAX;

/// The spans of a run's scheduled faults, in schedule order, shared by its clients.
#[derive(Debug, Default)]
pub struct Spans(Vec<Span>);

#[derive(Debug)]
struct Span {
    /// First sequence number due at or after the fault's start.
    first: AtomicU64,
    /// First sequence number due at or after its end (the span is `first..end`).
    end: AtomicU64,
    /// When it ended, Unix µs.
    ended_us: AtomicU64,
}

/// A span as sent to worker processes: what is known of it so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanState {
    pub first: Option<u64>,
    pub end: Option<u64>,
    pub ended_us: Option<u64>,
}

impl Spans {
    /// `faults` spans, none of them begun.
    pub fn new(faults: usize) -> Spans {
        Spans(
            (0..faults)
                .map(|_| Span {
                    first: AtomicU64::new(UNKNOWN),
                    end: AtomicU64::new(UNKNOWN),
                    ended_us: AtomicU64::new(UNKNOWN),
                })
                .collect(),
        )
    }

    /// Fault `k` began: messages from `first` on are due while it lasts.
    pub fn began(&self, k: usize, first: u64) {
        if let Some(span) = self.0.get(k) {
            span.first.store(first, Ordering::Relaxed);
        }
    }

    /// Fault `k` ended at `ended_us`: messages from `end` on were due after it.
    pub fn ended(&self, k: usize, end: u64, ended_us: u64) {
        if let Some(span) = self.0.get(k) {
            span.ended_us.store(ended_us, Ordering::Relaxed);
            span.end.store(end, Ordering::Relaxed);
        }
    }

    /// What is known of every span, for a worker.
    pub fn state(&self) -> Vec<SpanState> {
        let known = |v: &AtomicU64| Some(v.load(Ordering::Relaxed)).filter(|&v| v != UNKNOWN);
        self.0
            .iter()
            .map(|s| SpanState {
                first: known(&s.first),
                end: known(&s.end),
                ended_us: known(&s.ended_us),
            })
            .collect()
    }

    /// Takes over what the coordinator knows (a worker's copy).
    pub fn set(&self, states: &[SpanState]) {
        for (k, s) in states.iter().enumerate() {
            if let Some(first) = s.first {
                self.began(k, first);
            }
            if let (Some(end), Some(ended_us)) = (s.end, s.ended_us) {
                self.ended(k, end, ended_us);
            }
        }
    }

    /// Notes the arrival of `seq` at `at_us` in every span that holds it, so far as known:
    /// a span whose end is not known yet holds everything from its first.
    pub fn note(&self, arrivals: &mut Arrivals, seq: u64, at_us: u64, first_delivery: bool) {
        for (k, span) in self.0.iter().enumerate() {
            if seq >= span.first.load(Ordering::Relaxed) && seq < span.end.load(Ordering::Relaxed) {
                arrivals.0.push(Arrival {
                    fault: k,
                    seq,
                    at_us,
                    first_delivery,
                });
            }
        }
    }

    /// One client's figures per fault, from its arrivals, once every span is known: it was
    /// due the measured messages of each span up to `due_through`.
    pub fn sort(
        &self,
        arrivals: &Arrivals,
        window: MeasuredSeqs,
        due_through: u64,
    ) -> FaultDeliveries {
        let measured = window.first..=window.last.min(due_through);
        let states = self.state();
        let sorted = states
            .iter()
            .enumerate()
            .map(|(k, s)| match (s.first, s.end, s.ended_us) {
                (Some(first), Some(end), Some(ended_us)) => {
                    let in_span = arrivals.0.iter().filter(|a| a.fault == k);
                    sort_span(in_span, first..end, ended_us, &measured)
                }
                _ => FaultDelivery::default(),
            });
        FaultDeliveries(sorted.collect())
    }
}

/// One span's figures: the measured sequence numbers of `span` were due, and each arrival
/// of one of them came before or after `ended_us`.
fn sort_span<'a>(
    arrivals: impl Iterator<Item = &'a Arrival>,
    span: std::ops::Range<u64>,
    ended_us: u64,
    measured: &std::ops::RangeInclusive<u64>,
) -> FaultDelivery {
    let due = span.end.min(measured.end().saturating_add(1));
    let mut d = FaultDelivery {
        due: due.saturating_sub(span.start.max(*measured.start())),
        ..FaultDelivery::default()
    };
    for a in arrivals.filter(|a| span.contains(&a.seq) && measured.contains(&a.seq)) {
        match (a.first_delivery, a.at_us < ended_us) {
            (false, _) => d.duplicated += 1,
            (true, true) => d.delivered_during += 1,
            (true, false) => d.delivered_after += 1,
        }
    }
    d.lost = d.due.saturating_sub(d.delivered_during + d.delivered_after);
    d
}

/// One measured message's arrival inside a fault's span.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    fault: usize,
    seq: u64,
    at_us: u64,
    /// Its first arrival at this client (a later one is a duplicate).
    first_delivery: bool,
}

/// One client's arrivals inside fault spans, until the run is over.
#[derive(Debug, Default, Clone)]
pub struct Arrivals(Vec<Arrival>);

impl std::ops::AddAssign for Arrivals {
    fn add_assign(&mut self, other: Arrivals) {
        self.0.extend(other.0);
    }
}

/// What became of the messages due while one fault lasted: one per subscriber and sequence
/// number, summed over clients. `due = delivered_during + delivered_after + lost`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultDelivery {
    pub due: u64,
    /// Arrived before the fault ended.
    pub delivered_during: u64,
    /// Arrived after it ended: resent by TCP or by the broker's session, or fetched again
    /// from the server's history on reconnecting.
    pub delivered_after: u64,
    /// Never arrived.
    pub lost: u64,
    /// Arrivals beyond a message's first.
    pub duplicated: u64,
}

/// Per scheduled fault, in schedule order; summed over clients element by element.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultDeliveries(pub Vec<FaultDelivery>);

impl std::ops::AddAssign for FaultDeliveries {
    fn add_assign(&mut self, other: FaultDeliveries) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), FaultDelivery::default());
        }
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            mine.due += theirs.due;
            mine.delivered_during += theirs.delivered_during;
            mine.delivered_after += theirs.delivered_after;
            mine.lost += theirs.lost;
            mine.duplicated += theirs.duplicated;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: MeasuredSeqs = MeasuredSeqs { first: 2, last: 19 };

    /// Fault 0 spans 5..10 and ended at 1,000 µs; fault 1 spans 0..3 (partly warm-up) and
    /// ended at 50 µs.
    fn spans() -> Spans {
        let spans = Spans::new(2);
        spans.began(0, 5);
        spans.began(1, 0);
        spans.ended(1, 3, 50);
        spans
    }

    #[test]
    fn arrivals_are_sorted_into_during_after_duplicated_and_lost() {
        let spans = spans();
        let mut a = Arrivals::default();
        spans.note(&mut a, 5, 900, true); // during
        spans.note(&mut a, 6, 1_200, true); // after
        spans.note(&mut a, 6, 1_300, false); // duplicate
        spans.note(&mut a, 12, 1_400, true); // noted while the end was unknown: outside
        spans.ended(0, 10, 1_000);
        spans.note(&mut a, 9, 1_500, true); // after
        spans.note(&mut a, 10, 1_500, true); // after the span
        spans.note(&mut a, 2, 20, true); // fault 1, during
        let d = spans.sort(&a, WINDOW, 19);
        let fault0 = FaultDelivery {
            due: 5,
            delivered_during: 1,
            delivered_after: 2,
            lost: 2,
            duplicated: 1,
        };
        // Fault 1's span holds one measured message (2): warm-up is not due.
        let fault1 = FaultDelivery {
            due: 1,
            delivered_during: 1,
            ..FaultDelivery::default()
        };
        assert_eq!(d.0, [fault0, fault1]);
    }

    #[test]
    fn only_what_was_due_counts_and_unknown_spans_count_nothing() {
        let spans = spans();
        spans.ended(0, 10, 1_000);
        // Publishing stopped after 7: 8 and 9 were never due.
        let d = spans.sort(&Arrivals::default(), WINDOW, 7);
        assert_eq!((d.0[0].due, d.0[0].lost), (3, 3));
        let unended = Spans::new(1);
        unended.began(0, 4);
        assert_eq!(
            unended.sort(&Arrivals::default(), WINDOW, 19).0,
            [FaultDelivery::default()]
        );
    }

    #[test]
    fn a_workers_copy_takes_over_the_state_and_sums_add_up_per_fault() {
        let copy = Spans::new(2);
        copy.set(&spans().state());
        assert_eq!(copy.state(), spans().state());
        let one = FaultDelivery {
            due: 3,
            lost: 3,
            ..FaultDelivery::default()
        };
        let mut sum = FaultDeliveries(vec![one]);
        sum += FaultDeliveries(vec![one, one]);
        assert_eq!(sum.0[0].lost, 6);
        assert_eq!(sum.0[1].due, 3);
    }
}
