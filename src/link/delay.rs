//! pushbench's own delay line for kernels without netem: packets that iptables hands to an
//! NFQUEUE are held in userspace and given back (accepted) when their delay is over. Only
//! metadata crosses to userspace (copy range 0); the packet itself waits in the kernel.
//!
//! One thread per direction, bound to its queue inside the link namespace (netlink sockets
//! belong to the namespace they were opened in, so the thread joins it first). If pushbench
//! dies, the rules' `--queue-bypass` lets packets through undelayed until the namespace goes.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nfq::{Queue, Verdict};

use super::conditions::Direction;

/// How long the thread sleeps when nothing is due: the delay's resolution.
const POLL: Duration = Duration::from_micros(500);

/// Packets the kernel may hold for one queue (rate × delay must fit).
const QUEUE_MAX_LEN: u32 = 1 << 16;

/// A running delay line; stops and joins on drop.
pub struct DelayLine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    released: Arc<AtomicU64>,
}

impl DelayLine {
    /// Starts the line for queue `queue` of namespace `netns` (a path under /run/netns),
    /// returning once the queue is bound.
    pub fn start(netns: &str, queue: u16, conditions: Direction) -> anyhow::Result<DelayLine> {
        let path = format!("/run/netns/{netns}");
        let ns = File::open(&path).with_context(|| format!("opening {path}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let released = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (thread_stop, thread_released) = (Arc::clone(&stop), Arc::clone(&released));
        let thread = std::thread::Builder::new()
            .name(format!("pb-delay-{queue}"))
            .spawn(move || {
                let queue = match bind(&ns, queue) {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                hold_and_release(queue, conditions, &thread_stop, &thread_released);
            })
            .context("starting a delay thread")?;
        ready_rx
            .recv()
            .context("the delay thread ended before binding its queue")?
            .with_context(|| format!("binding NFQUEUE {queue} in {netns}"))?;
        Ok(DelayLine {
            stop,
            thread: Some(thread),
            released,
        })
    }
}

impl DelayLine {
    /// Packets released so far.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Joins namespace `ns` (this thread only) and binds queue `num` there.
fn bind(ns: &File, num: u16) -> std::io::Result<Queue> {
    // SAFETY: setns on a valid namespace fd affects only the calling thread's network
    // namespace; no memory is shared with the kernel.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut queue = Queue::open()?;
    queue.bind(num)?;
    queue.set_copy_range(num, 0)?;
    queue.set_queue_max_len(num, QUEUE_MAX_LEN)?;
    queue.set_fail_open(num, true)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// The loop: take every packet offered, stamp its release time, accept what is due.
fn hold_and_release(mut queue: Queue, d: Direction, stop: &AtomicBool, released: &AtomicU64) {
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Until WouldBlock (nothing more for now); other errors (ENOBUFS when a burst
        // overflowed the socket) end this round too, and the next one reads on.
        while let Ok(mut msg) = queue.recv() {
            msg.set_verdict(Verdict::Accept);
            if skips(d.reorder) {
                // Released at once, ahead of everything held: it is not the new "last".
                if queue.verdict(msg).is_ok() {
                    released.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            // In order: a packet is never released before the one ahead of it.
            last = last.max(Instant::now() + one_delay(&d));
            held.push_back((last, msg));
        }
        let now = Instant::now();
        while held.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, msg)) = held.pop_front()
                && queue.verdict(msg).is_ok()
            {
                released.fetch_add(1, Ordering::Relaxed);
            }
        }
        let next = held
            .front()
            .map_or(POLL, |(at, _)| at.saturating_duration_since(now));
        std::thread::sleep(next.min(POLL));
    }
    // Whatever is still held goes through, rather than waiting for the kernel to drop it.
    for (_, msg) in held {
        let _ = queue.verdict(msg);
    }
}

/// Whether a packet skips the delay, with probability `reorder`.
fn skips(reorder: f64) -> bool {
    reorder > 0.0 && rand::random::<f64>() < reorder
}

/// `delay` ± a uniform share of `jitter`.
fn one_delay(d: &Direction) -> Duration {
    if d.jitter.is_zero() {
        return d.delay;
    }
    let jitter = d.jitter.as_secs_f64();
    let offset = (rand::random::<f64>() * 2.0 - 1.0) * jitter;
    Duration::from_secs_f64((d.delay.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let d = Direction {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            ..Direction::default()
        };
        for _ in 0..1000 {
            let one = one_delay(&d);
            assert!(one >= Duration::from_millis(40) && one <= Duration::from_millis(60));
        }
    }

    #[test]
    fn a_reorder_share_skips_about_that_share_and_none_skips_nothing() {
        assert!((0..1000).all(|_| !skips(0.0)));
        assert!((0..1000).all(|_| skips(1.0)));
        // 10,000 draws at 25%: the standard deviation of the count is 43.
        let skipped = (0..10_000).filter(|_| skips(0.25)).count();
        assert!((2300..=2700).contains(&skipped), "{skipped} of 10,000");
    }
}
