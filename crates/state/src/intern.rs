//! One shared copy of equal values: the pods of a ReplicaSet carry the same labels and
//! tolerations, and the index keeps tens of thousands of them.
//!
//! Entries nobody else holds any more are swept when the set has doubled since the last sweep,
//! so the cost stays amortised O(1) per value and the set never outgrows twice what is live.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// Fewest entries before a sweep is worth it.
const MIN_SWEEP: usize = 256;

/// A set of shared values.
#[derive(Debug)]
pub struct Interner<T> {
    set: HashSet<Arc<T>>,
    live_after_sweep: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::new(),
            live_after_sweep: 0,
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// The shared copy of `value`.
    pub fn intern(&mut self, value: T) -> Arc<T> {
        if let Some(shared) = self.set.get(&value) {
            return Arc::clone(shared);
        }
        if self.set.len() >= (2 * self.live_after_sweep).max(MIN_SWEEP) {
            self.set.retain(|v| Arc::strong_count(v) > 1);
            self.live_after_sweep = self.set.len();
        }
        let shared = Arc::new(value);
        self.set.insert(Arc::clone(&shared));
        shared
    }

    /// Values held, swept or not.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Nothing interned.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_and_dropped_ones_are_swept() {
        let mut i = Interner::default();
        let a = i.intern(vec![1]);
        let b = i.intern(vec![1]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &i.intern(vec![2])));
        drop(b);
        // Thousands of values nobody keeps: the set stays bounded by the sweeps.
        for n in 0..10_000 {
            i.intern(vec![n + 10]);
        }
        assert!(i.len() <= MIN_SWEEP + 1, "{}", i.len());
        let again = i.intern(vec![1]);
        assert!(Arc::ptr_eq(&a, &again), "a value still held is never swept");
    }
}
