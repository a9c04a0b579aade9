//! `pushbench compare`: a current run against a baseline, metric by metric, with a verdict
//! that knows which direction is worse and how noisy each metric is.
//!
//! Byte counts and delivery are deterministic on an idle loopback, so they are compared
//! exactly; interval polling's bytes and all latencies are not, so they get a stated tolerance.
//! `rules` says what is compared and how strictly, `engine` judges, `render` writes it out.

mod engine;
mod render;
mod rules;

pub use engine::{Comparison, Row, Verdict, compare, read_results};
pub use render::{markdown, table};
pub use rules::{
    Better, LATENCY_SLACK_US, LATENCY_TOLERANCE_PCT, MaxRegression, MaxRegressionError,
    POLL_BYTES_TOLERANCE_PCT, Rules, Tolerance,
};

/// Exit code of a comparison that found a regression (99 stays for broken thresholds).
pub const EXIT_REGRESSION: u8 = 98;
