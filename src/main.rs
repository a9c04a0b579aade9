use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pushbench::cli::Cli::parse();
    match pushbench::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole chain: what failed, and why, down to the cause.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
