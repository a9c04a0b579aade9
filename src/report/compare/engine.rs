//! The comparison itself: transports matched by label, one row per metric with its verdict,
//! and the count of regressions that decides the exit code.

use std::path::Path;

use serde::Serialize;

use super::rules::{self, Better, METRICS, Noise, Rules, Tolerance};
use crate::result::RunResult;

/// The outcome of one metric of one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Same,
    Improved,
    Regression,
    /// The baseline did not measure it: nothing to compare against.
    NotComparable,
}

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub transport: String,
    pub metric: String,
    pub better: Better,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub change_pct: Option<f64>,
    pub tolerance: Tolerance,
    pub verdict: Verdict,
}

/// Everything `compare` found; `regressions` decides the exit code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Transports the baseline has and the current run lacks: each counts as a regression.
    pub only_in_baseline: Vec<String>,
    /// Transports new in the current run: reported, nothing to compare against.
    pub only_in_current: Vec<String>,
    /// Current runs that were interrupted: each counts as a regression.
    pub incomplete: Vec<String>,
    /// The latency slack the rows used, in µs.
    pub latency_slack_us: f64,
    pub regressions: usize,
}

/// Compares every metric of every transport (matched by label) present in both.
pub fn compare(baseline: &[RunResult], current: &[RunResult], rules: &Rules) -> Comparison {
    let base = by_label(baseline);
    let cur = by_label(current);
    let mut rows = Vec::new();
    for (label, b) in &base {
        if let Some(c) = find(&cur, label) {
            rows.extend(METRICS.iter().map(|metric| row(metric, b, c, rules)));
        }
    }
    let only_in_baseline: Vec<String> = missing_from(&base, &cur);
    let only_in_current: Vec<String> = missing_from(&cur, &base);
    let incomplete: Vec<String> = current
        .iter()
        .filter(|r| !r.complete)
        .map(|r| r.transport.clone())
        .collect();
    let regressions = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Regression)
        .count()
        + only_in_baseline.len()
        + incomplete.len();
    Comparison {
        rows,
        only_in_baseline,
        only_in_current,
        incomplete,
        latency_slack_us: rules.latency_slack_us,
        regressions,
    }
}

/// Reads results from a `summary.json` file, or from the one inside a results folder.
pub fn read_results(path: &Path) -> anyhow::Result<Vec<RunResult>> {
    if path.is_dir() {
        crate::report::read_json(&path.join("summary.json"))
    } else {
        crate::report::read_json(path)
    }
}

/// Results keyed by transport label, in file order; the first of duplicate labels wins.
fn by_label(results: &[RunResult]) -> Vec<(&str, &RunResult)> {
    let mut list: Vec<(&str, &RunResult)> = Vec::new();
    for r in results {
        if !list.iter().any(|(label, _)| *label == r.transport) {
            list.push((r.transport.as_str(), r));
        }
    }
    list
}

fn find<'r>(list: &[(&str, &'r RunResult)], label: &str) -> Option<&'r RunResult> {
    list.iter().find(|(l, _)| *l == label).map(|(_, r)| *r)
}

fn missing_from(from: &[(&str, &RunResult)], other: &[(&str, &RunResult)]) -> Vec<String> {
    from.iter()
        .filter(|(label, _)| find(other, label).is_none())
        .map(|(label, _)| label.to_string())
        .collect()
}

fn row(
    &(metric, better, noise): &(&str, Better, Noise),
    base: &RunResult,
    cur: &RunResult,
    rules: &Rules,
) -> Row {
    let tolerance = rules::tolerance(metric, noise, cur, rules);
    let baseline = column(base, metric);
    let current = column(cur, metric);
    let verdict = match (baseline, current) {
        (None, _) => Verdict::NotComparable,
        (Some(_), None) => Verdict::Regression,
        (Some(b), Some(c)) => judge(better, b, c, &tolerance),
    };
    Row {
        transport: cur.transport.clone(),
        metric: metric.to_string(),
        better,
        baseline,
        current,
        change_pct: baseline.zip(current).and_then(|(b, c)| change_pct(b, c)),
        tolerance,
        verdict,
    }
}

/// A metric by its field name; `None` when it was not measured (`null`, NaN).
fn column(result: &RunResult, metric: &str) -> Option<f64> {
    serde_json::to_value(result)
        .ok()?
        .get(metric)?
        .as_f64()
        .filter(|v| v.is_finite())
}

/// Worse by more than both the percentage and the slack is a regression; better by as much
/// is an improvement. A relative 1e-12 absorbs float rounding, far below any byte.
fn judge(better: Better, base: f64, cur: f64, tolerance: &Tolerance) -> Verdict {
    let worse_by = match better {
        Better::Lower => cur - base,
        Better::Higher => base - cur,
    };
    let allowed = (base.abs() * tolerance.pct / 100.0).max(tolerance.slack) + base.abs() * 1e-12;
    if worse_by > allowed {
        Verdict::Regression
    } else if -worse_by > allowed {
        Verdict::Improved
    } else {
        Verdict::Same
    }
}

fn change_pct(base: f64, cur: f64) -> Option<f64> {
    if base == cur {
        Some(0.0)
    } else if base == 0.0 {
        None
    } else {
        Some((cur - base) / base.abs() * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::{LATENCY_SLACK_US, LATENCY_TOLERANCE_PCT};

    fn run(transport: &str, kind: &str) -> RunResult {
        RunResult {
            transport: transport.into(),
            transport_kind: kind.into(),
            complete: true,
            messages_delivered: 100,
            delivery_ratio: 1.0,
            bytes_per_message: 22.0,
            latency_p99_us: Some(10_000),
            ..RunResult::default()
        }
    }

    fn verdict(c: &Comparison, metric: &str) -> Verdict {
        c.rows.iter().find(|r| r.metric == metric).unwrap().verdict
    }

    #[test]
    fn direction_matters() {
        let base = run("websocket", "websocket");
        let fewer = RunResult {
            messages_delivered: 99,
            delivery_ratio: 0.99,
            ..base.clone()
        };
        let c = compare(std::slice::from_ref(&base), &[fewer], &Rules::default());
        assert_eq!(verdict(&c, "messages_delivered"), Verdict::Regression);
        assert_eq!(verdict(&c, "delivery_ratio"), Verdict::Regression);
        let smaller = RunResult {
            bytes_per_message: 21.0,
            ..base.clone()
        };
        let c = compare(&[base], &[smaller], &Rules::default());
        assert_eq!(verdict(&c, "bytes_per_message"), Verdict::Improved);
        assert_eq!(c.regressions, 0);
    }

    #[test]
    fn latency_must_grow_by_both_the_percentage_and_the_slack() {
        let default = Tolerance {
            pct: LATENCY_TOLERANCE_PCT,
            slack: LATENCY_SLACK_US,
        };
        let judged = |base, cur| judge(Better::Lower, base, cur, &default);
        assert_eq!(judged(10_000.0, 16_000.0), Verdict::Regression);
        assert_eq!(judged(10_000.0, 14_000.0), Verdict::Same);
        assert_eq!(judged(2_000.0, 6_000.0), Verdict::Same);
        assert_eq!(judged(2_000.0, 7_500.0), Verdict::Regression);
        assert_eq!(judged(16_000.0, 10_000.0), Verdict::Same);
        assert_eq!(judged(16_000.0, 6_000.0), Verdict::Improved);
    }

    #[test]
    fn latency_that_is_no_longer_measured_is_a_regression() {
        let base = run("websocket", "websocket");
        let silent = RunResult {
            latency_p99_us: None,
            ..base.clone()
        };
        let c = compare(std::slice::from_ref(&base), &[silent], &Rules::default());
        assert_eq!(verdict(&c, "latency_p99_us"), Verdict::Regression);
        // Nor is one the baseline never measured anything to compare with.
        assert_eq!(verdict(&c, "latency_p50_us"), Verdict::NotComparable);
    }

    #[test]
    fn one_sided_transports_and_interrupted_runs_are_counted() {
        let base = [
            run("websocket", "websocket"),
            run("http-longpoll(minimal)", "http-longpoll"),
        ];
        let cur = [
            RunResult {
                complete: false,
                ..run("websocket", "websocket")
            },
            run("mqtt", "mqtt"),
        ];
        let c = compare(&base, &cur, &Rules::default());
        assert_eq!(c.only_in_baseline, ["http-longpoll(minimal)"]);
        assert_eq!(c.only_in_current, ["mqtt"]);
        assert_eq!(c.incomplete, ["websocket"]);
        assert_eq!(c.regressions, 2);
    }
}
