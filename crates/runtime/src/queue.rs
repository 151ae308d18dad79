//! The bounded priority queue with load shedding.
//!
//! Shedding never loses an event: an event is admitted before it is stored,
//! so a shed event is already durable and merely leaves memory; it is read
//! back from the store once the queue has drained.

use std::collections::{HashSet, VecDeque};

use opticlaw_core::{EventEnvelope, Priority};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepths {
    pub user_blocking: usize,
    pub interactive: usize,
    pub background: usize,
    pub maintenance: usize,
}

/// The queue refused an event: everything queued is at least as urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub(crate) struct PriorityQueue {
    classes: [VecDeque<(i64, EventEnvelope)>; 4],
    capacity: usize,
    /// Slots promised to admitted events that are being written to the store.
    reserved: usize,
    /// Seqs queued or being processed: the refill must not load them twice.
    known: HashSet<i64>,
    /// Some accepted events are only in the store (shed, or left by a restart).
    pub spilled: bool,
    pub shed_total: u64,
}

impl PriorityQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            classes: Default::default(),
            capacity: capacity.max(1),
            reserved: 0,
            known: HashSet::new(),
            spilled: false,
            shed_total: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.classes.iter().map(VecDeque::len).sum()
    }

    /// Reserves a slot for an event of class `priority`, shedding the newest
    /// event of the least urgent lower class when full.
    pub fn admit(&mut self, priority: Priority) -> Result<(), Full> {
        if self.len() + self.reserved < self.capacity {
            self.reserved += 1;
            return Ok(());
        }
        for rank in (priority.rank() + 1..4).rev() {
            if let Some((seq, _)) = self.classes[rank].pop_back() {
                self.known.remove(&seq);
                self.spilled = true;
                self.shed_total += 1;
                self.reserved += 1;
                return Ok(());
            }
        }
        Err(Full)
    }

    /// Gives back a reservation that will not be used (duplicate, store error).
    pub fn release(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// Fills a reservation with the stored event.
    pub fn push_admitted(&mut self, seq: i64, event: EventEnvelope) {
        self.release();
        self.enqueue(seq, event);
    }

    /// Queues an event read back from the store; `false` if it is already
    /// queued or in flight.
    pub fn enqueue(&mut self, seq: i64, event: EventEnvelope) -> bool {
        if !self.known.insert(seq) {
            return false;
        }
        self.classes[event.hints.priority.rank()].push_back((seq, event));
        true
    }

    /// The oldest event of the most urgent non-empty class. It stays
    /// "known" until [`PriorityQueue::finished`].
    pub fn pop(&mut self) -> Option<(i64, EventEnvelope)> {
        self.classes.iter_mut().find_map(VecDeque::pop_front)
    }

    pub fn finished(&mut self, seq: i64) {
        self.known.remove(&seq);
    }

    pub fn is_known(&self, seq: i64) -> bool {
        self.known.contains(&seq)
    }

    pub fn free_slots(&self) -> usize {
        self.capacity.saturating_sub(self.len() + self.reserved)
    }

    pub fn depths(&self) -> QueueDepths {
        QueueDepths {
            user_blocking: self.classes[0].len(),
            interactive: self.classes[1].len(),
            background: self.classes[2].len(),
            maintenance: self.classes[3].len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(priority: Priority) -> EventEnvelope {
        let mut event = EventEnvelope::local_text("u", "t", "x");
        event.hints.priority = priority;
        event
    }

    fn fill(queue: &mut PriorityQueue, seq: i64, priority: Priority) -> Result<(), Full> {
        queue.admit(priority)?;
        queue.push_admitted(seq, event(priority));
        Ok(())
    }

    #[test]
    fn most_urgent_class_is_served_first_then_fifo() {
        let mut queue = PriorityQueue::new(10);
        fill(&mut queue, 1, Priority::Background).unwrap();
        fill(&mut queue, 2, Priority::Interactive).unwrap();
        fill(&mut queue, 3, Priority::UserBlocking).unwrap();
        fill(&mut queue, 4, Priority::Interactive).unwrap();
        let order: Vec<i64> = std::iter::from_fn(|| queue.pop().map(|(s, _)| s)).collect();
        assert_eq!(order, [3, 2, 4, 1]);
    }

    #[test]
    fn full_queue_sheds_lowest_class_first_and_refuses_equal_or_lower() {
        let mut queue = PriorityQueue::new(3);
        fill(&mut queue, 1, Priority::Maintenance).unwrap();
        fill(&mut queue, 2, Priority::Background).unwrap();
        fill(&mut queue, 3, Priority::Interactive).unwrap();
        // Interactive sheds maintenance first, then background.
        fill(&mut queue, 4, Priority::Interactive).unwrap();
        assert_eq!(queue.depths().maintenance, 0);
        assert_eq!(queue.depths().background, 1);
        fill(&mut queue, 5, Priority::Interactive).unwrap();
        assert_eq!(queue.depths().background, 0);
        assert!(queue.spilled);
        assert_eq!(queue.shed_total, 2);
        // Nothing lower is left to shed.
        assert_eq!(fill(&mut queue, 6, Priority::Interactive), Err(Full));
        assert_eq!(fill(&mut queue, 7, Priority::Background), Err(Full));
        // A more urgent class still gets in by shedding interactive.
        fill(&mut queue, 8, Priority::UserBlocking).unwrap();
        assert_eq!(queue.pop().unwrap().0, 8);
    }

    #[test]
    fn shed_events_can_be_requeued_but_never_twice() {
        let mut queue = PriorityQueue::new(1);
        fill(&mut queue, 1, Priority::Background).unwrap();
        fill(&mut queue, 2, Priority::UserBlocking).unwrap();
        assert!(
            !queue.enqueue(2, event(Priority::UserBlocking)),
            "already queued"
        );
        let (seq, _) = queue.pop().unwrap();
        assert!(
            !queue.enqueue(seq, event(Priority::UserBlocking)),
            "in flight"
        );
        queue.finished(seq);
        assert!(
            queue.enqueue(1, event(Priority::Background)),
            "shed event comes back"
        );
    }
}
