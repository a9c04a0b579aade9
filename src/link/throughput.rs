//! The link's achieved rate: the fleet's end of the link counted while the run publishes,
//! per direction, to stand beside a configured `rate`. Only the fleet's traffic crosses
//! that interface (the publisher and the run's bookkeeping take the side path), and it counts
//! Ethernet frames, as `tbf` does.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the interface counters are read.
const SAMPLE: Duration = Duration::from_millis(100);

/// The span over which the peak rate is taken.
const PEAK_OVER: Duration = Duration::from_secs(1);

/// What crossed the link while the run published, per direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// How long it was counted, s.
    pub seconds: f64,
    /// Ethernet frame bytes, target → fleet and fleet → target.
    pub down_bytes: u64,
    pub up_bytes: u64,
    /// The mean over `seconds`, bit/s.
    pub down_mean_bps: f64,
    pub up_mean_bps: f64,
    /// The highest rate over any second of it, bit/s: a link whose configured rate is the
    /// bottleneck runs at that rate.
    pub down_peak_bps: f64,
    pub up_peak_bps: f64,
}

/// One reading of the interface: when, bytes received (down), bytes sent (up).
type Reading = (Instant, u64, u64);

/// Reads `dev`'s counters until `stop`; `None` when they cannot be read.
pub async fn count(dev: &str, stop: &CancellationToken) -> Option<Throughput> {
    let mut readings = vec![read(dev)?];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(SAMPLE) => {}
        }
        readings.push(read(dev)?);
    }
    readings.extend(read(dev));
    Some(summarise(&readings))
}

fn read(dev: &str) -> Option<Reading> {
    let counter = |name: &str| {
        let path = format!("/sys/class/net/{dev}/statistics/{name}");
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((Instant::now(), counter("rx_bytes")?, counter("tx_bytes")?))
}

fn summarise(readings: &[Reading]) -> Throughput {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return Throughput::default();
    };
    let seconds = last.0.duration_since(first.0).as_secs_f64();
    let bps = |bytes: u64, s: f64| if s > 0.0 { bytes as f64 * 8.0 / s } else { 0.0 };
    let (down_bytes, up_bytes) = (last.1 - first.1, last.2 - first.2);
    let (mut down_peak_bps, mut up_peak_bps) = (0.0f64, 0.0f64);
    let mut from = 0;
    for (i, now) in readings.iter().enumerate() {
        // The earliest reading at least PEAK_OVER before this one, when there is one.
        while from + 1 < i && now.0.duration_since(readings[from + 1].0) >= PEAK_OVER {
            from += 1;
        }
        let then = readings[from];
        let span = now.0.duration_since(then.0);
        if span >= PEAK_OVER {
            let s = span.as_secs_f64();
            down_peak_bps = down_peak_bps.max(bps(now.1 - then.1, s));
            up_peak_bps = up_peak_bps.max(bps(now.2 - then.2, s));
        }
    }
    Throughput {
        seconds,
        down_bytes,
        up_bytes,
        down_mean_bps: bps(down_bytes, seconds),
        up_mean_bps: bps(up_bytes, seconds),
        down_peak_bps,
        up_peak_bps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_busiest_second_and_the_mean_the_whole() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 1 s idle, then 125,000 B down in 1 s (1 Mbit/s), then 1 s more idle; up a trickle.
        let readings = [
            (at(0), 0, 0),
            (at(500), 0, 100),
            (at(1_000), 0, 200),
            (at(1_500), 62_500, 300),
            (at(2_000), 125_000, 400),
            (at(3_000), 125_000, 600),
        ];
        let t = summarise(&readings);
        assert_eq!((t.down_bytes, t.up_bytes), (125_000, 600));
        assert_eq!(t.seconds, 3.0);
        assert_eq!(t.down_peak_bps, 1_000_000.0);
        assert_eq!(t.up_peak_bps, 1_600.0);
        assert!((t.down_mean_bps - 333_333.3).abs() < 1.0);
    }

    #[test]
    fn under_a_second_of_readings_has_no_peak() {
        let t0 = Instant::now();
        let t = summarise(&[(t0, 0, 0), (t0 + Duration::from_millis(400), 5_000, 0)]);
        assert_eq!((t.down_bytes, t.down_peak_bps), (5_000, 0.0));
        assert_eq!(summarise(&[]), Throughput::default());
    }
}
