//! What a link does to packets, per direction, and the named profiles that stand for real
//! networks. Plain data: `shaping`, `netem` and `delay` turn it into kernel state.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The conditions of one direction of the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    /// Added to every packet (one way).
    #[serde(with = "as_text")]
    pub delay: Duration,
    /// Each packet's delay is `delay` ± up to `jitter`, uniformly (as netem's default
    /// distribution); packets keep their order (unless `reorder` lets some skip it).
    #[serde(with = "as_text")]
    pub jitter: Duration,
    /// Share of packets dropped at random, 0..=1.
    pub loss: f64,
    /// Share of packets, 0..=1, that skip the delay (netem's `reorder`): they overtake the
    /// packets held before them.
    #[serde(default)]
    pub reorder: f64,
    /// Bits per second the direction carries at most; `None`: unlimited.
    pub rate_bps: Option<u64>,
}

impl Direction {
    /// Whether packets of this direction must pass the userspace delay queue.
    pub fn delays(&self) -> bool {
        !self.delay.is_zero() || !self.jitter.is_zero()
    }
}

/// Durations in results as scenarios write them (`"50ms"`), not as serde's secs/nanos pair.
mod as_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Both directions of the link; `up` is fleet → target, `down` target → fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// The named profile the conditions came from, if any.
    pub profile: Option<String>,
    pub up: Direction,
    pub down: Direction,
}

/// A named profile: its conditions and where its figures come from.
pub struct Profile {
    pub name: &'static str,
    pub source: &'static str,
    pub conditions: fn() -> Conditions,
}

const fn kbit(k: u64) -> Option<u64> {
    Some(k * 1000)
}

fn symmetric(
    name: &str,
    one_way: Duration,
    loss: f64,
    up: Option<u64>,
    down: Option<u64>,
) -> Conditions {
    let direction = |rate_bps| Direction {
        delay: one_way,
        jitter: Duration::ZERO,
        loss,
        reorder: 0.0,
        rate_bps,
    };
    Conditions {
        profile: Some(name.to_string()),
        up: direction(up),
        down: direction(down),
    }
}

/// The profiles a scenario can name (`network.profile`). RTTs are split evenly over the two
/// directions.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "4g",
        source: "Lighthouse's default mobile throttling (\"Slow 4G\"): 150 ms RTT, \
                 1.6 Mbit/s down, 750 kbit/s up, no loss (roughly the slowest quarter of 4G \
                 connections)",
        conditions: || symmetric("4g", Duration::from_millis(75), 0.0, kbit(750), kbit(1638)),
    },
    Profile {
        name: "3g",
        source: "Chrome DevTools' \"Slow 3G\" preset: 400 ms RTT, 400 kbit/s each way, no loss",
        conditions: || symmetric("3g", Duration::from_millis(200), 0.0, kbit(400), kbit(400)),
    },
    Profile {
        name: "lossy-wifi",
        source: "pushbench's own choice, not a measurement: a short last hop (10 ms RTT, \
                 ±2 ms jitter) that loses 2% of packets each way",
        conditions: || {
            let mut c = symmetric("lossy-wifi", Duration::from_millis(5), 0.02, None, None);
            c.up.jitter = Duration::from_millis(2);
            c.down.jitter = Duration::from_millis(2);
            c
        },
    },
    Profile {
        name: "satellite",
        source: "a geostationary hop: 4 × 35,786 km at the speed of light is 477 ms of \
                 propagation alone; 600 ms RTT adds the ground segment. Rates (10 Mbit/s \
                 down, 1 Mbit/s up) are pushbench's own choice",
        conditions: || {
            symmetric(
                "satellite",
                Duration::from_millis(300),
                0.0,
                kbit(1000),
                kbit(10_000),
            )
        },
    },
];

/// The profile called `name`.
pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_named_as_it_is_listed() {
        for p in PROFILES {
            assert_eq!((p.conditions)().profile.as_deref(), Some(p.name));
            assert!(profile(p.name).is_some());
        }
        assert!(profile("5g").is_none());
    }

    #[test]
    fn the_4g_profile_has_lighthouses_round_trip() {
        let c = (profile("4g").unwrap().conditions)();
        assert_eq!(c.up.delay + c.down.delay, Duration::from_millis(150));
        assert_eq!(c.down.rate_bps, Some(1_638_000));
    }
}
