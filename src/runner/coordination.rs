//! How one process's part of a run lines up with the other parts. A run on one machine is
//! `Alone`: all the clients, publishing, no one to wait for. A shard of a run spread over
//! machines (`shard/`) waits at a start barrier and lets only the publisher shard publish;
//! the pipeline is the same for both.

use tokio_util::sync::CancellationToken;

use crate::plan::Plan;

/// This part's clients: `first..first + clients` of the plan's, with their plan-wide
/// indexes (so channels, endpoints and client ids are those of the whole run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub first: usize,
    pub clients: u32,
    /// Shared by every part: client ids stay unique on the target.
    pub run_id: u32,
    /// µs added to this part's receive times to put them on the publisher's clock.
    pub clock_correction_us: i64,
}

/// The points at which a part of a run meets the others.
pub trait Coordination {
    fn share(&self, plan: &Plan) -> Share;
    /// Whether this part publishes the message stream (exactly one part does).
    fn publishes(&self) -> bool;
    /// This part's clients are in (`connected` of them): returns once publishing may start.
    fn ramped(&mut self, connected: u64) -> impl Future<Output = anyhow::Result<()>>;
    /// The publishing part is done publishing and draining; `due_through` was due.
    fn published(&mut self, due_through: u64) -> impl Future<Output = ()>;
    /// A part that does not publish waits here for the publisher's end (or a deadline, or
    /// `stop`); returns the highest sequence number that was due.
    fn until_published(&mut self, stop: &CancellationToken) -> impl Future<Output = u64>;
}

/// The whole run in this process.
pub struct Alone;

impl Coordination for Alone {
    fn share(&self, plan: &Plan) -> Share {
        Share {
            first: 0,
            clients: plan.clients,
            run_id: rand::random(),
            clock_correction_us: 0,
        }
    }

    fn publishes(&self) -> bool {
        true
    }

    async fn ramped(&mut self, _connected: u64) -> anyhow::Result<()> {
        Ok(())
    }

    async fn published(&mut self, _due_through: u64) {}

    async fn until_published(&mut self, _stop: &CancellationToken) -> u64 {
        u64::MAX
    }
}
