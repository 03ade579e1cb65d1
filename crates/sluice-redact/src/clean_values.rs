//! A memo of values the detectors found clean. Log records repeat most of
//! their values (levels, service names, versions, event names, methods,
//! messages, route templates), and whether a value holds a secret depends
//! on its bytes alone, so a value seen clean before is clean again: one
//! short comparison instead of the literal automaton over its bytes.
//!
//! It only ever answers "clean" for exactly the bytes the detectors cleared
//! (slots hold the whole value and are compared in full); a slot is simply
//! overwritten by the next clean value that maps to it.

use crate::serialize::same_key;
use crate::values::ValueDetectors;

/// Values longer than this are not memoized (ids and free text, mostly).
const MAX_LEN: usize = 31;
/// 512 slots of 32 bytes: 16 KiB, stays in the first-level cache.
const SLOTS: usize = 512;

#[derive(Clone, Copy)]
struct Slot {
    len: u8,
    bytes: [u8; MAX_LEN],
}

/// See the module docs.
pub(crate) struct CleanValues {
    slots: Box<[Slot]>,
}

impl Default for CleanValues {
    fn default() -> Self {
        CleanValues {
            // Length 0 never matches: an empty value is not looked up.
            slots: vec![
                Slot {
                    len: 0,
                    bytes: [0; MAX_LEN]
                };
                SLOTS
            ]
            .into_boxed_slice(),
        }
    }
}

#[inline]
fn slot_of(v: &[u8]) -> usize {
    let n = v.len();
    let key = n as u32 | u32::from(v[0]) << 8 | u32::from(v[n / 2]) << 16 | u32::from(v[n - 1]) << 24;
    (key.wrapping_mul(0x9E37_79B1) >> 23) as usize
}

impl CleanValues {
    /// Whether `value` is clean for `detectors`: from the memo when it was
    /// seen clean before, else by asking them (and remembering a clean one).
    #[inline]
    pub(crate) fn is_clean(&mut self, value: &[u8], detectors: &ValueDetectors) -> bool {
        if value.is_empty() || value.len() > MAX_LEN {
            return detectors.redact(value).is_none();
        }
        let slot = &mut self.slots[slot_of(value)];
        if usize::from(slot.len) == value.len() && same_key(&slot.bytes[..value.len()], value) {
            return true;
        }
        let clean = detectors.redact(value).is_none();
        if clean {
            slot.len = value.len() as u8;
            slot.bytes[..value.len()].copy_from_slice(value);
        }
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_clean_values_and_never_a_dirty_one() {
        let detectors = ValueDetectors::new(&[], &[]).unwrap();
        let mut memo = CleanValues::default();
        let values: &[(&[u8], bool)] = &[
            (b"INFO", true),
            (b"checkout", true),
            (b"kim@example.com", false),
            (b"/v1/users/{id}", true),
            (b"token=abcd1234efgh", false),
            (b"a", true),
            (b"", true),
            (b"request completed after a long wait", true),
            (b"4111 1111 1111 1111", false),
        ];
        for _ in 0..3 {
            for (v, clean) in values {
                assert_eq!(memo.is_clean(v, &detectors), *clean, "{}", String::from_utf8_lossy(v));
            }
        }
    }

    #[test]
    fn a_value_sharing_a_slot_is_compared_in_full() {
        let detectors = ValueDetectors::new(&[], &[]).unwrap();
        let mut memo = CleanValues::default();
        // Same length and the same first, middle and last byte: one slot.
        let (clean, dirty) = (b"abc.xym", b"a@b.com");
        assert_eq!(slot_of(clean), slot_of(dirty), "test premise");
        assert!(memo.is_clean(clean, &detectors));
        assert!(!memo.is_clean(dirty, &detectors));
        assert!(memo.is_clean(clean, &detectors), "a dirty value is never stored");
        assert!(!memo.is_clean(dirty, &detectors));
    }
}
