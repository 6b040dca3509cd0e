//! A set of `u128` integers stored as disjoint, non-adjacent runs, so its
//! memory follows the number of runs, not the size of the range it covers.

use std::collections::BTreeMap;

/// Estimated heap bytes per run of a `BTreeMap<u128, u128>` (entry plus node overhead).
const BYTES_PER_RUN: usize = 64;

/// A set of integers kept as maximal runs `start..=end`.
#[derive(Debug, Clone, Default)]
pub(crate) struct IntervalSet {
    /// Run start -> run end (inclusive); runs never overlap nor touch.
    runs: BTreeMap<u128, u128>,
}

impl IntervalSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The run containing `x`, if any.
    fn run_of(&self, x: u128) -> Option<(u128, u128)> {
        self.runs.range(..=x).next_back().filter(|&(_, &end)| end >= x).map(|(&s, &e)| (s, e))
    }

    /// Whether `x` is in the set.
    pub(crate) fn contains(&self, x: u128) -> bool {
        self.run_of(x).is_some()
    }

    /// Adds `x`; false when it was already there.
    pub(crate) fn insert(&mut self, x: u128) -> bool {
        if self.contains(x) {
            return false;
        }
        // The run starting right after `x`, merged into the new run.
        let next_end = x.checked_add(1).and_then(|n| self.runs.remove(&n));
        let end = next_end.unwrap_or(x);
        if let Some((_, prev_end)) = self.runs.range_mut(..x).next_back()
            && prev_end.checked_add(1) == Some(x)
        {
            *prev_end = end;
            return true;
        }
        self.runs.insert(x, end);
        true
    }

    /// Removes `x`; false when it was not there.
    pub(crate) fn remove(&mut self, x: u128) -> bool {
        let Some((start, end)) = self.run_of(x) else {
            return false;
        };
        if start == x {
            self.runs.remove(&start);
        } else if let Some(e) = self.runs.get_mut(&start) {
            *e = x - 1;
        }
        if end > x {
            self.runs.insert(x + 1, end);
        }
        true
    }

    /// The smallest integer of `from..=to` not in the set.
    pub(crate) fn find_free(&self, from: u128, to: u128) -> Option<u128> {
        if from > to {
            return None;
        }
        // Runs never touch, so the integer after a run is always free.
        let candidate = match self.run_of(from) {
            Some((_, end)) => end.checked_add(1)?,
            None => from,
        };
        (candidate <= to).then_some(candidate)
    }

    /// The number of runs.
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// Estimated heap bytes held by the set.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.runs.len() * BYTES_PER_RUN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_split() {
        let mut s = IntervalSet::new();
        assert!(s.insert(1));
        assert!(s.insert(3));
        assert_eq!(s.run_count(), 2);
        assert!(s.insert(2));
        assert_eq!(s.run_count(), 1);
        assert!(!s.insert(2));
        assert!(s.remove(2));
        assert_eq!(s.run_count(), 2);
        assert!(!s.remove(2));
        assert!(s.contains(1) && s.contains(3) && !s.contains(2));
        assert!(s.remove(1) && s.remove(3));
        assert_eq!(s.run_count(), 0);
    }

    #[test]
    fn serial_inserts_keep_one_run() {
        let mut s = IntervalSet::new();
        for i in 1..100_000u128 {
            assert!(s.insert(i));
        }
        assert_eq!(s.run_count(), 1);
        assert_eq!(s.find_free(1, u128::MAX), Some(100_000));
        assert_eq!(s.find_free(1, 99_999), None);
        assert_eq!(s.find_free(0, 10), Some(0));
    }

    #[test]
    fn extremes_of_the_range() {
        let mut s = IntervalSet::new();
        assert!(s.insert(u128::MAX));
        assert!(s.insert(u128::MAX - 1));
        assert_eq!(s.run_count(), 1);
        assert_eq!(s.find_free(u128::MAX - 1, u128::MAX), None);
        assert!(s.remove(u128::MAX));
        assert_eq!(s.find_free(u128::MAX - 1, u128::MAX), Some(u128::MAX));
        assert!(s.insert(0));
        assert!(s.remove(0));
        assert_eq!(s.memory_bytes(), BYTES_PER_RUN);
    }
}
