//! The message payload: a sequence number and the *intended* publish time, padded to the
//! scenario's size. Latency is measured from the intended time, so a publisher that falls
//! behind shows up as latency instead of hiding it (no coordinated omission).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes taken by the sequence number (u64) and the intended time (u64 µs since the epoch).
pub const HEADER_BYTES: usize = 16;

/// Filler after the header: printable, so a payload is readable in a capture.
const PAD: u8 = b'.';

/// What every payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    /// Intended publish time in µs since the Unix epoch.
    pub intended_us: u64,
}

/// Microseconds since the Unix epoch for `t` (0 before the epoch).
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

impl Stamp {
    /// The payload for this stamp, `size` bytes long (`size >= HEADER_BYTES`).
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size.max(HEADER_BYTES));
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.intended_us.to_le_bytes());
        out.resize(size.max(HEADER_BYTES), PAD);
        out
    }

    /// Reads the stamp back; `None` if the payload is too short to be one of ours.
    pub fn decode(payload: &[u8]) -> Option<Stamp> {
        let seq = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
        let intended_us = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
        Some(Stamp { seq, intended_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_to_size() {
        let stamp = Stamp {
            seq: 42,
            intended_us: 1_700_000_000_000_000,
        };
        let bytes = stamp.encode(200);
        assert_eq!(bytes.len(), 200);
        assert_eq!(Stamp::decode(&bytes), Some(stamp));
        assert_eq!(Stamp::decode(&bytes[..15]), None);
    }
}
