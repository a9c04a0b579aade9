//! Pass/fail limits on result columns, written in a scenario's `[thresholds]` table, such as
//! `latency_p99_us < 50000`. Parsing and evaluation are pure, so a CI job's verdict is a
//! function of the results alone.

use std::fmt;

use serde::Serialize;

use crate::result::RunResult;

/// Exit code of a run whose results broke at least one threshold (k6 uses the same).
pub const EXIT_THRESHOLDS_BROKEN: u8 = 99;

/// The scope that applies a threshold to every transport.
pub const ALL: &str = "all";

/// One limit: `column op limit`, applied to the runs named by `scope`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// `all`, a transport kind (`websocket`) or a label (`http-poll(minimal)`).
    pub scope: String,
    pub column: String,
    pub op: Op,
    pub limit: f64,
}

/// A comparison operator of a threshold expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

/// Two-character operators first, so `<=` is not read as `<` followed by `=`.
const OPS: [(&str, Op); 6] = [
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<", Op::Lt),
    (">", Op::Gt),
];

impl Op {
    fn symbol(self) -> &'static str {
        OPS.iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(symbol, _)| symbol)
    }

    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Eq => measured == limit,
            Op::Ne => measured != limit,
            Op::Ge => measured >= limit,
            Op::Gt => measured > limit,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.column, self.op.symbol(), self.limit)
    }
}

/// Why a threshold expression could not be read; the scenario parser adds the position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpressionError {
    #[error(
        "{0:?} is not a threshold: expected COLUMN OP NUMBER such as \"latency_p99_us < 50000\""
    )]
    Shape(String),
    #[error("unknown result column `{name}`: expected {}", similar_columns(name))]
    Column { name: String },
    #[error("{0:?} is not an operator: expected one of <, <=, ==, !=, >=, >")]
    Operator(String),
    #[error("{0:?} is not a number: expected a finite number such as 50000, 0.999 or 2")]
    Number(String),
}

/// Reads `column op number` (spaces optional) into a threshold for `scope`.
pub fn parse(scope: &str, expression: &str) -> Result<Threshold, ExpressionError> {
    let text = expression.trim();
    let column_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (column, rest) = text.split_at(column_end);
    if column.is_empty() || rest.trim().is_empty() {
        return Err(ExpressionError::Shape(expression.to_string()));
    }
    if !numeric_columns().iter().any(|c| c == column) {
        return Err(ExpressionError::Column {
            name: column.to_string(),
        });
    }
    let rest = rest.trim_start();
    let op_end = rest
        .find(|c: char| !"<>=!".contains(c))
        .unwrap_or(rest.len());
    let (symbol, number) = rest.split_at(op_end);
    let op = OPS
        .iter()
        .find(|(s, _)| *s == symbol)
        .map(|(_, op)| *op)
        .ok_or_else(|| ExpressionError::Operator(symbol.to_string()))?;
    let number = number.trim();
    let limit = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| ExpressionError::Number(number.to_string()))?;
    Ok(Threshold {
        scope: scope.to_string(),
        column: column.to_string(),
        op,
        limit,
    })
}

/// The `RunResult` columns a threshold may test: numbers, and the optional numbers that
/// serialize as `null` in the default result (such as `target_cpu_s`).
pub fn numeric_columns() -> Vec<String> {
    match serde_json::to_value(RunResult::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| v.is_number() || v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

/// The numeric columns that share the unknown name's first word, or all of them: a hint
/// short enough to read.
fn similar_columns(name: &str) -> String {
    let all = numeric_columns();
    let word = name.split('_').next().unwrap_or_default();
    let similar: Vec<&str> = all
        .iter()
        .filter(|c| !word.is_empty() && c.starts_with(word))
        .map(String::as_str)
        .collect();
    if similar.is_empty() {
        format!("a numeric result column, one of {}", all.join(", "))
    } else {
        format!("a numeric result column such as {}", similar.join(", "))
    }
}

/// Whether `scope` names this run: `all`, its kind or its label.
pub fn applies(scope: &str, result: &RunResult) -> bool {
    scope == ALL || scope == result.transport || scope == result.transport_kind
}

/// How one threshold fared on one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub transport: String,
    pub scope: String,
    pub expression: String,
    pub column: String,
    pub op: Op,
    pub limit: f64,
    /// `None` when the run could not measure the column: the threshold then counts as broken.
    pub measured: Option<f64>,
    pub held: bool,
}

/// Every threshold against every run it applies to, in threshold order.
pub fn evaluate(thresholds: &[Threshold], results: &[RunResult]) -> Vec<Outcome> {
    thresholds
        .iter()
        .flat_map(|t| {
            results
                .iter()
                .filter(|r| applies(&t.scope, r))
                .map(move |r| outcome(t, r))
        })
        .collect()
}

fn outcome(threshold: &Threshold, result: &RunResult) -> Outcome {
    let measured = serde_json::to_value(result)
        .ok()
        .and_then(|v| v.get(&threshold.column).and_then(serde_json::Value::as_f64));
    Outcome {
        transport: result.transport.clone(),
        scope: threshold.scope.clone(),
        expression: threshold.to_string(),
        column: threshold.column.clone(),
        op: threshold.op,
        limit: threshold.limit,
        measured,
        held: measured.is_some_and(|m| threshold.op.holds(m, threshold.limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator_with_or_without_spaces() {
        let t = parse("all", "latency_p99_us<=50000").unwrap();
        assert_eq!(
            (t.column.as_str(), t.op, t.limit),
            ("latency_p99_us", Op::Le, 50000.0)
        );
        assert_eq!(
            parse("all", " delivery_ratio >= 0.999 ").unwrap().op,
            Op::Ge
        );
        assert_eq!(parse("all", "lost != 1").unwrap().op, Op::Ne);
        assert_eq!(parse("all", "lost > 1").unwrap().op, Op::Gt);
        assert_eq!(parse("all", "lost < 1").unwrap().op, Op::Lt);
        assert_eq!(parse("all", "lost == 1").unwrap().op, Op::Eq);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(matches!(
            parse("all", "bogus < 1"),
            Err(ExpressionError::Column { .. })
        ));
        assert!(matches!(
            parse("all", "transport == 1"),
            Err(ExpressionError::Column { .. })
        ));
        assert!(matches!(
            parse("all", "lost => 1"),
            Err(ExpressionError::Operator(_))
        ));
        assert!(matches!(
            parse("all", "lost < many"),
            Err(ExpressionError::Number(_))
        ));
        assert!(matches!(
            parse("all", "lost < inf"),
            Err(ExpressionError::Number(_))
        ));
        assert!(matches!(
            parse("all", "lost"),
            Err(ExpressionError::Shape(_))
        ));
        assert!(matches!(
            parse("all", "< 3"),
            Err(ExpressionError::Shape(_))
        ));
    }

    #[test]
    fn optional_columns_are_numeric_and_fail_when_not_measured() {
        let t = parse("all", "target_cpu_s < 5").unwrap();
        let outcomes = evaluate(&[t], &[RunResult::default()]);
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].measured, None);
        assert!(!outcomes[0].held);
    }

    #[test]
    fn scopes_pick_runs_by_label_kind_or_all() {
        let ws = RunResult {
            transport: "websocket".into(),
            transport_kind: "websocket".into(),
            overhead_bytes_per_message: 2.0,
            ..RunResult::default()
        };
        let poll = RunResult {
            transport: "http-poll(minimal)".into(),
            transport_kind: "http-poll".into(),
            overhead_bytes_per_message: 250.0,
            ..RunResult::default()
        };
        let results = [ws, poll];
        let by_kind = parse("websocket", "overhead_bytes_per_message <= 2").unwrap();
        let by_label = parse("http-poll(minimal)", "overhead_bytes_per_message <= 2").unwrap();
        let everywhere = parse(ALL, "overhead_bytes_per_message <= 2").unwrap();
        let outcomes = evaluate(&[by_kind, by_label, everywhere], &results);
        let held: Vec<(&str, bool)> = outcomes
            .iter()
            .map(|o| (o.transport.as_str(), o.held))
            .collect();
        assert_eq!(
            held,
            [
                ("websocket", true),
                ("http-poll(minimal)", false),
                ("websocket", true),
                ("http-poll(minimal)", false)
            ]
        );
        assert_eq!(outcomes[1].measured, Some(250.0));
    }
}
