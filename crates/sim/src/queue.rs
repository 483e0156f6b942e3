//! The event queue: ordered by (time, sequence), so two events at the same instant run in the
//! order they were scheduled, on every machine.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use tandem_podscaler::TimeMs;

struct Entry<E> {
    at: TimeMs,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A min-queue of events by (time, insertion sequence).
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: TimeMs, event: E) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// The next event and its time.
    pub fn pop(&mut self) -> Option<(TimeMs, E)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.event))
    }

    /// When the next event is due.
    pub fn peek_time(&self) -> Option<TimeMs> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_pop_in_insertion_order() {
        let mut q = EventQueue::default();
        q.push(TimeMs(5), "b");
        q.push(TimeMs(1), "a");
        q.push(TimeMs(5), "c");
        assert_eq!(q.pop(), Some((TimeMs(1), "a")));
        assert_eq!(q.pop(), Some((TimeMs(5), "b")));
        assert_eq!(q.pop(), Some((TimeMs(5), "c")));
        assert!(q.is_empty());
    }
}
