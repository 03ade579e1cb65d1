//! The probability each recent trace was first decided with, so a request's
//! later lines get the decision (and `sample_rate`) of its first even when
//! the service's probability moved in between.
//!
//! A direct-mapped table of a fixed size that stays in the CPU's L2 cache:
//! a hash map of every recent trace cost a cache miss per event, more than
//! the rest of the decision together. A slot taken over by a later trace
//! makes the earlier trace's next line use the current probability, which
//! changes its decision only if the probability crossed its hash meanwhile.

/// Slots (each 8 bytes: 256 KiB in all).
const SLOTS: usize = 1 << 15;

/// See the module docs.
pub struct TraceMemory {
    /// `tag << 32 | p as f32 bits`; 0 is an empty slot. A fixed-size array,
    /// so a masked index needs no bounds check.
    slots: Box<[u64; SLOTS]>,
}

impl Default for TraceMemory {
    fn default() -> TraceMemory {
        TraceMemory {
            slots: vec![0; SLOTS].into_boxed_slice().try_into().expect("SLOTS slots"),
        }
    }
}

impl TraceMemory {
    /// Ask the CPU to bring trace `h`'s slot into cache: `decide` hashes a
    /// batch's traces first and prefetches, so the lookups that follow do
    /// not each wait for memory (the batch's events stream through the
    /// cache and push the table out of it).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        prefetch(&self.slots[h as usize & (SLOTS - 1)]);
    }

    /// The probability trace `h` was first decided with, recording `p` for
    /// it if it is new (or its slot was taken over). The returned value is
    /// the one stored (`p` rounded to `f32`), so every line compares against
    /// exactly the same number.
    #[inline]
    pub fn first_p(&mut self, h: u64, p: f64) -> f64 {
        // The slot comes from the low bits, the tag from the high ones, so
        // the two are independent; tag 0 is moved so 0 can mean empty.
        let slot = &mut self.slots[h as usize & (SLOTS - 1)];
        let tag = (h >> 32).max(1);
        if *slot >> 32 == tag {
            return f64::from(f32::from_bits(*slot as u32));
        }
        let stored = p as f32;
        *slot = tag << 32 | u64::from(stored.to_bits());
        f64::from(stored)
    }
}

/// Ask the cache for the line holding `value` (a hint: nothing on other
/// architectures).
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let at: *const T = value;
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch only
        // hints the cache: it never faults, even on a bad address (this one
        // comes from a reference).
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_keeps_its_first_probability_until_its_slot_is_taken() {
        let mut m = TraceMemory::default();
        let h = 0xdead_beef_0000_0007u64;
        assert_eq!(m.first_p(h, 0.5), 0.5);
        assert_eq!(m.first_p(h, 0.25), 0.5);
        // Another trace in the same slot takes it over.
        let other = 0x1234_5678_0000_0007u64;
        assert_eq!(m.first_p(other, 0.25), 0.25);
        assert_eq!(m.first_p(h, 0.125), 0.125);
        // A trace in another slot is independent.
        assert_eq!(m.first_p(0xdead_beef_0000_0008, 0.75), 0.75);
        assert_eq!(m.first_p(h, 1.0), 0.125);
        // A tag of zero still counts as present.
        assert_eq!(m.first_p(5, 0.5), 0.5);
        assert_eq!(m.first_p(5, 1.0), 0.5);
    }
}
