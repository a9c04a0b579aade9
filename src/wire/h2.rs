//! HTTP/2 frame boundaries on one direction of a counted stream (RFC 9113 §4.1), so that the
//! header share of the bytes can be counted: HEADERS (type 0x1) and CONTINUATION (type 0x9)
//! frames, their 9-byte frame headers included, and to tell when the connection's SETTINGS
//! have been acknowledged. Only frame headers are read; HPACK blocks are never decoded.

/// The client connection preface (RFC 9113 §3.4): not a frame, so it is passed over.
pub const CLIENT_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER_BYTES: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;

/// Follows frames across reads or writes of any size.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    /// Preface bytes still to pass over.
    preface_left: usize,
    head: [u8; FRAME_HEADER_BYTES],
    head_filled: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// Whether the current frame carries a header block.
    in_header_block: bool,
    /// Whether a SETTINGS frame with the ACK flag has passed.
    settings_acked: bool,
}

impl FrameScanner {
    /// The client→server direction, which starts with the connection preface.
    pub fn client_to_server() -> FrameScanner {
        FrameScanner::skipping(CLIENT_PREFACE.len())
    }

    /// The server→client direction, which starts with a frame (the server's SETTINGS).
    pub fn server_to_client() -> FrameScanner {
        FrameScanner::skipping(0)
    }

    fn skipping(preface_left: usize) -> FrameScanner {
        FrameScanner {
            preface_left,
            head: [0; FRAME_HEADER_BYTES],
            head_filled: 0,
            payload_left: 0,
            in_header_block: false,
            settings_acked: false,
        }
    }

    /// Whether this direction has carried a SETTINGS acknowledgement.
    pub fn settings_acked(&self) -> bool {
        self.settings_acked
    }

    /// Takes the next bytes of the direction; returns how many of them belong to HEADERS or
    /// CONTINUATION frames (a frame header counts once it is complete).
    pub fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut header_bytes = 0;
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                if self.in_header_block {
                    header_bytes += n as u64;
                }
                bytes = &bytes[n..];
            } else {
                let n = (FRAME_HEADER_BYTES - self.head_filled).min(bytes.len());
                self.head[self.head_filled..self.head_filled + n].copy_from_slice(&bytes[..n]);
                self.head_filled += n;
                bytes = &bytes[n..];
                if self.head_filled == FRAME_HEADER_BYTES {
                    self.head_filled = 0;
                    let [l0, l1, l2, kind, flags, ..] = self.head;
                    self.payload_left =
                        usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                    self.in_header_block = matches!(kind, HEADERS | CONTINUATION);
                    self.settings_acked |= kind == SETTINGS && flags & ACK != 0;
                    if self.in_header_block {
                        header_bytes += FRAME_HEADER_BYTES as u64;
                    }
                }
            }
        }
        header_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame: 24-bit length, type, flags, stream id, payload.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    /// What a client writes first: preface, SETTINGS (one setting), WINDOW_UPDATE, then a
    /// request: HEADERS without END_HEADERS, CONTINUATION with it.
    fn client_bytes() -> Vec<u8> {
        let mut wire = CLIENT_PREFACE.to_vec();
        wire.extend(frame(0x4, 0, 0, &[0, 2, 0, 0, 0, 0]));
        wire.extend(frame(0x8, 0, 0, &[0, 0x4c, 0, 0]));
        wire.extend(frame(HEADERS, 0x1, 1, &[0x82, 0x86, 0x84]));
        wire.extend(frame(CONTINUATION, 0x4, 1, &[0x41, 0x01, b'x']));
        wire
    }

    #[test]
    fn counts_headers_and_continuation_with_their_frame_headers() {
        // 9 + 3 and 9 + 3; preface (24), SETTINGS (9 + 6), WINDOW_UPDATE (9 + 4) are not.
        assert_eq!(FrameScanner::client_to_server().feed(&client_bytes()), 24);
    }

    #[test]
    fn frames_split_at_every_byte_count_the_same() {
        let wire = client_bytes();
        let mut scanner = FrameScanner::client_to_server();
        let counted: u64 = wire.chunks(1).map(|b| scanner.feed(b)).sum();
        assert_eq!(counted, 24);
        for split in 0..wire.len() {
            let mut scanner = FrameScanner::client_to_server();
            let (a, b) = wire.split_at(split);
            assert_eq!(scanner.feed(a) + scanner.feed(b), 24, "split at {split}");
        }
    }

    #[test]
    fn server_direction_has_no_preface_and_skips_data_and_empty_frames() {
        let mut wire = frame(0x4, 0, 0, &[]); // empty SETTINGS
        wire.extend(frame(0x4, 0x1, 0, &[])); // SETTINGS ACK
        wire.extend(frame(HEADERS, 0x4, 1, &[0x88; 20])); // :status 200 and more: 9 + 20
        wire.extend(frame(0x0, 0x1, 1, &[b'p'; 16])); // DATA, END_STREAM
        wire.extend(frame(0x6, 0, 0, &[0; 8])); // PING
        let mut scanner = FrameScanner::server_to_client();
        assert_eq!(scanner.feed(&wire[..9]), 0);
        assert!(!scanner.settings_acked(), "a SETTINGS frame is no ACK");
        assert_eq!(scanner.feed(&wire[9..]), 29);
        assert!(scanner.settings_acked());
    }
}
