//! A dense two-level bitmap: one bit per address, plus one summary bit per
//! 64-bit word telling whether that word is full, so searches skip full
//! regions 4096 addresses at a time.

/// A fixed-size set of small integers, one bit each.
#[derive(Debug, Clone)]
pub(crate) struct Bitmap {
    /// Bit `i % 64` of word `i / 64` is set when `i` is in the set.
    words: Vec<u64>,
    /// Bit `w % 64` of summary word `w / 64` is set when word `w` is full.
    summary: Vec<u64>,
    /// The number of integers the bitmap covers.
    len: u64,
}

impl Bitmap {
    /// An empty bitmap covering `0..len`.
    pub(crate) fn new(len: u64) -> Self {
        let nwords = len.div_ceil(64);
        let nsummary = nwords.div_ceil(64);
        Bitmap {
            words: vec![0; usize::try_from(nwords).unwrap_or(0)],
            summary: vec![0; usize::try_from(nsummary).unwrap_or(0)],
            len,
        }
    }

    /// Word index and bit mask of `i`, if it is covered.
    fn locate(&self, i: u64) -> Option<(usize, u64)> {
        if i >= self.len {
            return None;
        }
        let w = usize::try_from(i / 64).ok()?;
        Some((w, 1u64 << (i % 64)))
    }

    /// Whether `i` is in the set.
    pub(crate) fn contains(&self, i: u64) -> bool {
        self.locate(i).and_then(|(w, m)| self.words.get(w).map(|word| word & m != 0)).unwrap_or(false)
    }

    /// Adds `i`; false when it was already there or is not covered.
    pub(crate) fn insert(&mut self, i: u64) -> bool {
        let Some((w, m)) = self.locate(i) else {
            return false;
        };
        let Some(word) = self.words.get_mut(w) else {
            return false;
        };
        if *word & m != 0 {
            return false;
        }
        *word |= m;
        if *word == u64::MAX
            && let Some(s) = self.summary.get_mut(w / 64)
        {
            *s |= 1u64 << (w % 64);
        }
        true
    }

    /// Removes `i`; false when it was not there.
    pub(crate) fn remove(&mut self, i: u64) -> bool {
        let Some((w, m)) = self.locate(i) else {
            return false;
        };
        let Some(word) = self.words.get_mut(w) else {
            return false;
        };
        if *word & m == 0 {
            return false;
        }
        *word &= !m;
        if let Some(s) = self.summary.get_mut(w / 64) {
            *s &= !(1u64 << (w % 64));
        }
        true
    }

    /// The smallest integer of `from..=to` not in the set.
    pub(crate) fn find_free(&self, from: u64, to: u64) -> Option<u64> {
        let to = to.min(self.len.checked_sub(1)?);
        if from > to {
            return None;
        }
        let last_w = usize::try_from(to / 64).ok()?;
        let mut w = usize::try_from(from / 64).ok()?;
        let mut free = !*self.words.get(w)? & (u64::MAX << (from % 64));
        loop {
            if free != 0 {
                let bit = (w as u64) * 64 + u64::from(free.trailing_zeros());
                return (bit <= to).then_some(bit);
            }
            w = self.next_unfull_word(w + 1, last_w)?;
            free = !*self.words.get(w)?;
        }
    }

    /// The first word of `from..=last` that is not full, using the summary.
    fn next_unfull_word(&self, from: usize, last: usize) -> Option<usize> {
        if from > last {
            return None;
        }
        let mut s = from / 64;
        let mut unfull = !*self.summary.get(s)? & (u64::MAX << (from % 64));
        loop {
            if unfull != 0 {
                let w = s * 64 + unfull.trailing_zeros() as usize;
                return (w <= last).then_some(w);
            }
            s += 1;
            if s * 64 > last {
                return None;
            }
            unfull = !*self.summary.get(s)?;
        }
    }

    /// Heap bytes held by the bitmap.
    pub(crate) fn memory_bytes(&self) -> usize {
        (self.words.capacity() + self.summary.capacity()) * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_contains() {
        let mut b = Bitmap::new(100);
        assert!(b.insert(5));
        assert!(!b.insert(5));
        assert!(b.contains(5));
        assert!(!b.insert(100), "out of range is refused");
        assert!(b.remove(5));
        assert!(!b.remove(5));
        assert!(!b.contains(5));
    }

    #[test]
    fn find_free_skips_full_words_and_respects_bounds() {
        let mut b = Bitmap::new(10_000);
        for i in 0..9_000 {
            b.insert(i);
        }
        assert_eq!(b.find_free(0, 9_999), Some(9_000));
        assert_eq!(b.find_free(0, 8_999), None);
        b.remove(4_321);
        assert_eq!(b.find_free(0, 9_999), Some(4_321));
        assert_eq!(b.find_free(4_322, 9_999), Some(9_000));
        assert_eq!(b.find_free(9_500, 20_000), Some(9_500));
        assert_eq!(b.find_free(5, 4), None);
    }

    #[test]
    fn full_bitmap_has_nothing_free() {
        let mut b = Bitmap::new(4096 * 3 + 7);
        for i in 0..4096 * 3 + 7 {
            assert!(b.insert(i));
        }
        assert_eq!(b.find_free(0, u64::MAX), None);
        assert_eq!(b.memory_bytes(), (193 + 4) * 8);
    }
}
