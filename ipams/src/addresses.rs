//! The set of allocated host offsets of a pool: a dense bitmap for pools of
//! up to [`DENSE_LIMIT`] addresses, a run-length interval set beyond.

use crate::bitmap::Bitmap;
use crate::intervals::IntervalSet;

/// The largest pool (in addresses) kept as a dense bitmap: a /8 (2 MiB of bits).
pub const DENSE_LIMIT: u128 = 1 << 24;

/// Allocated offsets of one pool.
#[derive(Debug, Clone)]
pub(crate) enum AddressSet {
    /// One bit per address of the pool.
    Dense(Bitmap),
    /// Runs of allocated offsets, for pools too large for a bitmap.
    Sparse(IntervalSet),
}

impl AddressSet {
    /// An empty set for offsets `0..=max_offset`.
    pub(crate) fn new(max_offset: u128) -> Self {
        match max_offset.checked_add(1) {
            Some(len) if len <= DENSE_LIMIT => match u64::try_from(len) {
                Ok(len) => AddressSet::Dense(Bitmap::new(len)),
                Err(_) => AddressSet::Sparse(IntervalSet::new()),
            },
            _ => AddressSet::Sparse(IntervalSet::new()),
        }
    }

    /// Whether `off` is allocated.
    pub(crate) fn contains(&self, off: u128) -> bool {
        match self {
            AddressSet::Dense(b) => u64::try_from(off).is_ok_and(|o| b.contains(o)),
            AddressSet::Sparse(s) => s.contains(off),
        }
    }

    /// Marks `off` allocated; false when it already was.
    pub(crate) fn insert(&mut self, off: u128) -> bool {
        match self {
            AddressSet::Dense(b) => u64::try_from(off).is_ok_and(|o| b.insert(o)),
            AddressSet::Sparse(s) => s.insert(off),
        }
    }

    /// Marks `off` free; false when it was not allocated.
    pub(crate) fn remove(&mut self, off: u128) -> bool {
        match self {
            AddressSet::Dense(b) => u64::try_from(off).is_ok_and(|o| b.remove(o)),
            AddressSet::Sparse(s) => s.remove(off),
        }
    }

    /// The smallest free offset of `from..=to`.
    pub(crate) fn find_free(&self, from: u128, to: u128) -> Option<u128> {
        match self {
            AddressSet::Dense(b) => {
                let from = u64::try_from(from).ok()?;
                let to = u64::try_from(to).unwrap_or(u64::MAX);
                b.find_free(from, to).map(u128::from)
            }
            AddressSet::Sparse(s) => s.find_free(from, to),
        }
    }

    /// Heap bytes held by the set (estimated for the sparse form).
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            AddressSet::Dense(b) => b.memory_bytes(),
            AddressSet::Sparse(s) => s.memory_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representation_follows_size() {
        assert!(matches!(AddressSet::new(255), AddressSet::Dense(_)));
        assert!(matches!(AddressSet::new(DENSE_LIMIT - 1), AddressSet::Dense(_)));
        assert!(matches!(AddressSet::new(DENSE_LIMIT), AddressSet::Sparse(_)));
        assert!(matches!(AddressSet::new(u128::MAX), AddressSet::Sparse(_)));
    }

    #[test]
    fn both_forms_behave_alike() {
        for mut set in [AddressSet::new(1000), AddressSet::Sparse(IntervalSet::new())] {
            assert!(set.insert(3));
            assert!(!set.insert(3));
            assert!(set.contains(3));
            assert_eq!(set.find_free(3, 10), Some(4));
            assert!(set.remove(3));
            assert_eq!(set.find_free(3, 10), Some(3));
            assert_eq!(set.find_free(11, 10), None);
        }
    }
}
