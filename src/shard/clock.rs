//! A shard's clock offset to the publisher's, NTP-style: the shard stamps a request (t1), the
//! publisher stamps its arrival (t2) and its answer (t3), the shard stamps the answer's
//! arrival (t4). With symmetric paths the offset is ((t2 − t1) + (t3 − t4)) / 2; asymmetry can
//! shift it by at most half the round trip, so the sample with the smallest round trip is the
//! one kept, and half its round trip is the offset's uncertainty.

use serde::{Deserialize, Serialize};

/// One exchange's four timestamps, µs since the epoch on each side's own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub t1: i64,
    pub t2: i64,
    pub t3: i64,
    pub t4: i64,
}

impl Exchange {
    /// This clock minus the publisher's, µs.
    pub fn offset_us(&self) -> f64 {
        -((self.t2 - self.t1) + (self.t3 - self.t4)) as f64 / 2.0
    }

    /// Time on the wire both ways (the publisher's handling time excluded), µs.
    pub fn round_trip_us(&self) -> i64 {
        (self.t4 - self.t1) - (self.t3 - self.t2)
    }
}

/// What a shard reports about its clock.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClockReport {
    /// This shard's clock minus the publisher's, µs, from the best exchange of the run.
    pub offset_us: f64,
    /// ± half the best exchange's round trip, µs.
    pub uncertainty_us: f64,
    /// µs that were added to this shard's receive times (fixed when its clients started).
    pub correction_us: i64,
    /// Exchanges made over the run.
    pub exchanges: u64,
}

impl ClockReport {
    /// How far the correction that was applied can be from the truth: the best estimate's
    /// uncertainty plus how far the applied correction is from that estimate.
    pub fn latency_uncertainty_us(&self) -> f64 {
        self.uncertainty_us + (self.correction_us as f64 + self.offset_us).abs()
    }
}

/// The best exchange so far.
#[derive(Debug, Default, Clone)]
pub struct Best {
    best: Option<Exchange>,
    exchanges: u64,
}

impl Best {
    pub fn add(&mut self, e: Exchange) {
        self.exchanges += 1;
        if self
            .best
            .is_none_or(|b| e.round_trip_us() < b.round_trip_us())
        {
            self.best = Some(e);
        }
    }

    /// µs to add to this clock's readings to put them on the publisher's (0 before any).
    pub fn correction_us(&self) -> i64 {
        self.best.map_or(0, |b| -b.offset_us().round() as i64)
    }

    /// The report, with `correction_us` as applied.
    pub fn report(&self, correction_us: i64) -> ClockReport {
        match self.best {
            Some(b) => ClockReport {
                offset_us: b.offset_us(),
                uncertainty_us: b.round_trip_us().max(0) as f64 / 2.0,
                correction_us,
                exchanges: self.exchanges,
            },
            None => ClockReport {
                offset_us: f64::NAN,
                uncertainty_us: f64::NAN,
                correction_us,
                exchanges: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shard 250 ms ahead, 100 µs out and 300 µs back, 20 µs inside the publisher.
    fn skewed(out: i64, back: i64) -> Exchange {
        let (skew, t1) = (250_000, 1_000_000);
        let t2 = t1 - skew + out;
        let t3 = t2 + 20;
        Exchange {
            t1,
            t2,
            t3,
            t4: t3 + skew + back,
        }
    }

    #[test]
    fn the_offset_is_within_half_the_round_trip_and_the_shortest_wins() {
        let e = skewed(100, 300);
        assert_eq!(e.round_trip_us(), 400);
        assert_eq!(e.offset_us(), 250_000.0 + 100.0);
        assert!((e.offset_us() - 250_000.0).abs() <= e.round_trip_us() as f64 / 2.0);
        let mut best = Best::default();
        best.add(e);
        best.add(skewed(10, 10));
        best.add(skewed(1000, 50));
        let r = best.report(best.correction_us());
        assert_eq!(
            (r.offset_us, r.uncertainty_us, r.exchanges),
            (250_000.0, 10.0, 3)
        );
        assert_eq!(r.correction_us, -250_000);
        assert_eq!(r.latency_uncertainty_us(), 10.0);
        assert!(Best::default().report(0).offset_us.is_nan());
    }
}
