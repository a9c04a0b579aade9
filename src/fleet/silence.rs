//! Each client's longest silence: the longest time between two of its deliveries, and when.
//! A fault shows up as the silence that spans its end; where that silence ends is when the
//! client recovered. Kept per client (two numbers) so that recovery is a per-client figure
//! without the clients knowing when faults happen.

use serde::{Deserialize, Serialize};

/// One client's tracker.
#[derive(Debug, Default, Clone, Copy)]
pub struct LongestSilence {
    last_us: Option<u64>,
    longest: Option<(u64, u64)>,
}

impl LongestSilence {
    /// A delivery at `at_us` (Unix µs).
    pub fn delivered(&mut self, at_us: u64) {
        if let Some(last) = self.last_us {
            let gap = at_us.saturating_sub(last);
            if self.longest.is_none_or(|(start, end)| gap > end - start) {
                self.longest = Some((last, at_us));
            }
        }
        self.last_us = Some(at_us.max(self.last_us.unwrap_or(0)));
    }

    /// `(start, end)` in Unix µs; `None` before a second delivery.
    pub fn longest(&self) -> Option<(u64, u64)> {
        self.longest
    }
}

/// Every client's longest silence, merged across clients and workers by concatenation.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silences(pub Vec<(u64, u64)>);

impl std::ops::AddAssign for Silences {
    fn add_assign(&mut self, other: Silences) {
        self.0.extend(other.0);
    }
}

impl Silences {
    /// For each client whose longest silence spans `at_us`: ms from `at_us` to its end (its
    /// first delivery after `at_us`), sorted.
    pub fn recoveries_ms(&self, at_us: u64) -> Vec<f64> {
        let mut ms: Vec<f64> = self
            .0
            .iter()
            .filter(|(start, end)| *start <= at_us && at_us <= *end)
            .map(|(_, end)| (end - at_us) as f64 / 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_is_kept_with_its_end() {
        let mut s = LongestSilence::default();
        for at in [1_000, 2_000, 3_000, 9_000, 10_000] {
            s.delivered(at);
        }
        assert_eq!(s.longest(), Some((3_000, 9_000)));
    }

    #[test]
    fn recovery_counts_only_silences_spanning_the_faults_end() {
        let silences = Silences(vec![(1_000, 9_000), (2_000, 6_000), (7_000, 8_000)]);
        assert_eq!(silences.recoveries_ms(5_000), [1.0, 4.0]);
    }
}
