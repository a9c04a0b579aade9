//! Delivery accounting and latency histograms: pure, mergeable, unit-tested.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Highest latency the histograms track: one hour, in µs. Larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in µs with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Records one latency, clamped into the histogram's range.
pub fn record_latency(histogram: &mut Histogram<u64>, latency_us: u64) {
    histogram.saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
}

/// The histogram in HdrHistogram's compressed V2 format, base64: small enough for a JSON
/// field, readable by every HdrHistogram implementation, mergeable without loss.
pub fn encode_histogram(histogram: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|e| anyhow::anyhow!("serializing a histogram: {e:?}"))?;
    Ok(BASE64.encode(bytes))
}

/// Reads back what `encode_histogram` wrote.
pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = BASE64
        .decode(text.trim())
        .context("histogram is not base64")?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("reading a histogram: {e:?}"))
}

/// `numerator / denominator`, or NaN (empty in CSV, null in JSON) when nothing was counted:
/// a ratio over nothing is not a measurement.
pub fn per(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        f64::NAN
    }
}

/// Latency percentiles in µs, as reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub count: u64,
}

impl Percentiles {
    /// `None` for an empty histogram: no latency was measured.
    pub fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        if histogram.is_empty() {
            return None;
        }
        Some(Percentiles {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
            count: histogram.len(),
        })
    }
}

/// Which of the expected sequence numbers one client received, and how.
#[derive(Debug, Clone)]
pub struct Delivery {
    first: u64,
    seen: Vec<u64>,
    expected: u64,
    distinct: u64,
    duplicated: u64,
    out_of_order: u64,
    highest: Option<u64>,
}

/// Delivery counts, summed over clients.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, derive_more::AddAssign,
)]
pub struct DeliveryCounts {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Clients that missed at least one expected message.
    pub clients_with_loss: u64,
}

impl Delivery {
    /// Tracks sequence numbers `first..=last`; others are ignored.
    pub fn new(first: u64, last: u64) -> Delivery {
        let expected = last.saturating_sub(first) + 1;
        Delivery {
            first,
            seen: vec![0; expected.div_ceil(64) as usize],
            expected,
            distinct: 0,
            duplicated: 0,
            out_of_order: 0,
            highest: None,
        }
    }

    /// Whether `seq` is one of the tracked (measured) messages.
    pub fn tracks(&self, seq: u64) -> bool {
        seq >= self.first && seq - self.first < self.expected
    }

    /// Notes the arrival of `seq`; true when it is a tracked message's first arrival.
    pub fn record(&mut self, seq: u64) -> bool {
        if !self.tracks(seq) {
            return false;
        }
        if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        let bit = seq - self.first;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            self.duplicated += 1;
            false
        } else {
            self.seen[word] |= mask;
            self.distinct += 1;
            true
        }
    }

    /// The counts, expecting only the tracked messages up to `due_through`: an interrupted
    /// run expects what was published before the interruption, not what never was.
    pub fn counts(&self, due_through: u64) -> DeliveryCounts {
        let expected = if due_through < self.first {
            0
        } else {
            self.expected.min(due_through - self.first + 1)
        };
        let lost = expected.saturating_sub(self.distinct);
        DeliveryCounts {
            expected,
            delivered: self.distinct,
            lost,
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            clients_with_loss: u64::from(lost > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let mut d = Delivery::new(10, 14);
        for seq in [9, 10, 12, 11, 12, 14, 15] {
            d.record(seq);
        }
        let c = d.counts(u64::MAX);
        assert_eq!(c.expected, 5);
        assert_eq!(c.delivered, 4);
        assert_eq!(c.lost, 1);
        assert_eq!(c.duplicated, 1);
        assert_eq!(c.out_of_order, 1); // 11 after 12
        assert_eq!(c.clients_with_loss, 1);
    }

    #[test]
    fn an_interruption_expects_only_what_was_due() {
        let mut d = Delivery::new(10, 14);
        for seq in [10, 11] {
            d.record(seq);
        }
        let through_11 = d.counts(11);
        assert_eq!((through_11.expected, through_11.lost), (2, 0));
        assert_eq!(through_11.clients_with_loss, 0);
        let through_12 = d.counts(12);
        assert_eq!((through_12.expected, through_12.lost), (3, 1));
        assert_eq!(d.counts(9).expected, 0);
    }

    #[test]
    fn percentiles_of_a_known_histogram() {
        let mut h = new_histogram();
        for v in 1..=1000 {
            record_latency(&mut h, v);
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, 500);
        assert_eq!(p.max, 1000);
        assert_eq!(Percentiles::of(&new_histogram()), None);
        let back = decode_histogram(&encode_histogram(&h).unwrap()).unwrap();
        assert_eq!(Percentiles::of(&back), Some(p));
    }
}
