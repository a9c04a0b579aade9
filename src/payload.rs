//! The message payload: a sequence number and the *intended* publish time, padded to the
//! scenario's size. Latency is measured from the intended time, so a publisher that falls
//! behind shows up as latency instead of hiding it (no coordinated omission).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Bytes taken by the sequence number (u64) and the intended time (u64 µs since the epoch).
pub const HEADER_BYTES: usize = 16;

/// Marks where a text stamp starts, so that a client finds it inside whatever envelope a
/// server wraps around it (a JSON string, a NATS `MSG`); `~` is not in base64url's alphabet.
pub const TEXT_MARK: &str = "~pb";

/// Characters of the stamp in text form: the mark, then its 16 bytes in unpadded base64url.
pub const TEXT_HEADER_BYTES: usize = TEXT_MARK.len() + BASE64_CHARS;

/// Characters of 16 bytes in unpadded base64.
const BASE64_CHARS: usize = 22;

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

    /// The payload as text, for framings that carry only UTF-8 lines (an SSE `data:` field):
    /// `TEXT_MARK` and the stamp in unpadded base64url, padded to `size` like the binary
    /// form. So from `TEXT_HEADER_BYTES` up the text is exactly as long as the binary payload,
    /// and the framing around it is all that counts as overhead. It is printable ASCII
    /// without quotes or backslashes, so a JSON string carries it unescaped. A payload too
    /// short for the mark carries the bare 22 characters, readable only as a whole message.
    pub fn encode_text(&self, size: usize) -> String {
        let mut header = [0u8; HEADER_BYTES];
        header[..8].copy_from_slice(&self.seq.to_le_bytes());
        header[8..].copy_from_slice(&self.intended_us.to_le_bytes());
        let mut out = if size >= TEXT_HEADER_BYTES {
            TEXT_MARK.to_string()
        } else {
            String::new()
        };
        out.push_str(&URL_SAFE_NO_PAD.encode(header));
        let width = size.max(out.len());
        out.extend(std::iter::repeat_n(char::from(PAD), width - out.len()));
        out
    }

    /// Reads a stamp back from its text form, marked or bare; `None` if `text` does not
    /// start with one.
    pub fn decode_text(text: &str) -> Option<Stamp> {
        let bytes = text.as_bytes();
        let encoded = bytes.strip_prefix(TEXT_MARK.as_bytes()).unwrap_or(bytes);
        let header = URL_SAFE_NO_PAD.decode(encoded.get(..BASE64_CHARS)?).ok()?;
        Stamp::decode(&header)
    }

    /// Every marked text stamp inside `message`, wherever it sits (a server may put several
    /// messages in one frame, each in its envelope); failing that, a bare one that is the
    /// whole message.
    pub fn find_text(message: &[u8]) -> Vec<Stamp> {
        let mark = TEXT_MARK.as_bytes();
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(offset) = message[at..].windows(mark.len()).position(|w| w == mark) {
            let start = at + offset;
            let stamp = message
                .get(start..start + TEXT_HEADER_BYTES)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(Stamp::decode_text);
            match stamp {
                Some(stamp) => {
                    found.push(stamp);
                    at = start + TEXT_HEADER_BYTES;
                }
                None => at = start + 1,
            }
        }
        if found.is_empty() {
            found.extend(
                std::str::from_utf8(message)
                    .ok()
                    .filter(|m| m.len() < TEXT_HEADER_BYTES)
                    .and_then(Stamp::decode_text),
            );
        }
        found
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

    #[test]
    fn text_form_is_as_long_as_the_binary_from_its_header_up_and_round_trips() {
        let stamp = Stamp {
            seq: 17,
            intended_us: 1_764_623_456_789_012,
        };
        let text = stamp.encode_text(64);
        assert_eq!(text.len(), 64);
        assert!(text[TEXT_HEADER_BYTES..].bytes().all(|b| b == PAD));
        assert!(text.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(Stamp::decode_text(&text), Some(stamp));
        let short = stamp.encode_text(16);
        assert_eq!(short.len(), BASE64_CHARS, "too short for the mark: bare");
        assert_eq!(Stamp::decode_text(&short), Some(stamp));
        assert_eq!(Stamp::find_text(short.as_bytes()), [stamp]);
        assert_eq!(Stamp::decode_text(&text[..TEXT_HEADER_BYTES - 1]), None);
        assert_eq!(Stamp::decode_text("not base64 at all, not a stamp"), None);
    }

    #[test]
    fn text_stamps_are_found_inside_envelopes() {
        let stamp = |seq| Stamp {
            seq,
            intended_us: 1_764_623_456_789_012 + seq,
        };
        let frame = format!(
            "MSG bench.0 1 40\r\n{}\r\nMSG bench.0 1 40\r\n{}\r\n",
            stamp(1).encode_text(40),
            stamp(2).encode_text(40)
        );
        assert_eq!(Stamp::find_text(frame.as_bytes()), [stamp(1), stamp(2)]);
        let json = format!(
            "{{\"channel\":\"0\",\"data\":\"{}\"}}",
            stamp(3).encode_text(32)
        );
        assert_eq!(Stamp::find_text(json.as_bytes()), [stamp(3)]);
        assert_eq!(
            Stamp::find_text(b"INFO {\"server_id\":\"x\"} ~pb~pbnot"),
            []
        );
    }
}
