//! TLS record boundaries on one direction of the ciphertext (RFC 8446 §5.1, RFC 5246 §6.2):
//! every record starts with a 5-byte header (content type, legacy version, 16-bit length),
//! so records are counted from the headers alone, without decrypting anything.

const RECORD_HEADER_BYTES: usize = 5;

/// Follows records across reads or writes of any size.
#[derive(Debug, Clone, Default)]
pub struct RecordScanner {
    head: [u8; RECORD_HEADER_BYTES],
    head_filled: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
}

impl RecordScanner {
    /// Takes the next bytes of the direction; returns how many records started in them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut records = 0;
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (RECORD_HEADER_BYTES - self.head_filled).min(bytes.len());
            self.head[self.head_filled..self.head_filled + n].copy_from_slice(&bytes[..n]);
            self.head_filled += n;
            bytes = &bytes[n..];
            if self.head_filled == RECORD_HEADER_BYTES {
                self.head_filled = 0;
                self.body_left = usize::from(u16::from_be_bytes([self.head[3], self.head[4]]));
                records += 1;
            }
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two application-data records (type 23, legacy version 3.3) of 3 and 0 body bytes.
    fn two_records() -> Vec<u8> {
        let mut wire = vec![23, 3, 3, 0, 3, 1, 2, 3];
        wire.extend([23, 3, 3, 0, 0]);
        wire
    }

    #[test]
    fn counts_records_split_at_every_byte() {
        let wire = two_records();
        assert_eq!(RecordScanner::default().feed(&wire), 2);
        for split in 0..wire.len() {
            let mut scanner = RecordScanner::default();
            let (a, b) = wire.split_at(split);
            assert_eq!(scanner.feed(a) + scanner.feed(b), 2, "split at {split}");
        }
        let mut scanner = RecordScanner::default();
        assert_eq!(wire.chunks(1).map(|b| scanner.feed(b)).sum::<u64>(), 2);
    }
}
