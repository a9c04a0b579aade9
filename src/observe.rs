//! What a run tells whoever watches it (progress bars, tests): phases and progress, never
//! results. Every method has a no-op default, so a watcher implements only what it shows.

/// Phases a run goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Publishing,
    Draining,
}

/// Watches a run. `()` watches nothing.
pub trait Observer: Sync {
    /// A phase starts; `len` is how many units it counts towards.
    fn phase(&self, _transport: &str, _phase: Phase, _len: u64) {}
    /// Progress within the phase, with a short status text.
    fn update(&self, _position: u64, _status: &str) {}
    /// The run is over.
    fn done(&self) {}
}

impl Observer for () {}
