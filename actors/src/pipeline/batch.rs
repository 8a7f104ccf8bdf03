//! The learner's batch assembly: scored slots arrive in any order; batch `j` is complete when it
//! holds slots `0..q_k` of every key `k` of the composition, and batches leave in order. A slot
//! that arrives twice (a retried request whose first attempt also finished) is dropped here, so
//! nothing is trained twice.

use std::collections::BTreeMap;

use crate::actors::Scored;

use super::admission::Key;

/// Why a scored slot was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The slot is already in its batch, or its batch was trained.
    #[error("duplicate slot {0:?}")]
    Duplicate(crate::actors::Slot),
    /// The slot's key is not part of the composition or its index is out of range.
    #[error("slot {0:?} is outside the batch composition")]
    Foreign(crate::actors::Slot),
}

/// Assembles batches of the configured composition.
pub struct Assembler {
    quotas: BTreeMap<Key, u64>,
    next: u64,
    pending: BTreeMap<u64, BTreeMap<(Key, u64), Scored>>,
}

impl Assembler {
    /// An assembler whose next batch is `next` (the checkpointed step).
    pub fn new(quotas: BTreeMap<Key, u64>, next: u64) -> Self {
        Self {
            quotas,
            next,
            pending: BTreeMap::new(),
        }
    }

    /// Slots per batch.
    pub fn batch_slots(&self) -> u64 {
        self.quotas.values().sum()
    }

    /// Slots waiting in partial batches.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    /// Take one scored slot.
    pub fn insert(&mut self, s: Scored) -> Result<(), Rejected> {
        let slot = s.slot;
        let key = (slot.kind, slot.role);
        match self.quotas.get(&key) {
            Some(&q) if slot.index < q => {}
            _ => return Err(Rejected::Foreign(slot)),
        }
        if slot.batch < self.next {
            return Err(Rejected::Duplicate(slot));
        }
        let batch = self.pending.entry(slot.batch).or_default();
        if batch.contains_key(&(key, slot.index)) {
            return Err(Rejected::Duplicate(slot));
        }
        batch.insert((key, slot.index), s);
        Ok(())
    }

    /// The next batch, when complete, in slot order (by key, then index).
    pub fn pop_ready(&mut self) -> Option<(u64, Vec<Scored>)> {
        let full = self.batch_slots() as usize;
        if self.pending.get(&self.next).map_or(0, BTreeMap::len) < full {
            return None;
        }
        let j = self.next;
        let batch = self.pending.remove(&j)?;
        self.next += 1;
        Some((j, batch.into_values().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::Slot;
    use azr_core::types::{Role, TaskKind};

    fn scored(kind: TaskKind, role: Role, batch: u64, index: u64) -> Scored {
        Scored {
            slot: Slot {
                kind,
                role,
                batch,
                index,
                admitted_at: 0,
            },
            samples: Vec::new(),
            example: None,
        }
    }

    #[test]
    fn batches_leave_complete_and_in_order() {
        let (d, a) = (TaskKind::Deduction, TaskKind::Abduction);
        let mut asm = Assembler::new(
            BTreeMap::from([((d, Role::Solve), 2), ((a, Role::Propose), 1)]),
            0,
        );
        // Batch 1 completes first: it must wait for batch 0.
        asm.insert(scored(d, Role::Solve, 1, 0)).unwrap();
        asm.insert(scored(d, Role::Solve, 1, 1)).unwrap();
        asm.insert(scored(a, Role::Propose, 1, 0)).unwrap();
        assert!(asm.pop_ready().is_none());
        asm.insert(scored(d, Role::Solve, 0, 1)).unwrap();
        asm.insert(scored(a, Role::Propose, 0, 0)).unwrap();
        assert!(asm.pop_ready().is_none());
        // A duplicate and a foreign slot are rejected, not counted.
        assert!(matches!(
            asm.insert(scored(d, Role::Solve, 0, 1)),
            Err(Rejected::Duplicate(_))
        ));
        assert!(matches!(
            asm.insert(scored(d, Role::Solve, 0, 2)),
            Err(Rejected::Foreign(_))
        ));
        asm.insert(scored(d, Role::Solve, 0, 0)).unwrap();
        let (j, b) = asm.pop_ready().unwrap();
        assert_eq!((j, b.len()), (0, 3));
        let (j, _) = asm.pop_ready().unwrap();
        assert_eq!(j, 1);
        assert!(asm.pop_ready().is_none());
        assert!(matches!(
            asm.insert(scored(a, Role::Propose, 1, 0)),
            Err(Rejected::Duplicate(_))
        ));
        assert_eq!(asm.waiting(), 0);
    }
}
