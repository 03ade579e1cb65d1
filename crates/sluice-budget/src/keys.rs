//! A small direct-mapped cache from short byte keys (service names, route
//! templates: up to 32 bytes) to ids, in front of the stage's hash maps.
//! A key is read as four overlapping words plus its length, so a lookup is
//! a few loads and compares inline: the maps' byte-slice keys went through
//! a `memcmp` call per lookup, 13% of the decisions. A miss (a longer key,
//! a new one, a collision) just takes the map; the cache never decides
//! anything the map would not.

/// A key of at most 32 bytes as words that, with its length, determine
/// every byte (for 16-32 bytes: the first 16 and the last 16, overlapping).
#[inline]
fn words(b: &[u8]) -> Option<[u64; 4]> {
    let n = b.len();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")));
    Some(match n {
        16..=32 => [word(0), word(8), word(n - 16), word(n - 8)],
        8..=15 => [word(0), word(n - 8), 0, 0],
        4..=7 => [half(0), half(n - 4), 0, 0],
        // 1: b0 b0 b0; 2: b0 b1 b1; 3: b0 b1 b2.
        1..=3 => [
            u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
            0,
            0,
            0,
        ],
        0 => [0; 4],
        _ => return None,
    })
}

/// A key's length and owner, with the top bit set so no empty slot (all
/// zero) ever matches.
#[inline]
fn meta(n: usize, tag: u32) -> u64 {
    n as u64 | u64::from(tag) << 8 | 1 << 63
}

#[derive(Clone, Copy, Default)]
struct Slot {
    words: [u64; 4],
    meta: u64,
    value: u32,
}

/// See the module docs. `tag` keeps keys of different owners apart (the
/// service a route belongs to). `SLOTS` is a power of two, sized for the
/// keys in use (a key that misses only costs the map lookup).
pub struct KeyCache<const SLOTS: usize = 256> {
    slots: Box<[Slot]>,
}

impl<const SLOTS: usize> Default for KeyCache<SLOTS> {
    fn default() -> Self {
        assert!(SLOTS.is_power_of_two());
        KeyCache {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
        }
    }
}

impl<const SLOTS: usize> KeyCache<SLOTS> {
    #[inline]
    fn slot_of(w: &[u64; 4], meta: u64) -> usize {
        let [a, b, c, d] = *w;
        let h =
            (a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47) ^ meta).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 40) as usize & (SLOTS - 1)
    }

    /// The id cached for `key` under `tag`, if any.
    #[inline]
    pub fn get(&self, key: &[u8], tag: u32) -> Option<u32> {
        let w = words(key)?;
        let m = meta(key.len(), tag);
        let s = &self.slots[Self::slot_of(&w, m)];
        // One branch: every word and the length and tag at once.
        let diff = (s.words[0] ^ w[0]) | (s.words[1] ^ w[1]) | (s.words[2] ^ w[2]) | (s.words[3] ^ w[3]) | (s.meta ^ m);
        (diff == 0).then_some(s.value)
    }

    /// Remember `key` under `tag` as `value` (a key over 32 bytes is not
    /// cached).
    pub fn insert(&mut self, key: &[u8], tag: u32, value: u32) {
        if let Some(w) = words(key) {
            let m = meta(key.len(), tag);
            self.slots[Self::slot_of(&w, m)] = Slot {
                words: w,
                meta: m,
                value,
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
        let mut c = KeyCache::<256>::default();
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
            let mut c = KeyCache::<256>::default();
            c.insert(&base[..n], 0, 7);
            assert_eq!(c.get(&base[..n], 0), Some(7), "length {n}");
        }
    }
}
