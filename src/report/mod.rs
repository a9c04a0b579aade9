//! Reporters: pure functions of the results. Each writes its own file; one that fails does
//! not stop the others.

pub mod article;
pub mod bytes;
pub mod charts;
mod claims;
pub mod compare;
pub mod comparison;
pub mod console;
pub mod cost;
pub mod faults;
pub mod latency;
pub mod link;
pub mod progress;
mod rows;
pub mod units;
pub mod use_cases;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::result::RunResult;

/// Fields of `RunResult` left out of the CSV: too large for a spreadsheet cell.
const JSON_ONLY: &[&str] = &[
    "latency_histogram",
    "fleet_worker_delivered",
    "target_shard_cpu_s",
    "target_shard_peak_rss_bytes",
    "shards_lost",
    "shard_fleet_cpu_s",
    "shard_fleet_peak_rss_bytes",
    "shard_delivered",
    "shard_clock_offset_us",
    "shard_clock_uncertainty_us",
];

/// Renders `results` as CSV, one row per run, columns named and ordered as the `RunResult`
/// fields (serde_json's `preserve_order` keeps them in declaration order, so a column never
/// moves between runs); empty cells for values that were not measured. The csv writer quotes
/// cells that need it, such as a `fault` with commas.
pub fn csv_bytes(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let rows = results
        .iter()
        .map(|r| match serde_json::to_value(r)? {
            serde_json::Value::Object(map) => Ok(map),
            _ => anyhow::bail!("a result did not serialize to an object"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(first) = rows.first() {
        writer.write_record(first.keys().filter(|k| !JSON_ONLY.contains(&k.as_str())))?;
    }
    for row in &rows {
        let cells = row
            .iter()
            .filter(|(k, _)| !JSON_ONLY.contains(&k.as_str()))
            .map(|(_, v)| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        writer.write_record(cells)?;
    }
    Ok(writer.into_inner()?)
}

/// Renders `results` as a pretty JSON array.
pub fn json_bytes(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(results)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A reporter: renders the results as the bytes of one file.
type Render = fn(&[RunResult]) -> anyhow::Result<Vec<u8>>;

/// The machine-readable summaries, rewritten after every transport of a run.
const SUMMARIES: [(&str, Render); 2] = [("summary.csv", csv_bytes), ("summary.json", json_bytes)];

/// The charts and tables people read, rendered once the results are complete. A reporter
/// with nothing to show (no run over a link for `links.png`) renders nothing: no file.
const REPORTS: [(&str, Render); 9] = [
    ("use-cases.png", use_cases::linear),
    ("use-cases-log.png", use_cases::log),
    ("bytes-per-message.png", bytes::render),
    ("latency.png", latency::percentile_chart),
    ("latency-distribution.png", latency::distribution_chart),
    ("cost.png", cost::render),
    ("comparison.md", comparison::render),
    ("links.png", link::chart),
    ("faults.png", faults::render),
];

/// Writes `summary.csv` and `summary.json` into `dir`; returns the files written and the
/// error of each reporter that failed.
pub fn write_summaries(dir: &Path, results: &[RunResult]) -> (Vec<PathBuf>, Vec<anyhow::Error>) {
    write_files(dir, results, &SUMMARIES)
}

/// Writes every chart and table into `dir`: the one entry point of `run` (at its end) and
/// `report`. A reporter that fails leaves the others' files; its error is returned.
pub fn write_reports(dir: &Path, results: &[RunResult]) -> (Vec<PathBuf>, Vec<anyhow::Error>) {
    write_files(dir, results, &REPORTS)
}

fn write_files(
    dir: &Path,
    results: &[RunResult],
    reporters: &[(&str, Render)],
) -> (Vec<PathBuf>, Vec<anyhow::Error>) {
    let mut written = Vec::new();
    let mut errors = Vec::new();
    if let Err(e) = fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display())) {
        errors.push(e);
        return (written, errors);
    }
    for (name, render) in reporters {
        let path = dir.join(name);
        match render(results).and_then(|bytes| {
            if bytes.is_empty() {
                return Ok(false);
            }
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok(true)
        }) {
            Ok(true) => written.push(path),
            Ok(false) => {}
            Err(e) => errors.push(e.context(format!("{name} reporter"))),
        }
    }
    (written, errors)
}

/// An input of `pushbench report` that holds no results.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0}: no summary.json there; give a results directory (results/<scenario>/<stamp>) or a summary.json file"
)]
pub struct NoResults(PathBuf);

/// Reads the results of every input: a results directory (its `summary.json`) or a
/// `summary.json` file itself, in the order given.
pub fn read_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for input in inputs {
        if !input.is_file() && !input.join("summary.json").is_file() {
            return Err(NoResults(input.clone()).into());
        }
        results.extend(compare::read_results(input)?);
    }
    Ok(results)
}

/// Reads results back from a `summary.json`.
pub fn read_json(path: &Path) -> anyhow::Result<Vec<RunResult>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_one_row_per_result_without_the_histogram_and_empty_cells_for_none() {
        let result = RunResult {
            transport: "websocket".into(),
            bytes_per_message: 18.0,
            latency_histogram: "HISTOGRAM".into(),
            target_cpu_s: None,
            ..RunResult::default()
        };
        let csv = String::from_utf8(csv_bytes(&[result.clone(), result]).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("scenario,transport,transport_kind,"));
        assert!(!csv.contains("latency_histogram") && !csv.contains("HISTOGRAM"));
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[1].split(',').collect();
        let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(cell("bytes_per_message"), "18.0");
        assert_eq!(cell("target_cpu_s"), "");
        assert_eq!(cell("transport"), "websocket");
    }

    #[test]
    fn csv_columns_follow_the_result_fields_in_order() {
        let result = RunResult::default();
        let csv = String::from_utf8(csv_bytes(std::slice::from_ref(&result)).unwrap()).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        // Serialized straight to text, the fields come in declaration order whatever map
        // type serde_json is built with.
        let json = serde_json::to_string(&result).unwrap();
        let at = |name: &str| json.find(&format!("\"{name}\":")).unwrap();
        assert!(header.windows(2).all(|w| at(w[0]) < at(w[1])), "{header:?}");
        let fields = json.matches("\":").count();
        assert_eq!(header.len() + JSON_ONLY.len(), fields);
        assert!(header.contains(&"fault"));
    }

    #[test]
    fn a_run_that_delivered_nothing_has_no_latency_in_the_console_or_the_csv() {
        let result = RunResult {
            transport: "websocket".into(),
            clients: 10,
            messages_expected: 100,
            bytes_per_message: f64::NAN,
            fault: "target stopped answering at 5.1 s: 10 connections closed, 3 publishes failed"
                .into(),
            ..RunResult::default()
        };

        let table = console::table(std::slice::from_ref(&result));
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header[header.len() - 3..], ["p50", "p99", "max"]);
        assert_eq!(row[row.len() - 3..], ["-", "-", "-"], "{table}");
        assert!(!table.contains("NaN") && !table.contains("0 µs"), "{table}");

        let csv = csv_bytes(std::slice::from_ref(&result)).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_slice());
        let header = reader.headers().unwrap().clone();
        let row = reader.records().next().unwrap().unwrap();
        let cell = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
        for column in ["latency_p50_us", "latency_p99_us", "latency_max_us"] {
            assert_eq!(cell(column), "", "{column}");
        }
        assert_eq!(cell("bytes_per_message"), "");
        assert_eq!(cell("fault"), result.fault);
    }
}
