//! Reporters: pure functions of the results. Each writes its own file; one that fails does
//! not stop the others.

pub mod console;
pub mod progress;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::result::RunResult;

/// Renders `results` as CSV, one row per run, columns named as the `RunResult` fields.
pub fn csv_bytes(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for result in results {
        writer.serialize(result)?;
    }
    Ok(writer.into_inner()?)
}

/// Renders `results` as a pretty JSON array.
pub fn json_bytes(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(results)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `summary.csv` and `summary.json` into `dir`; returns the files written and the
/// error of each reporter that failed.
pub fn write_summaries(dir: &Path, results: &[RunResult]) -> (Vec<PathBuf>, Vec<anyhow::Error>) {
    type Render = fn(&[RunResult]) -> anyhow::Result<Vec<u8>>;
    let reporters: [(&str, Render); 2] = [("summary.csv", csv_bytes), ("summary.json", json_bytes)];
    let mut written = Vec::new();
    let mut errors = Vec::new();
    if let Err(e) = fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display())) {
        errors.push(e);
        return (written, errors);
    }
    for (name, render) in reporters {
        let path = dir.join(name);
        match render(results).and_then(|bytes| {
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
        }) {
            Ok(()) => written.push(path),
            Err(e) => errors.push(e.context(format!("{name} reporter"))),
        }
    }
    (written, errors)
}

/// Reads results back from a `summary.json`.
pub fn read_json(path: &Path) -> anyhow::Result<Vec<RunResult>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}
