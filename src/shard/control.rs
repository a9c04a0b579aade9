//! The control connection between the shards of one run: JSON lines over TCP. The publisher
//! shard listens; every other shard connects (retrying until a deadline, since machines
//! start in any order), says `hello` with what it is about to run, gets the run's id, trades
//! clock stamps, says `connected` once its clients are in, and waits for `start` and `end`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;

use super::clock::{Best, Exchange};
use crate::clock::local_us;

/// Pause between attempts to reach the publisher.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// How long one clock exchange may take before it is given up.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a shard tells the publisher.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToPublisher {
    Hello(Hello),
    Clock { t1: i64 },
    Connected { connected: u64 },
}

/// Who is asking to join, and what it would run: every shard must run the same plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub shard: u32,
    pub shards: u32,
    pub publisher: u32,
    pub publisher_only: bool,
    pub scenario: String,
    pub transport: String,
}

/// What the publisher tells a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromPublisher {
    Welcome { run_id: u32 },
    Refused { reason: String },
    Clock { t1: i64, t2: i64, t3: i64 },
    Start,
    End { due_through: u64 },
}

type Writer = Arc<Mutex<OwnedWriteHalf>>;

async fn send<T: Serialize>(writer: &Writer, message: &T) -> anyhow::Result<()> {
    let line = serde_json::to_string(message)? + "\n";
    writer.lock().await.write_all(line.as_bytes()).await?;
    Ok(())
}

async fn receive<T: for<'de> Deserialize<'de>>(
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
) -> anyhow::Result<Option<T>> {
    match lines.next_line().await? {
        Some(line) => Ok(Some(
            serde_json::from_str(&line).with_context(|| format!("control message {line:?}"))?,
        )),
        None => Ok(None),
    }
}

/// What the publisher's listener hears from the shards.
enum Event {
    Connected { shard: u32, connected: u64 },
    Gone { shard: u32 },
}

/// The publisher's side: the shards that joined.
pub struct Listener {
    peers: Arc<std::sync::Mutex<HashMap<u32, Writer>>>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Set once the run has started: a shard that arrives later is refused.
    started: Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    /// Listens on `addr` for the other shards of the run `expected` describes (its `shard`
    /// being the publisher's own index).
    pub async fn start(addr: &str, expected: Hello, run_id: u32) -> anyhow::Result<Listener> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for the other shards on {addr}"))?;
        let peers = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, events) = mpsc::unbounded_channel();
        let (accepted, late) = (Arc::clone(&peers), Arc::clone(&started));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let join = Join {
                    expected: expected.clone(),
                    run_id,
                    peers: Arc::clone(&accepted),
                    started: Arc::clone(&late),
                    events: tx.clone(),
                };
                tokio::spawn(join.serve(stream));
            }
        });
        Ok(Listener {
            peers,
            events,
            started,
        })
    }

    /// Waits until `expected` shards said they are connected, or `deadline`; then starts them
    /// and returns the shards that made it (sorted).
    pub async fn barrier(&mut self, expected: usize, deadline: Instant) -> Vec<u32> {
        let mut ready = HashMap::new();
        while ready.len() < expected {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Event::Connected { shard, connected })) => {
                    ready.insert(shard, connected);
                }
                Ok(Some(Event::Gone { shard })) => {
                    ready.remove(&shard);
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut arrived: Vec<u32> = ready.into_keys().collect();
        arrived.sort_unstable();
        self.broadcast(&FromPublisher::Start, &arrived).await;
        let late: Vec<u32> = self
            .writers()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !arrived.contains(k))
            .collect();
        let reason = "the run started without this shard: its clients were not in by the barrier";
        self.broadcast(
            &FromPublisher::Refused {
                reason: reason.into(),
            },
            &late,
        )
        .await;
        arrived
    }

    /// Tells every shard that publishing is over; returns the shards whose control
    /// connection had ended before (they died or gave up mid-run).
    pub async fn end(&mut self, due_through: u64) -> Vec<u32> {
        let all: Vec<u32> = self.writers().into_iter().map(|(k, _)| k).collect();
        self.broadcast(&FromPublisher::End { due_through }, &all)
            .await;
        let mut gone = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            if let Event::Gone { shard } = event {
                gone.push(shard);
            }
        }
        gone.sort_unstable();
        gone
    }

    fn writers(&self) -> Vec<(u32, Writer)> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.iter().map(|(k, w)| (*k, Arc::clone(w))).collect()
    }

    async fn broadcast(&self, message: &FromPublisher, to: &[u32]) {
        for (shard, writer) in self.writers() {
            if to.contains(&shard) && send(&writer, message).await.is_err() {
                eprintln!("warning: shard {shard} is gone (its control connection broke)");
            }
        }
    }
}

/// One shard's control connection, as the publisher serves it.
struct Join {
    expected: Hello,
    run_id: u32,
    peers: Arc<std::sync::Mutex<HashMap<u32, Writer>>>,
    started: Arc<std::sync::atomic::AtomicBool>,
    events: mpsc::UnboundedSender<Event>,
}

impl Join {
    async fn serve(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let writer: Writer = Arc::new(Mutex::new(write));
        let mut lines = BufReader::new(read).lines();
        let Ok(Some(ToPublisher::Hello(hello))) = receive(&mut lines).await else {
            return;
        };
        let shard = hello.shard;
        let answer = match self.refusal(&hello) {
            Some(reason) => FromPublisher::Refused { reason },
            None => FromPublisher::Welcome {
                run_id: self.run_id,
            },
        };
        let welcome = matches!(answer, FromPublisher::Welcome { .. });
        if send(&writer, &answer).await.is_err() || !welcome {
            return;
        }
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard, Arc::clone(&writer));
        loop {
            let message = receive(&mut lines).await;
            let t2 = local_us();
            match message {
                Ok(Some(ToPublisher::Clock { t1 })) => {
                    let mut w = writer.lock().await;
                    let t3 = local_us();
                    let line = serde_json::to_string(&FromPublisher::Clock { t1, t2, t3 })
                        .unwrap_or_default()
                        + "\n";
                    if w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Ok(Some(ToPublisher::Connected { connected })) => {
                    let _ = self.events.send(Event::Connected { shard, connected });
                }
                Ok(Some(ToPublisher::Hello(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = self.events.send(Event::Gone { shard });
    }

    /// Why this shard cannot join, if it cannot.
    fn refusal(&self, hello: &Hello) -> Option<String> {
        let e = &self.expected;
        let taken = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&hello.shard);
        if self.started.load(std::sync::atomic::Ordering::SeqCst) {
            Some("the run has already started without this shard".into())
        } else if hello.shards != e.shards {
            Some(format!(
                "this run has {} shards, not {}",
                e.shards, hello.shards
            ))
        } else if (hello.publisher, hello.publisher_only) != (e.publisher, e.publisher_only) {
            Some(format!(
                "the publisher is shard {} (publisher-only: {}), not {} ({})",
                e.publisher, e.publisher_only, hello.publisher, hello.publisher_only
            ))
        } else if hello.shard >= e.shards || hello.shard == e.shard {
            Some(format!(
                "shard {} is not a peer of publisher shard {} of {}",
                hello.shard, e.shard, e.shards
            ))
        } else if taken {
            Some(format!("shard {} has already joined", hello.shard))
        } else if hello.scenario != e.scenario {
            Some("the scenario differs from the publisher's".into())
        } else if hello.transport != e.transport {
            Some(format!(
                "the transport is {}, the publisher runs {}",
                hello.transport, e.transport
            ))
        } else {
            None
        }
    }
}

/// A shard's side of its control connection.
pub struct Peer {
    writer: Writer,
    replies: mpsc::UnboundedReceiver<Exchange>,
    start: watch::Receiver<bool>,
    end: watch::Receiver<Option<u64>>,
    /// False once the publisher's connection ended.
    open: watch::Receiver<bool>,
    pub run_id: u32,
}

impl Peer {
    /// Reaches the publisher at `addr` (retrying until `deadline`) and joins the run.
    pub async fn join(addr: &str, hello: Hello, deadline: Instant) -> anyhow::Result<Peer> {
        let stream = loop {
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => break stream,
                Ok(Err(_)) if Instant::now() + RETRY_EVERY < deadline => {
                    tokio::time::sleep(RETRY_EVERY).await;
                }
                Ok(Err(e)) => {
                    return Err(e).with_context(|| format!("reaching the publisher at {addr}"));
                }
                Err(_) => bail!("the publisher at {addr} did not answer in time"),
            }
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let writer: Writer = Arc::new(Mutex::new(write));
        let mut lines = BufReader::new(read).lines();
        send(&writer, &ToPublisher::Hello(hello)).await?;
        let run_id = match receive(&mut lines).await? {
            Some(FromPublisher::Welcome { run_id }) => run_id,
            Some(FromPublisher::Refused { reason }) => {
                bail!("the publisher at {addr} refused this shard: {reason}")
            }
            _ => bail!("the publisher at {addr} did not welcome this shard"),
        };
        let (replies_tx, replies) = mpsc::unbounded_channel();
        let (start_tx, start) = watch::channel(false);
        let (end_tx, end) = watch::channel(None);
        let (open_tx, open) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let message = receive::<FromPublisher>(&mut lines).await;
                let t4 = local_us();
                match message {
                    Ok(Some(FromPublisher::Clock { t1, t2, t3 })) => {
                        let _ = replies_tx.send(Exchange { t1, t2, t3, t4 });
                    }
                    Ok(Some(FromPublisher::Start)) => {
                        let _ = start_tx.send(true);
                    }
                    Ok(Some(FromPublisher::End { due_through })) => {
                        let _ = end_tx.send(Some(due_through));
                    }
                    Ok(Some(FromPublisher::Refused { reason })) => {
                        eprintln!("error: the publisher dropped this shard: {reason}");
                        break;
                    }
                    Ok(Some(FromPublisher::Welcome { .. })) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = open_tx.send(false);
        });
        Ok(Peer {
            writer,
            replies,
            start,
            end,
            open,
            run_id,
        })
    }

    /// Makes `count` clock exchanges into `best`.
    pub async fn exchange(&mut self, count: u32, best: &std::sync::Mutex<Best>) {
        for _ in 0..count {
            let t1 = local_us();
            if send(&self.writer, &ToPublisher::Clock { t1 })
                .await
                .is_err()
            {
                return;
            }
            match tokio::time::timeout(EXCHANGE_TIMEOUT, self.replies.recv()).await {
                Ok(Some(e)) if e.t1 == t1 => best.lock().unwrap_or_else(|e| e.into_inner()).add(e),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Says this shard's clients are in and waits for the publisher's start.
    pub async fn ready(&mut self, connected: u64, deadline: Instant) -> anyhow::Result<()> {
        send(&self.writer, &ToPublisher::Connected { connected }).await?;
        let mut open = self.open.clone();
        tokio::select! {
            biased;
            started = self.start.wait_for(|s| *s) => started.map(|_| ()).map_err(|_| anyhow!("the publisher went away before the start")),
            _ = open.wait_for(|o| !*o) => bail!("the publisher closed the control connection before the start"),
            _ = tokio::time::sleep_until(deadline) => bail!("the publisher did not start the run in time"),
        }
    }

    /// Whether the publisher's connection is still up.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Waits for the publisher's end; `None` if its connection ended first or `deadline`
    /// passed.
    pub async fn ended(&mut self, deadline: Instant) -> Option<u64> {
        let mut open = self.open.clone();
        tokio::select! {
            biased;
            end = self.end.wait_for(Option::is_some) => end.ok().and_then(|e| *e),
            _ = open.wait_for(|o| !*o) => None,
            _ = tokio::time::sleep_until(deadline) => None,
        }
    }
}
