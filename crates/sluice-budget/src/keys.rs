//! A small direct-mapped cache from short byte keys (service names, route
//! templates: up to 32 bytes) to ids, in front of the stage's hash maps.
//! A key is read as four overlapping words plus its length, so a lookup is
//! a few loads and compares inline: the maps' byte-slice keys went through
//! a `memcmp` call per lookup, 13% of the decisions. A miss (a longer key,
//! a new one, a collision) just takes the map; the cache never decides
//! anything the map would not.

/// A key of at most 32 bytes as words that, with its length, determine
/// every byte (for 16-32 bytes: the first 16 and the last 16, overlapping).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Words([u64; 4], u8);

#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[inline]
fn half(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")))
}

#[inline]
fn words(b: &[u8]) -> Option<Words> {
    let n = b.len();
    let w = match n {
        16..=32 => [word(b, 0), word(b, 8), word(b, n - 16), word(b, n - 8)],
        8..=15 => [word(b, 0), word(b, n - 8), 0, 0],
        4..=7 => [half(b, 0), half(b, n - 4), 0, 0],
        0..=3 => [b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x)), 0, 0, 0],
        _ => return None,
    };
    Some(Words(w, n as u8))
}

const SLOTS: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    key: Words,
    tag: u32,
    value: u32,
    used: bool,
}

const EMPTY: Slot = Slot {
    key: Words([0; 4], 0),
    tag: 0,
    value: 0,
    used: false,
};

/// See the module docs. `tag` keeps keys of different owners apart (the
/// service a route belongs to).
pub struct KeyCache {
    slots: Box<[Slot; SLOTS]>,
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache {
            slots: Box::new([EMPTY; SLOTS]),
        }
    }
}

#[inline]
fn slot_of(k: &Words, tag: u32) -> usize {
    let [a, b, c, d] = k.0;
    let h = (a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47) ^ (u64::from(k.1) << 56) ^ u64::from(tag))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 56) as usize % SLOTS
}

impl KeyCache {
    /// The id cached for `key` under `tag`, if any.
    #[inline]
    pub fn get(&self, key: &[u8], tag: u32) -> Option<u32> {
        let k = words(key)?;
        let s = &self.slots[slot_of(&k, tag)];
        (s.used && s.key == k && s.tag == tag).then_some(s.value)
    }

    /// Remember `key` under `tag` as `value` (a key over 32 bytes is not
    /// cached).
    pub fn insert(&mut self, key: &[u8], tag: u32, value: u32) {
        if let Some(k) = words(key) {
            self.slots[slot_of(&k, tag)] = Slot {
                key: k,
                tag,
                value,
                used: true,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_length_are_told_apart_exactly() {
        // Every prefix of two strings that differ in one byte at a time.
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        let mut c = KeyCache::default();
        for n in 0..=40 {
            c.insert(&base[..n], 1, n as u32);
        }
        for n in 0..=40 {
            let want = (n <= 32).then_some(n as u32);
            // Later inserts may have taken the slot; a hit must be right.
            let got = c.get(&base[..n], 1);
            assert!(got.is_none() || got == want, "length {n}: {got:?}");
            assert_eq!(c.get(&base[..n], 2), None, "another tag");
            for at in 0..n {
                let mut other = base[..n].to_vec();
                other[at] ^= 0x20;
                assert_eq!(c.get(&other, 1), None, "length {n}, byte {at} differs");
            }
        }
        // Alone in the cache, each key of up to 32 bytes is found.
        for n in 0..=32 {
            let mut c = KeyCache::default();
            c.insert(&base[..n], 0, 7);
            assert_eq!(c.get(&base[..n], 0), Some(7), "length {n}");
        }
    }
}
