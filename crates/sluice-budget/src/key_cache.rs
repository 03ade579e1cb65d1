//! A small direct-mapped cache from short byte keys (service names, route
//! templates: up to 32 bytes) to ids, in front of the stage's hash maps.
//! A key is four zero-padded words plus its length ([`Key`]), read from the
//! line as one masked window, so a lookup is a few loads and compares
//! inline, with no branch on the key's length: the maps' byte-slice keys
//! went through a `memcmp` call per lookup, 13% of the decisions. A miss
//! (a longer key, a new one, a collision) just takes the map; the cache
//! never decides anything the map would not. The decision loop's probe of
//! the (service, route) cache reads, hashes and compares both keys in SSE2
//! registers (`mod sse2`, the only SIMD code here, with a portable
//! fallback); the same hash is computed in plain words everywhere else.

use sluice_core::Span;

/// 32 bytes of 0xff, then 32 of zero: the 32 bytes from `32 - k` are the
/// mask that keeps the first `k` bytes of a 32-byte window (four loads at
/// one computed offset, no branch or table index per word).
const WINDOW_MASKS: [u8; 64] = {
    let mut m = [0u8; 64];
    let mut i = 0;
    while i < 32 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A key of at most 32 bytes, zero-padded to four words, and its length:
/// together they fix every byte. However it was read, the same bytes give
/// the same `Key`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Key {
    words: [u64; 4],
    len: u8,
}

impl Key {
    /// The key of `b` (`None` past 32 bytes).
    #[inline]
    pub fn of(b: &[u8]) -> Option<Key> {
        if b.len() > 32 {
            return None;
        }
        let mut pad = [0u8; 32];
        pad[..b.len()].copy_from_slice(b);
        Some(Key {
            words: [word(&pad, 0), word(&pad, 8), word(&pad, 16), word(&pad, 24)],
            len: b.len() as u8,
        })
    }

    /// The key of the bytes `span` covers in `buf`, read as one 32-byte
    /// window masked to the length when the buffer goes on that far (a key
    /// inside a line: no branch on its length, which varies from event to
    /// event and was the decision loop's most mispredicted branch).
    #[inline]
    pub fn in_buf(buf: &[u8], span: Span) -> Option<Key> {
        let (start, len) = (span.start as usize, span.len as usize);
        let Some(w) = buf.get(start..start + 32) else {
            return Key::of(buf.get(start..start + len)?);
        };
        let at = 32usize.checked_sub(len)?;
        let mask = &WINDOW_MASKS[at..at + 32];
        Some(Key {
            words: [
                word(w, 0) & word(mask, 0),
                word(w, 8) & word(mask, 8),
                word(w, 16) & word(mask, 16),
                word(w, 24) & word(mask, 24),
            ],
            len: len as u8,
        })
    }

    /// The key's length and its owner's tag, with the top bit set so no
    /// empty slot (all zero) ever matches.
    #[inline]
    fn meta(&self, tag: u32) -> u64 {
        u64::from(self.len) | u64::from(tag) << 8 | 1 << 63
    }
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
    /// A fixed-size array: a masked index needs no bounds check.
    slots: Box<[Slot; SLOTS]>,
}

impl<const SLOTS: usize> Default for KeyCache<SLOTS> {
    fn default() -> Self {
        assert!(SLOTS.is_power_of_two());
        KeyCache {
            slots: vec![Slot::default(); SLOTS]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("SLOTS slots")),
        }
    }
}

impl<const SLOTS: usize> KeyCache<SLOTS> {
    #[inline]
    fn slot_of(k: &Key, meta: u64) -> usize {
        let [a, b, c, d] = k.words;
        let h =
            (a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47) ^ meta).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 40) as usize & (SLOTS - 1)
    }

    /// The id cached for `key` under `tag`, if any.
    #[inline]
    pub fn get(&self, key: &Key, tag: u32) -> Option<u32> {
        let m = key.meta(tag);
        let s = &self.slots[Self::slot_of(key, m)];
        let w = &key.words;
        // One branch: every word and the length and tag at once.
        let diff = (s.words[0] ^ w[0]) | (s.words[1] ^ w[1]) | (s.words[2] ^ w[2]) | (s.words[3] ^ w[3]) | (s.meta ^ m);
        (diff == 0).then_some(s.value)
    }

    /// Remember `key` under `tag` as `value`.
    pub fn insert(&mut self, key: &Key, tag: u32, value: u32) {
        let m = key.meta(tag);
        self.slots[Self::slot_of(key, m)] = Slot {
            words: key.words,
            meta: m,
            value,
        };
    }
}

/// A service's key and its event's route key (none for an event without
/// a duration, which has no route statistics), as one [`PairCache`] key.
#[derive(Clone, Copy)]
struct Pair {
    words: [u64; 8],
    meta: u64,
}

impl Pair {
    #[inline]
    fn new(service: &Key, route: Option<&Key>) -> Pair {
        let r = route.map_or([0; 4], |r| r.words);
        let [a, b, c, d] = service.words;
        Pair {
            words: [a, b, c, d, r[0], r[1], r[2], r[3]],
            meta: pair_meta(u64::from(service.len), route.map(|r| u64::from(r.len))),
        }
    }

    /// The pair's two slots (from independent bits of one hash).
    #[inline]
    fn slots<const SLOTS: usize>(&self) -> (usize, usize) {
        slots_of::<SLOTS>(pair_hash(&self.words, self.meta))
    }
}

/// The hash of a pair's words and meta. Its 64 bytes are four 16-byte
/// lanes of four 32-bit parts; the lanes are XORed with their parts turned
/// 0, 2, 3 and 1 places (one shuffle each, as [`PairCache::probe`] does it
/// in SIMD registers), the halves of the result XORed, the meta mixed in
/// and the whole mixed ([`mix`]). A weak hash is enough: a pair collides only
/// in its slot, and the compare that follows is exact.
#[inline]
fn pair_hash(words: &[u64; 8], meta: u64) -> u64 {
    let lane = |i: usize| {
        let (a, b) = (words[2 * i], words[2 * i + 1]);
        [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32]
    };
    let (v0, v1, v2, v3) = (lane(0), lane(1), lane(2), lane(3));
    let x: [u32; 4] = std::array::from_fn(|i| v0[i] ^ v1[(i + 2) % 4] ^ v2[(i + 3) % 4] ^ v3[(i + 1) % 4]);
    let folded = (u64::from(x[0]) | u64::from(x[1]) << 32) ^ (u64::from(x[2]) | u64::from(x[3]) << 32);
    mix(folded ^ meta)
}

/// Spread every bit of `x` over the high and the middle bits the slots
/// are taken from (a product alone carries a difference only upwards:
/// routes that differ in one late byte shared both slots).
#[inline]
fn mix(x: u64) -> u64 {
    let x = (x ^ x >> 32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ x >> 29
}

/// A pair hash's two slots.
#[inline]
fn slots_of<const SLOTS: usize>(h: u64) -> (usize, usize) {
    ((h >> 40) as usize & (SLOTS - 1), (h >> 20) as usize & (SLOTS - 1))
}

/// A pair's meta: both lengths, whether there is a route, and a top bit so
/// no empty slot (all zero) ever matches.
#[inline]
fn pair_meta(service_len: u64, route_len: Option<u64>) -> u64 {
    service_len | route_len.map_or(0, |r| r << 8 | 1 << 16) | 1 << 63
}

#[derive(Clone, Copy, Default)]
struct PairSlot {
    words: [u64; 8],
    meta: u64,
    ledger: u32,
    /// [`NO_ROUTE`] for none.
    route: u32,
    /// The slow threshold of the pair's events.
    slow_ms: f64,
}

const NO_ROUTE: u32 = u32::MAX;

/// (service, route template) → (ledger id, route statistics index, slow
/// threshold), in front of those lookups: an event's two keys in one probe. Like
/// [`KeyCache`], a miss just takes the maps, and a hit is exact.
pub struct PairCache<const SLOTS: usize = 1024> {
    /// A fixed-size array: a masked index needs no bounds check.
    slots: Box<[PairSlot; SLOTS]>,
}

impl<const SLOTS: usize> Default for PairCache<SLOTS> {
    fn default() -> Self {
        assert!(SLOTS.is_power_of_two());
        PairCache {
            slots: vec![PairSlot::default(); SLOTS]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("SLOTS slots")),
        }
    }
}

impl<const SLOTS: usize> PairCache<SLOTS> {
    /// The ledger, route index and slow threshold cached for `service` and
    /// `route`.
    #[inline]
    pub fn get(&self, service: &Key, route: Option<&Key>) -> Option<(u32, Option<u32>, f64)> {
        let k = Pair::new(service, route);
        self.slots[k.slots::<SLOTS>().0].answer(&k)
    }

    /// [`PairCache::get`], then [`PairCache::get_second`], for the keys
    /// `service` and `route` cover in `buf`, read there: in SSE2 registers
    /// on x86_64, each key one masked 32-byte window, hashed and compared
    /// against both slots in a few vector instructions (as 64-bit words,
    /// the keys' hash and compare were the largest part of a decision).
    /// `None` where a key is over 32 bytes, and on x86_64 also where one
    /// starts within 32 bytes of the buffer's end (its window would run
    /// past it): the caller then takes the general way.
    #[inline]
    pub fn probe(&self, buf: &[u8], service: Span, route: Option<Span>) -> Option<(u32, Option<u32>, f64)> {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        {
            // SAFETY: compiled only for targets with SSE2 (all of x86_64's).
            unsafe { sse2::probe(&self.slots, buf, service, route) }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        {
            self.probe_portable(buf, service, route)
        }
    }

    /// [`PairCache::probe`] without SIMD: the keys as words, both slots.
    #[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
    fn probe_portable(&self, buf: &[u8], service: Span, route: Option<Span>) -> Option<(u32, Option<u32>, f64)> {
        let route = match route {
            Some(r) => Some(Key::in_buf(buf, r)?),
            None => None,
        };
        let service = Key::in_buf(buf, service)?;
        self.get(&service, route.as_ref())
            .or_else(|| self.get_second(&service, route.as_ref()))
    }

    /// [`PairCache::get`] in the pair's second slot, where a pair goes whose
    /// first is taken: asked after a miss, off the hot path (the pairs
    /// there are few).
    pub fn get_second(&self, service: &Key, route: Option<&Key>) -> Option<(u32, Option<u32>, f64)> {
        let k = Pair::new(service, route);
        self.slots[k.slots::<SLOTS>().1].answer(&k)
    }

    /// Remember `service` and `route` as `ledger`, `index` and `slow_ms`:
    /// in the pair's first slot unless another pair holds it and the second
    /// is free (two pairs of one first slot, both busy, would otherwise
    /// evict each other on every event: 80 pairs in 1024 slots collide).
    pub fn insert(&mut self, service: &Key, route: Option<&Key>, ledger: u32, index: Option<u32>, slow_ms: f64) {
        let k = Pair::new(service, route);
        let (first, second) = k.slots::<SLOTS>();
        let at = if self.slots[first].meta != 0 && self.slots[second].meta == 0 {
            second
        } else {
            first
        };
        self.slots[at] = PairSlot {
            words: k.words,
            meta: k.meta,
            ledger,
            route: index.unwrap_or(NO_ROUTE),
            slow_ms,
        };
    }
}

/// [`PairCache::probe`] in SSE2 (part of every x86_64 CPU).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_setzero_si128, _mm_shuffle_epi32, _mm_unpackhi_epi64, _mm_xor_si128,
    };

    use super::{mix, pair_meta, slots_of, PairSlot, Span, WINDOW_MASKS};

    /// 16 bytes from `b` (16 or more long).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(b: &[u8]) -> __m128i {
        assert!(b.len() >= 16);
        // SAFETY: `b` has the 16 bytes read; `loadu` needs no alignment.
        unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
    }

    /// The key `span` covers in `buf` as two zero-padded lanes, like
    /// `Key::in_buf`'s words; none past 32 bytes or the buffer's end.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn window(buf: &[u8], span: Span) -> Option<(__m128i, __m128i)> {
        let (start, len) = (span.start as usize, span.len as usize);
        let w = buf.get(start..start + 32)?;
        let at = 32usize.checked_sub(len)?;
        let m = &WINDOW_MASKS[at..at + 32];
        Some((
            _mm_and_si128(load(w), load(m)),
            _mm_and_si128(load(&w[16..]), load(&m[16..])),
        ))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn probe<const SLOTS: usize>(
        slots: &[PairSlot; SLOTS],
        buf: &[u8],
        service: Span,
        route: Option<Span>,
    ) -> Option<(u32, Option<u32>, f64)> {
        let (s0, s1) = window(buf, service)?;
        let (r0, r1) = match route {
            Some(r) => window(buf, r)?,
            None => (_mm_setzero_si128(), _mm_setzero_si128()),
        };
        let meta = pair_meta(u64::from(service.len), route.map(|r| u64::from(r.len)));
        // `pair_hash`, lane by lane.
        let x = _mm_xor_si128(
            _mm_xor_si128(s0, _mm_shuffle_epi32::<0x4e>(s1)),
            _mm_xor_si128(_mm_shuffle_epi32::<0x93>(r0), _mm_shuffle_epi32::<0x39>(r1)),
        );
        let folded = (_mm_cvtsi128_si64(x) ^ _mm_cvtsi128_si64(_mm_unpackhi_epi64(x, x))) as u64;
        let holds = |slot: &PairSlot| {
            // The slot's words in memory are the key's bytes (little-endian).
            let words: &[u8; 64] = bytemuck_words(&slot.words);
            let eq = _mm_and_si128(
                _mm_and_si128(
                    _mm_cmpeq_epi8(s0, load(&words[..16])),
                    _mm_cmpeq_epi8(s1, load(&words[16..32])),
                ),
                _mm_and_si128(
                    _mm_cmpeq_epi8(r0, load(&words[32..48])),
                    _mm_cmpeq_epi8(r1, load(&words[48..])),
                ),
            );
            _mm_movemask_epi8(eq) == 0xffff && slot.meta == meta
        };
        let (first, second) = slots_of::<SLOTS>(mix(folded ^ meta));
        let (first, second) = (&slots[first], &slots[second]);
        // Both slots here, where the keys are in registers already.
        if holds(first) {
            first.answer_if(true)
        } else {
            second.answer_if(holds(second))
        }
    }

    /// The bytes of eight words, as they lie in memory.
    #[inline]
    fn bytemuck_words(words: &[u64; 8]) -> &[u8; 64] {
        // SAFETY: [u64; 8] and [u8; 64] have the same size, every byte of a
        // u64 is initialized, and u8 has no alignment to respect.
        unsafe { &*(words as *const [u64; 8]).cast::<[u8; 64]>() }
    }
}

impl PairSlot {
    /// What the slot holds, where `hit`.
    #[inline]
    fn answer_if(&self, hit: bool) -> Option<(u32, Option<u32>, f64)> {
        hit.then_some((
            self.ledger,
            (self.route != NO_ROUTE).then_some(self.route),
            self.slow_ms,
        ))
    }

    /// What the slot holds for pair `k`, if it holds `k`.
    #[inline]
    fn answer(&self, k: &Pair) -> Option<(u32, Option<u32>, f64)> {
        // One branch: every word, both lengths and the route flag at once.
        let diff = self
            .words
            .iter()
            .zip(&k.words)
            .fold(self.meta ^ k.meta, |d, (a, b)| d | (a ^ b));
        self.answer_if(diff == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_told_apart_by_either_key_and_by_a_missing_route() {
        let k = |s: &str| Key::of(s.as_bytes()).unwrap();
        let mut c = PairCache::<1024>::default();
        c.insert(&k("api"), Some(&k("/v1/users/{id}")), 3, Some(7), 250.0);
        c.insert(&k("api"), None, 3, None, 1000.0);
        c.insert(&k("api"), Some(&k("")), 3, Some(9), 500.0);
        assert_eq!(c.get(&k("api"), Some(&k("/v1/users/{id}"))), Some((3, Some(7), 250.0)));
        assert_eq!(c.get(&k("api"), None), Some((3, None, 1000.0)));
        assert_eq!(c.get(&k("api"), Some(&k(""))), Some((3, Some(9), 500.0)));
        assert_eq!(c.get(&k("web"), Some(&k("/v1/users/{id}"))), None);
        assert_eq!(c.get(&k("api"), Some(&k("/v1/users/{id]"))), None);
        assert_eq!(
            c.get(&k("ap"), Some(&k("i/v1/users/{id}"))),
            None,
            "the same bytes split elsewhere"
        );
        assert_eq!(PairCache::<1024>::default().get(&k(""), None), None, "an empty cache");
    }

    #[test]
    fn two_pairs_of_one_first_slot_are_both_kept() {
        let k = |s: &str| Key::of(s.as_bytes()).unwrap();
        let slots = |s: &str| Pair::new(&k("api"), Some(&k(s))).slots::<16>();
        // Two routes whose pairs share a first slot but not a second.
        let routes: Vec<String> = (0..64).map(|i| format!("/r{i}")).collect();
        let (a, b) = routes
            .iter()
            .enumerate()
            .flat_map(|(i, a)| routes[i + 1..].iter().map(move |b| (a.as_str(), b.as_str())))
            .find(|(a, b)| slots(a).0 == slots(b).0 && slots(a).1 != slots(b).1 && slots(b).1 != slots(b).0)
            .expect("64 routes in 16 slots collide");
        let mut c = PairCache::<16>::default();
        c.insert(&k("api"), Some(&k(a)), 1, Some(10), 100.0);
        c.insert(&k("api"), Some(&k(b)), 2, Some(20), 200.0);
        assert_eq!(c.get(&k("api"), Some(&k(a))), Some((1, Some(10), 100.0)));
        assert_eq!(c.get(&k("api"), Some(&k(b))), None, "not in its first slot");
        assert_eq!(c.get_second(&k("api"), Some(&k(b))), Some((2, Some(20), 200.0)));
        assert_eq!(c.get_second(&k("api"), Some(&k(a))), None);
        // The probe asks both slots.
        let mut buf = Vec::new();
        let mut place = |s: &str| {
            let span = Span::new(buf.len(), s.len());
            buf.extend_from_slice(s.as_bytes());
            buf.push(b' ');
            span
        };
        let (api, a, b) = (place("api"), place(a), place(b));
        buf.extend_from_slice(&[b'#'; 40]);
        let probe = |r: Span| {
            let portable = c.probe_portable(&buf, api, Some(r));
            assert_eq!(c.probe(&buf, api, Some(r)), portable, "SIMD and portable agree");
            portable
        };
        assert_eq!(probe(a), Some((1, Some(10), 100.0)));
        assert_eq!(probe(b), Some((2, Some(20), 200.0)));
    }

    #[test]
    fn a_probe_in_the_buffer_answers_as_get_does() {
        let services = ["api", "checkout", "a-service-name-of-32-bytes-long!", "", "b"];
        let routes = [
            None,
            Some("/v1/users/{id}"),
            Some("/"),
            Some("/v1/users/{id}/orders/{id}/items"),
            Some("/v1/users/{id}/orders/{id}/items/"),
            Some(""),
        ];
        // Each key in a buffer with other bytes around it (the probe masks
        // them off), then 40 bytes so every window fits.
        let mut buf = b"xx".to_vec();
        let mut place = |k: &str| {
            let span = Span::new(buf.len(), k.len());
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(b"\",\"zz");
            span
        };
        let s_spans: Vec<Span> = services.iter().map(|s| place(s)).collect();
        let r_spans: Vec<Option<Span>> = routes.iter().map(|r| r.map(&mut place)).collect();
        buf.extend_from_slice(&[b'#'; 40]);
        let mut c = PairCache::<1024>::default();
        let key = |s: Span| Key::in_buf(&buf, s);
        // No route is a key of its own; a route over 32 bytes has none.
        let route_key = |r: Option<Span>| match r {
            None => Some(None),
            Some(r) => key(r).map(Some),
        };
        let mut n = 0;
        for (si, s) in s_spans.iter().enumerate() {
            for (ri, r) in r_spans.iter().enumerate() {
                if let (Some(sk), Some(rk)) = (key(*s), route_key(*r)) {
                    n += 1;
                    c.insert(&sk, rk.as_ref(), si as u32, Some(ri as u32), n as f64);
                }
            }
        }
        let mut hits = 0;
        for (si, s) in s_spans.iter().enumerate() {
            for (ri, r) in r_spans.iter().enumerate() {
                let got = c.probe(&buf, *s, *r);
                let want = match (key(*s), route_key(*r)) {
                    (Some(sk), Some(rk)) => c.get(&sk, rk.as_ref()),
                    _ => None,
                };
                assert_eq!(got, want, "{:?} {:?}", services[si], routes[ri]);
                assert_eq!(c.probe_portable(&buf, *s, *r), want, "portable");
                if let Some((ledger, route, _)) = got {
                    assert_eq!((ledger, route), (si as u32, Some(ri as u32)));
                    hits += 1;
                }
            }
        }
        // Every pair of keys of 32 bytes or less is in its first slot here
        // (1024 slots), and the 33-byte route is never probed.
        assert_eq!(hits, n);
        assert_eq!(n, 25, "5 services, 5 routes (one over 32 bytes)");
        assert_eq!(c.probe(&buf, s_spans[0], r_spans[4]), None, "a 33-byte route");
        // A key within 32 bytes of the buffer's end is left to `get`.
        let end = Span::new(buf.len() - 3, 3);
        assert_eq!(c.probe(&buf, end, None), None);
    }

    #[test]
    fn keys_of_every_length_are_told_apart_exactly() {
        // Every prefix of two strings that differ in one byte at a time.
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        let key = |b: &[u8]| Key::of(b);
        let mut c = KeyCache::<256>::default();
        for n in 0..=32 {
            c.insert(&key(&base[..n]).unwrap(), 1, n as u32);
        }
        assert_eq!(key(&base[..33]), None, "over 32 bytes");
        for n in 0..=32 {
            let k = key(&base[..n]).unwrap();
            // Later inserts may have taken the slot; a hit must be right.
            let got = c.get(&k, 1);
            assert!(got.is_none() || got == Some(n as u32), "length {n}: {got:?}");
            assert_eq!(c.get(&k, 2), None, "another tag");
            for at in 0..n {
                let mut other = base[..n].to_vec();
                other[at] ^= 0x20;
                assert_eq!(c.get(&key(&other).unwrap(), 1), None, "length {n}, byte {at} differs");
            }
        }
        // Alone in the cache, each key of up to 32 bytes is found.
        for n in 0..=32 {
            let mut c = KeyCache::<256>::default();
            c.insert(&key(&base[..n]).unwrap(), 0, 7);
            assert_eq!(c.get(&key(&base[..n]).unwrap(), 0), Some(7), "length {n}");
        }
    }

    #[test]
    fn a_key_read_in_its_buffer_is_the_key_of_its_bytes() {
        // Keys at every offset and length of a buffer, near its end too
        // (where the 32-byte window does not fit), against their bytes.
        let buf: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37) | 1).collect();
        for start in 0..buf.len() {
            for len in 0..=(buf.len() - start).min(40) {
                let want = Key::of(&buf[start..start + len]);
                assert_eq!(
                    Key::in_buf(&buf, Span::new(start, len)),
                    want,
                    "at {start}, {len} bytes"
                );
                assert_eq!(want.is_some(), len <= 32);
            }
        }
        assert_eq!(Key::in_buf(&buf, Span::new(70, 20)), None, "past the buffer");
    }
}
