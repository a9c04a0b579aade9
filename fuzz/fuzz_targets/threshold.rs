//! Any UTF-8 text as a threshold: the first line is the scope, the rest the expression.
//! Parsing must answer `Ok` or an error, and printing either must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (scope, expression) = text.split_once('\n').unwrap_or(("all", text));
    match pushbench::thresholds::parse(scope, expression) {
        Ok(threshold) => drop(threshold.to_string()),
        Err(error) => drop(error.to_string()),
    }
});
