//! What `compare` judges and how strictly: the compared metrics with their direction and
//! noise, the `--max-regression` and `--latency-slack` rules, and the tolerance they give
//! each metric of each transport.

use std::str::FromStr;

use serde::Serialize;

use crate::result::RunResult;

/// Default latency slack: differences below it never count (loopback scheduling noise).
pub const LATENCY_SLACK_US: f64 = 5000.0;
/// Default allowed latency growth, in percent.
pub const LATENCY_TOLERANCE_PCT: f64 = 50.0;
/// Default allowed growth of interval polling's bytes, in percent: a client whose random poll
/// phase lands within a few ms of a publish catches a message one poll early or late at the
/// edge of its byte window, moving its count of empty polls (304) by one. A one-byte growth
/// of the request or the answer is ~0.4% in the ci-smoke scenario, well above this.
pub const POLL_BYTES_TOLERANCE_PCT: f64 = 0.1;

/// Which direction of change is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// How a metric behaves from run to run, which sets its default tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Noise {
    /// Delivery counts: exact.
    Count,
    /// Wire bytes: exact, except for interval polling (see `POLL_BYTES_TOLERANCE_PCT`).
    Bytes,
    /// Latency: `LATENCY_TOLERANCE_PCT` and `LATENCY_SLACK_US`.
    Latency,
}

/// The compared columns, in table order.
pub(super) const METRICS: [(&str, Better, Noise); 11] = [
    ("messages_delivered", Better::Higher, Noise::Count),
    ("delivery_ratio", Better::Higher, Noise::Count),
    ("lost", Better::Lower, Noise::Count),
    ("duplicated", Better::Lower, Noise::Count),
    ("out_of_order", Better::Lower, Noise::Count),
    ("connect_failures", Better::Lower, Noise::Count),
    ("bytes_per_message", Better::Lower, Noise::Bytes),
    ("overhead_bytes_per_message", Better::Lower, Noise::Bytes),
    ("setup_bytes_per_client", Better::Lower, Noise::Bytes),
    ("latency_p50_us", Better::Lower, Noise::Latency),
    ("latency_p99_us", Better::Lower, Noise::Latency),
];

fn metric_names() -> Vec<&'static str> {
    METRICS.iter().map(|(name, _, _)| *name).collect()
}

/// `--max-regression [TRANSPORT:]METRIC=PCT`: how much worse a metric may get, in percent of
/// the baseline, for every transport or for one kind or label.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxRegression {
    pub transport: Option<String>,
    pub metric: String,
    pub pct: f64,
}

/// A `--max-regression` value that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MaxRegressionError {
    #[error(
        "expected [TRANSPORT:]METRIC=PCT such as latency_p99_us=20% or http-poll:bytes_per_message=0.5%"
    )]
    Shape,
    #[error("`{name}` is not a compared metric: expected one of {}", metric_names().join(", "))]
    Metric { name: String },
    #[error("{0:?} is not a percentage: expected a number of at least 0, such as 20%")]
    Percent(String),
}

impl FromStr for MaxRegression {
    type Err = MaxRegressionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (target, pct) = text.split_once('=').ok_or(MaxRegressionError::Shape)?;
        let (transport, metric) = match target.rsplit_once(':') {
            Some((transport, metric)) => (Some(transport.trim().to_string()), metric.trim()),
            None => (None, target.trim()),
        };
        if transport.as_deref() == Some("") {
            return Err(MaxRegressionError::Shape);
        }
        if !metric_names().contains(&metric) {
            return Err(MaxRegressionError::Metric {
                name: metric.to_string(),
            });
        }
        let number = pct.trim().trim_end_matches('%').trim();
        let pct = number
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p >= 0.0)
            .ok_or_else(|| MaxRegressionError::Percent(pct.to_string()))?;
        Ok(MaxRegression {
            transport,
            metric: metric.to_string(),
            pct,
        })
    }
}

/// What `compare` allows beyond its defaults: `--max-regression` and `--latency-slack`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub max_regression: Vec<MaxRegression>,
    /// Latency growth below this many µs never counts, whatever the percentage.
    pub latency_slack_us: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_regression: Vec::new(),
            latency_slack_us: LATENCY_SLACK_US,
        }
    }
}

/// How much worse a value may get: `pct` of the baseline, and at least an absolute `slack`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tolerance {
    pub pct: f64,
    pub slack: f64,
}

/// The most specific `--max-regression` (label, then kind, then all) or the default.
pub(super) fn tolerance(metric: &str, noise: Noise, run: &RunResult, rules: &Rules) -> Tolerance {
    let slack = if noise == Noise::Latency {
        rules.latency_slack_us
    } else {
        0.0
    };
    let chosen = |scope: Option<&str>| {
        rules
            .max_regression
            .iter()
            .rev()
            .find(|o| o.metric == metric && o.transport.as_deref() == scope)
    };
    let explicit = chosen(Some(&run.transport))
        .or_else(|| chosen(Some(&run.transport_kind)))
        .or_else(|| chosen(None));
    let pct = match (explicit, noise) {
        (Some(o), _) => o.pct,
        (None, Noise::Latency) => LATENCY_TOLERANCE_PCT,
        (None, Noise::Bytes) if run.transport_kind == "http-poll" => POLL_BYTES_TOLERANCE_PCT,
        (None, _) => 0.0,
    };
    Tolerance { pct, slack }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_max_regression_with_and_without_a_transport() {
        let all: MaxRegression = "latency_p99_us=20%".parse().unwrap();
        assert_eq!((all.transport, all.pct), (None, 20.0));
        let one: MaxRegression = "http-poll(minimal):bytes_per_message=0.5".parse().unwrap();
        assert_eq!(one.transport.as_deref(), Some("http-poll(minimal)"));
        assert_eq!(one.pct, 0.5);
        assert!(matches!(
            "bogus=1%".parse::<MaxRegression>(),
            Err(MaxRegressionError::Metric { .. })
        ));
        assert!(matches!(
            "lost=-1%".parse::<MaxRegression>(),
            Err(MaxRegressionError::Percent(_))
        ));
        assert!(matches!(
            "lost".parse::<MaxRegression>(),
            Err(MaxRegressionError::Shape)
        ));
    }

    #[test]
    fn most_specific_override_wins_and_latency_keeps_its_slack() {
        let base = RunResult {
            transport: "http-poll(minimal)".into(),
            transport_kind: "http-poll".into(),
            ..RunResult::default()
        };
        let rules = Rules {
            max_regression: ["bytes_per_message=5%", "http-poll:bytes_per_message=1%"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            latency_slack_us: 100_000.0,
        };
        assert_eq!(
            tolerance("bytes_per_message", Noise::Bytes, &base, &rules).pct,
            1.0
        );
        assert_eq!(
            tolerance("bytes_per_message", Noise::Bytes, &base, &Rules::default()).pct,
            POLL_BYTES_TOLERANCE_PCT
        );
        let latency = tolerance("latency_p99_us", Noise::Latency, &base, &Rules::default());
        assert_eq!(
            (latency.pct, latency.slack),
            (LATENCY_TOLERANCE_PCT, LATENCY_SLACK_US)
        );
    }
}
