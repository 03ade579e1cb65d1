//! A frame: the records one pipeline batch became for one sink, in the
//! sink's own wire form (a ClickHouse row, a bulk action and document, ...),
//! stored back to back with their end offsets so a request can be split
//! record by record.

/// Encoded records of one batch. See the module docs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The records, back to back.
    pub bytes: Vec<u8>,
    /// End offset of each record in `bytes`.
    pub ends: Vec<u32>,
}

impl Frame {
    /// Close the record written to `bytes` since the previous one.
    #[inline]
    pub fn finish_record(&mut self) {
        self.ends.push(self.bytes.len() as u32);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Record `i`.
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Every record, in order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.record(i))
    }

    /// Bytes this frame accounts for in a buffer.
    pub fn size(&self) -> u64 {
        (self.bytes.len() + 4 * self.ends.len()) as u64
    }

    /// Serialize as `[n u32][ends n×u32][bytes]` (little endian).
    pub fn write_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for e in &self.ends {
            out.extend_from_slice(&e.to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
    }

    /// Read what [`Frame::write_body`] wrote; `None` if it is inconsistent.
    pub fn read_body(body: &[u8]) -> Option<Frame> {
        let n = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        let ends_len = n.checked_mul(4)?;
        let ends_bytes = body.get(4..4 + ends_len)?;
        let bytes = body.get(4 + ends_len..)?;
        let ends: Vec<u32> = ends_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("chunks of 4")))
            .collect();
        let monotonic = ends.windows(2).all(|w| w[0] <= w[1]);
        if !monotonic || ends.last().is_some_and(|&e| e as usize != bytes.len()) || (n == 0 && !bytes.is_empty()) {
            return None;
        }
        Some(Frame {
            bytes: bytes.to_vec(),
            ends,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_body_form() {
        let mut f = Frame::default();
        for r in [&b"{\"a\":1}\n"[..], b"", b"xyz"] {
            f.bytes.extend_from_slice(r);
            f.finish_record();
        }
        assert_eq!(f.records().collect::<Vec<_>>(), vec![&b"{\"a\":1}\n"[..], b"", b"xyz"]);
        let mut body = Vec::new();
        f.write_body(&mut body);
        assert_eq!(Frame::read_body(&body), Some(f));
    }

    #[test]
    fn an_inconsistent_body_is_refused() {
        assert_eq!(Frame::read_body(&[1, 0, 0, 0, 9, 0, 0, 0, b'x']), None);
        assert_eq!(Frame::read_body(&[255, 255, 255, 255]), None);
        assert_eq!(Frame::read_body(&[0, 0]), None);
    }
}
