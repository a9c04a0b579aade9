//! The channel store: each channel's message history (for polls), a watch of its newest id
//! (to wake long polls) and a bounded broadcast (for WebSocket subscribers).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

/// Every channel of a hub, created on first use.
pub(super) struct Channels {
    by_id: RwLock<HashMap<String, Arc<Channel>>>,
    /// Broadcast capacity of each new channel.
    ws_queue: usize,
}

impl Channels {
    pub(super) fn new(ws_queue: usize) -> Channels {
        Channels {
            by_id: RwLock::new(HashMap::new()),
            ws_queue,
        }
    }

    /// The channel `id`, created on first use. Lookups take the read lock only, as nearly
    /// every request names a channel that exists.
    pub(super) fn get(&self, id: &str) -> Arc<Channel> {
        let existing = self
            .by_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        existing.unwrap_or_else(|| {
            let mut by_id = self.by_id.write().unwrap_or_else(PoisonError::into_inner);
            let created = by_id
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(Channel::new(self.ws_queue)));
            Arc::clone(created)
        })
    }
}

/// One stored message.
#[derive(Clone)]
pub(super) struct Stored {
    pub(super) id: u64,
    pub(super) body: Bytes,
    pub(super) published: SystemTime,
}

/// The messages of a channel: ids are contiguous, so a position maps to an index.
#[derive(Default)]
struct Log {
    last_id: u64,
    messages: VecDeque<Stored>,
}

/// A channel: its history for polls, a watch of its newest id to wake long polls, and a
/// bounded broadcast for WebSocket subscribers.
pub(super) struct Channel {
    log: Mutex<Log>,
    newest: watch::Sender<u64>,
    push: broadcast::Sender<Bytes>,
}

impl Channel {
    fn new(ws_queue: usize) -> Channel {
        Channel {
            log: Mutex::new(Log::default()),
            newest: watch::Sender::new(0),
            push: broadcast::Sender::new(ws_queue.max(1)),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `body` as the next message and tells every subscriber. The broadcast is sent
    /// under the log's lock so WebSocket frames come in id order. Returns the stored message.
    pub(super) fn publish(&self, body: Bytes, keep: usize) -> Stored {
        let mut log = self.log();
        log.last_id += 1;
        let id = log.last_id;
        let stored = Stored {
            id,
            body: body.clone(),
            published: SystemTime::now(),
        };
        log.messages.push_back(stored.clone());
        while log.messages.len() > keep {
            log.messages.pop_front();
        }
        // An error only means that nobody is subscribed by WebSocket right now.
        let _ = self.push.send(body);
        self.newest.send_replace(id);
        stored
    }

    pub(super) fn newest_id(&self) -> u64 {
        self.log().last_id
    }

    /// A watch of the newest id: it changes on every publish.
    pub(super) fn watch_newest(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// Every message published from now on, as long as the receiver keeps up.
    pub(super) fn subscribe_push(&self) -> broadcast::Receiver<Bytes> {
        self.push.subscribe()
    }

    /// The oldest stored message newer than `position` (the first kept one if the client
    /// is behind the history).
    pub(super) fn oldest_after(&self, position: u64) -> Option<Stored> {
        let log = self.log();
        let first = log.messages.front()?.id;
        let index = position.saturating_add(1).saturating_sub(first);
        log.messages.get(usize::try_from(index).ok()?).cloned()
    }

    /// Publish time of message `id`, if it is still stored.
    pub(super) fn published_at(&self, id: u64) -> Option<SystemTime> {
        let log = self.log();
        let index = id.checked_sub(log.messages.front()?.id)?;
        let stored = log.messages.get(usize::try_from(index).ok()?)?;
        Some(stored.published)
    }
}
