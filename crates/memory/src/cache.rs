//! L1: a hot cache of recent records per thread, bounded in bytes.

use std::collections::{HashMap, VecDeque};

use crate::record::StoredMemory;

/// Recent records of recently active threads, evicting the least recently
/// touched thread's oldest records first when over its byte budget.
#[derive(Debug)]
pub struct HotCache {
    budget: usize,
    used: usize,
    threads: HashMap<String, VecDeque<StoredMemory>>,
    /// Thread ids, least recently used first.
    lru: VecDeque<String>,
}

fn cost(m: &StoredMemory) -> usize {
    m.record.content.len() + m.speaker.as_ref().map_or(0, String::len) + 160
}

impl HotCache {
    /// A cache holding at most `budget` bytes of records.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            threads: HashMap::new(),
            lru: VecDeque::new(),
        }
    }

    /// Approximate bytes held.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// The byte budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget
    }

    fn touch(&mut self, thread: &str) {
        if let Some(p) = self.lru.iter().position(|t| t == thread) {
            let t = self.lru.remove(p).unwrap_or_default();
            self.lru.push_back(t);
        } else {
            self.lru.push_back(thread.to_string());
        }
    }

    /// Remember a record of its thread (records without a thread are not cached).
    pub fn push(&mut self, m: StoredMemory) {
        let Some(thread) = m.record.thread_id.clone() else {
            return;
        };
        let c = cost(&m);
        if c > self.budget {
            return;
        }
        self.touch(&thread);
        self.used += c;
        self.threads.entry(thread).or_default().push_back(m);
        while self.used > self.budget {
            let Some(victim) = self.lru.front().cloned() else {
                break;
            };
            let q = self.threads.get_mut(&victim);
            match q.and_then(VecDeque::pop_front) {
                Some(old) => self.used -= cost(&old),
                None => {
                    self.threads.remove(&victim);
                    self.lru.pop_front();
                }
            }
        }
    }

    /// The last `n` cached records of `thread`, oldest first.
    pub fn recent(&self, thread: &str, n: usize) -> Vec<&StoredMemory> {
        self.threads.get(thread).map_or_else(Vec::new, |q| {
            q.iter().skip(q.len().saturating_sub(n)).collect()
        })
    }

    /// Drop a record (after it was forgotten).
    pub fn remove(&mut self, seq: i64) {
        for q in self.threads.values_mut() {
            if let Some(p) = q.iter().position(|m| m.seq == seq) {
                if let Some(old) = q.remove(p) {
                    self.used -= cost(&old);
                }
            }
        }
    }

    /// Update the pinned flag of a cached record.
    pub fn set_pinned(&mut self, seq: i64, pinned: bool) {
        for q in self.threads.values_mut() {
            for m in q.iter_mut().filter(|m| m.seq == seq) {
                m.record.pinned = pinned;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use opticlaw_core::{MemoryRecord, MemoryType};

    fn rec(seq: i64, thread: &str, text: &str) -> StoredMemory {
        StoredMemory {
            record: MemoryRecord {
                memory_id: uuid::Uuid::now_v7(),
                memory_type: MemoryType::Episodic,
                content: text.into(),
                embedding_ref: None,
                entities: vec![],
                salience: 0.5,
                expires_at: None,
                pinned: false,
                thread_id: Some(thread.into()),
                created_at: None,
            },
            seq,
            speaker: None,
            source: None,
            confidence: None,
            domain: None,
            occurred_at: Utc::now(),
        }
    }

    #[test]
    fn hot_cache_stays_within_its_byte_budget() {
        let mut c = HotCache::new(2_000);
        for i in 0..100 {
            c.push(rec(i, if i % 2 == 0 { "a" } else { "b" }, &"x".repeat(100)));
            assert!(c.used_bytes() <= 2_000);
        }
        let recent = c.recent("b", 2);
        assert_eq!(
            recent.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![97, 99]
        );
    }
}
