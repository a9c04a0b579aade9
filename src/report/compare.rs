//! `pushbench compare`: a current run against a baseline, metric by metric, with a verdict
//! that knows which direction is worse and how noisy each metric is.
//!
//! Byte counts and delivery are deterministic on an idle loopback, so they are compared
//! exactly; interval polling's bytes and all latencies are not, so they get a stated tolerance.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::result::RunResult;

/// Exit code of a comparison that found a regression (99 stays for broken thresholds).
pub const EXIT_REGRESSION: u8 = 98;

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
enum Noise {
    /// Delivery counts: exact.
    Count,
    /// Wire bytes: exact, except for interval polling (see `POLL_BYTES_TOLERANCE_PCT`).
    Bytes,
    /// Latency: `LATENCY_TOLERANCE_PCT` and `LATENCY_SLACK_US`.
    Latency,
}

/// The compared columns, in table order.
const METRICS: [(&str, Better, Noise); 11] = [
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

fn metric_names() -> Vec<&'static str> {
    METRICS.iter().map(|(name, _, _)| *name).collect()
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

impl Tolerance {
    fn shown(&self) -> String {
        if self.slack > 0.0 {
            format!("+{}% and > {} ms", self.pct, self.slack / 1000.0)
        } else if self.pct > 0.0 {
            format!("+{}%", self.pct)
        } else {
            "exact".to_string()
        }
    }
}

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

impl Verdict {
    fn shown(self) -> &'static str {
        match self {
            Verdict::Same => "ok",
            Verdict::Improved => "improved",
            Verdict::Regression => "REGRESSION",
            Verdict::NotComparable => "n/a",
        }
    }
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
        super::read_json(&path.join("summary.json"))
    } else {
        super::read_json(path)
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
    let tolerance = tolerance(metric, noise, cur, rules);
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

/// The most specific `--max-regression` (label, then kind, then all) or the default.
fn tolerance(metric: &str, noise: Noise, run: &RunResult, rules: &Rules) -> Tolerance {
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

const HEADERS: [&str; 7] = [
    "transport",
    "metric",
    "baseline",
    "current",
    "change",
    "allowed",
    "verdict",
];

fn cells(row: &Row) -> [String; 7] {
    [
        row.transport.clone(),
        row.metric.clone(),
        value(row.baseline),
        value(row.current),
        row.change_pct.map_or_else(
            || "n/a".to_string(),
            |p| {
                if p == 0.0 {
                    "0%".to_string()
                } else {
                    format!("{p:+.2}%")
                }
            },
        ),
        row.tolerance.shown(),
        row.verdict.shown().to_string(),
    ]
}

/// Whole numbers as such, small ratios with four decimals, the rest with two.
fn value(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) if v.abs() < 10.0 => format!("{v:.4}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Notes under the table: transports on one side only, interrupted runs, the rules, the count.
fn notes(c: &Comparison) -> Vec<String> {
    let mut notes = Vec::new();
    for t in &c.only_in_baseline {
        notes.push(format!(
            "REGRESSION: {t} is in the baseline but not in the current run"
        ));
    }
    for t in &c.only_in_current {
        notes.push(format!(
            "note: {t} is new in the current run: nothing to compare it with"
        ));
    }
    for t in &c.incomplete {
        notes.push(format!(
            "REGRESSION: the current run of {t} was interrupted"
        ));
    }
    if c.rows
        .iter()
        .any(|r| r.verdict == Verdict::Improved && r.tolerance.pct == 0.0)
    {
        notes.push("note: an exact metric improved: refresh the baseline to keep it".to_string());
    }
    notes.push(format!(
        "allowed = how much worse than the baseline a metric may get: byte counts and delivery \
         are exact; interval polling's bytes +{POLL_BYTES_TOLERANCE_PCT}% (the count of empty \
         polls at a window's edges depends on timing); latency +{LATENCY_TOLERANCE_PCT}% and \
         more than {} ms (scheduling noise) unless --max-regression or --latency-slack say \
         otherwise",
        c.latency_slack_us / 1000.0
    ));
    notes.push(match c.regressions {
        0 => "no regressions".to_string(),
        n => format!("{n} regression{}", if n == 1 { "" } else { "s" }),
    });
    notes
}

/// A plain-text table with aligned columns, then the notes.
pub fn table(c: &Comparison) -> String {
    let rows: Vec<[String; 7]> = c.rows.iter().map(cells).collect();
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([HEADERS[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| match i {
                0 | 1 | 6 => format!("{cell:<w$}"),
                _ => format!("{cell:>w$}"),
            })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(String::from));
    for r in &rows {
        out.push_str(&line(r));
    }
    for note in notes(c) {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

/// GitHub-flavoured markdown, for a CI job summary: a heading, the table, the notes.
pub fn markdown(c: &Comparison) -> String {
    let verdict = match c.regressions {
        0 => "no regressions",
        _ => "regressions found",
    };
    let mut out = format!("### pushbench compare: {verdict}\n\n");
    out.push_str(&format!("| {} |\n", HEADERS.join(" | ")));
    out.push_str("|---|---|--:|--:|--:|--:|---|\n");
    for r in &c.rows {
        let mut row = cells(r);
        if r.verdict == Verdict::Regression {
            row[6] = format!("**{}**", row[6]);
        }
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out.push('\n');
    for note in notes(c) {
        out.push_str(&format!("- {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn most_specific_override_wins_and_latency_keeps_its_slack() {
        let base = run("http-poll(minimal)", "http-poll");
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

    #[test]
    fn one_sided_transports_and_interrupted_runs_are_reported() {
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
        let text = table(&c);
        assert!(
            text.contains("http-longpoll(minimal) is in the baseline but not"),
            "{text}"
        );
        assert!(text.contains("mqtt is new"), "{text}");
    }
}
