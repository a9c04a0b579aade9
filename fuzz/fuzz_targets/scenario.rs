//! Any UTF-8 text as a scenario file: parsing must answer `Ok` or a positioned error, and
//! neither the error's text nor `validate`'s summary of a valid plan may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match pushbench::scenario::parse(text, "fuzz.toml") {
        Ok(plan) => drop(pushbench::scenario::describe(&plan)),
        Err(error) => drop(error.to_string()),
    }
});
