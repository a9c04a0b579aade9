//! A comparison as text: an aligned table for the terminal, markdown for a CI job summary,
//! and the notes under either.

use super::engine::{Comparison, Row, Verdict};
use super::rules::{LATENCY_TOLERANCE_PCT, POLL_BYTES_TOLERANCE_PCT, Tolerance};
use crate::report::units::{self, Digits};

const HEADERS: [&str; 7] = [
    "transport",
    "metric",
    "baseline",
    "current",
    "change",
    "allowed",
    "verdict",
];

/// A slack in µs, as the notes and the allowed column say it.
fn slack(us: f64) -> String {
    units::duration_us(us, Digits::Three)
}

/// The allowed column; the percentage as given on the command line.
fn allowed(tolerance: &Tolerance) -> String {
    if tolerance.slack > 0.0 {
        format!("+{}% and > {}", tolerance.pct, slack(tolerance.slack))
    } else if tolerance.pct > 0.0 {
        format!("+{}%", tolerance.pct)
    } else {
        "exact".to_string()
    }
}

fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Same => "ok",
        Verdict::Improved => "improved",
        Verdict::Regression => "REGRESSION",
        Verdict::NotComparable => "n/a",
    }
}

/// A baseline or current value: one column holds counts, ratios and bytes.
fn value(v: Option<f64>) -> String {
    units::optional(v, |v| units::figure(v, Digits::Mixed))
}

fn change(pct: Option<f64>) -> String {
    match pct {
        None => "n/a".to_string(),
        Some(0.0) => "0%".to_string(),
        Some(p) => format!("{p:+.2}%"),
    }
}

fn cells(row: &Row) -> [String; 7] {
    [
        row.transport.clone(),
        row.metric.clone(),
        value(row.baseline),
        value(row.current),
        change(row.change_pct),
        allowed(&row.tolerance),
        verdict(row.verdict).to_string(),
    ]
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
         more than {} (scheduling noise) unless --max-regression or --latency-slack say \
         otherwise",
        slack(c.latency_slack_us)
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

    #[test]
    fn one_sided_transports_and_interrupted_runs_are_noted() {
        let c = Comparison {
            rows: Vec::new(),
            only_in_baseline: vec!["http-longpoll(minimal)".into()],
            only_in_current: vec!["mqtt".into()],
            incomplete: vec!["websocket".into()],
            latency_slack_us: 5000.0,
            regressions: 2,
        };
        let text = table(&c);
        assert!(
            text.contains("http-longpoll(minimal) is in the baseline but not"),
            "{text}"
        );
        assert!(text.contains("mqtt is new"), "{text}");
        assert!(text.contains("the current run of websocket was interrupted"));
        assert!(text.contains("more than 5 ms (scheduling noise)"), "{text}");
        assert!(text.ends_with("2 regressions\n"), "{text}");
    }

    #[test]
    fn values_that_were_not_measured_read_as_a_dash() {
        assert_eq!(value(None), units::NOT_MEASURED);
        assert_eq!(value(Some(0.99)), "0.9900");
        assert_eq!(change(None), "n/a");
    }
}
