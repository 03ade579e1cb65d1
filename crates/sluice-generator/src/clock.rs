//! Timestamps for generated lines: RFC 3339 with milliseconds, UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Where generated timestamps come from.
#[derive(Debug, Clone)]
pub struct TimestampClock {
    /// `None` reads the wall clock.
    simulated: Option<(i64, f64)>,
    /// The formatted `YYYY-MM-DDTHH:MM:SS.` of `cached_second`.
    cached_second: i64,
    cached_prefix: [u8; 20],
}

impl TimestampClock {
    /// Line `n` is stamped `start_unix_ms + n * 1000 / rate` ms.
    pub fn simulated(start_unix_ms: i64, events_per_second: f64) -> TimestampClock {
        TimestampClock {
            simulated: Some((start_unix_ms, events_per_second)),
            cached_second: i64::MIN,
            cached_prefix: [0; 20],
        }
    }

    /// Lines are stamped with the wall clock.
    pub fn wall() -> TimestampClock {
        TimestampClock {
            simulated: None,
            cached_second: i64::MIN,
            cached_prefix: [0; 20],
        }
    }

    /// The timestamp (ms since the epoch) of line `n`.
    pub fn unix_ms(&self, n: u64) -> i64 {
        match self.simulated {
            Some((start, rate)) => start + (n as f64 * 1000.0 / rate) as i64,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// Write the timestamp of line `n` into `out`; returns its length (24).
    pub fn format(&mut self, n: u64, out: &mut [u8; 24]) -> usize {
        let ms = self.unix_ms(n);
        let second = ms.div_euclid(1000);
        if second != self.cached_second {
            // Calendar arithmetic once per second, not per line.
            let t = OffsetDateTime::from_unix_timestamp(second).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            self.cached_prefix.copy_from_slice(&s.as_bytes()[..20]);
            self.cached_second = second;
        }
        let millis = ms.rem_euclid(1000) as u16;
        out[..20].copy_from_slice(&self.cached_prefix);
        out[20] = b'0' + (millis / 100) as u8;
        out[21] = b'0' + (millis / 10 % 10) as u8;
        out[22] = b'0' + (millis % 10) as u8;
        out[23] = b'Z';
        24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_timestamps_advance_by_rate() {
        let mut c = TimestampClock::simulated(1_764_028_800_000, 4.0);
        let mut buf = [0u8; 24];
        c.format(0, &mut buf);
        assert_eq!(&buf, b"2025-11-25T00:00:00.000Z");
        c.format(5, &mut buf);
        assert_eq!(&buf, b"2025-11-25T00:00:01.250Z");
        c.format(4 * 86_400, &mut buf);
        assert_eq!(&buf, b"2025-11-26T00:00:00.000Z");
    }
}
