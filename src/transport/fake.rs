//! A scripted transport for fast tests of the shared client loop and the result builder: no
//! sockets, every byte and message known in advance (hyperfine's mock-executor idea).
//!
//! A test registers, under a client id, one script per connection the client will make;
//! each connect takes the next. A connection whose script has run out waits forever, as a
//! quiet server would.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use bytes::Bytes;

use super::{ClientSpec, Received, Transport};
use crate::payload::{Stamp, unix_us};
use crate::wire::WireCounts;

/// Every scripted message arrives exactly this long after its intended publish time.
pub const LATENCY: Duration = Duration::from_millis(1);

/// Bytes a scripted connect and subscribe costs, up and down.
pub const SETUP: (u64, u64) = (10, 20);

/// One exchange of a scripted connection.
#[derive(Debug, Clone)]
pub enum Step {
    /// Delivers these sequence numbers; the exchange costs `up` and `down` bytes.
    Deliver { seqs: Vec<u64>, up: u64, down: u64 },
    /// The connection breaks.
    Break,
}

/// An exchange delivering `seqs` at 5 bytes up and 30 down per message.
pub fn deliver(seqs: &[u64]) -> Step {
    Step::Deliver {
        seqs: seqs.to_vec(),
        up: 5 * seqs.len() as u64,
        down: 30 * seqs.len() as u64,
    }
}

static SCRIPTS: Mutex<Option<HashMap<String, VecDeque<Vec<Step>>>>> = Mutex::new(None);

/// Scripts the connections of client `client_id`, in order.
pub fn script(client_id: &str, connections: Vec<Vec<Step>>) {
    let mut scripts = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
    scripts
        .get_or_insert_with(HashMap::new)
        .insert(client_id.to_string(), connections.into());
}

/// One scripted connection.
pub struct Fake {
    steps: VecDeque<Step>,
    wire: WireCounts,
}

impl Transport for Fake {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let next = SCRIPTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|s| s.get_mut(&spec.client_id))
            .and_then(VecDeque::pop_front);
        let steps = next.ok_or_else(|| anyhow!("no script left for {}", spec.client_id))?;
        Ok(Fake {
            steps: steps.into(),
            wire: WireCounts {
                sent: SETUP.0,
                received: SETUP.1,
                ..WireCounts::default()
            },
        })
    }

    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        match self.steps.pop_front() {
            None => std::future::pending().await,
            Some(Step::Break) => Err(anyhow!("scripted break")),
            Some(Step::Deliver { seqs, up, down }) => {
                self.wire.sent += up;
                self.wire.received += down;
                let at = SystemTime::now();
                for seq in seqs {
                    let stamp = Stamp {
                        seq,
                        intended_us: unix_us(at - LATENCY),
                    };
                    delivered.push(Received {
                        payload: Bytes::from(stamp.encode(crate::payload::HEADER_BYTES)),
                        at,
                    });
                }
                Ok(())
            }
        }
    }

    fn wire(&self) -> WireCounts {
        self.wire
    }
}
