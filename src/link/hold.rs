//! `pushbench link up` / `link clean`: a link held for a server the user starts in it.

use std::process::ExitCode;

use anyhow::{Context, anyhow};

use super::{Link, TARGET_ADDRESSES_SHOWN, clean_leftovers};
use crate::cli::LinkCommand;
use crate::scenario;

pub async fn execute(command: LinkCommand) -> anyhow::Result<ExitCode> {
    match command {
        LinkCommand::Clean => {
            let removed = clean_leftovers()?;
            println!(
                "removed {} namespace(s): {}",
                removed.len(),
                removed.join(" ")
            );
        }
        LinkCommand::Up { scenario: path } => {
            let plan = scenario::load(&path)?;
            let network = plan.network.ok_or_else(|| {
                anyhow!(
                    "{} has no [network] table to build a link from",
                    path.display()
                )
            })?;
            let link = Link::up(&network.conditions)?;
            let addresses: Vec<String> = (0..TARGET_ADDRESSES_SHOWN)
                .map(|k| link.target_ip(k).to_string())
                .collect();
            println!("target namespace: {}", link.target_ns());
            println!(
                "start the server there: ip netns exec {} COMMAND",
                link.target_ns()
            );
            println!(
                "the fleet reaches it at: {} (and more)",
                addresses.join(", ")
            );
            println!("holding the link until Ctrl-C");
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            drop(link);
        }
    }
    Ok(ExitCode::SUCCESS)
}
