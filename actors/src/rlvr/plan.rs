//! Which examples each step trains on.
//!
//! An epoch is one pass over the training set as verl builds it: with fewer selected examples
//! than the batch, the examples are duplicated cyclically to fill one batch (1-shot RLVR:
//! 128 copies of pi_1 = one step per epoch); otherwise the examples are shuffled and cut into
//! full batches, the remainder dropped (`drop_last`).

use std::collections::VecDeque;

use azr_core::oneshot::select::fill_batch;
use rand::seq::SliceRandom;
use rand::Rng;

/// The batches of one epoch: positions into the selected-example list.
pub fn epoch_batches<R: Rng>(n_selected: usize, batch: usize, rng: &mut R) -> Vec<Vec<usize>> {
    if n_selected == 0 || batch == 0 {
        return Vec::new();
    }
    let positions: Vec<usize> = (0..n_selected).collect();
    if n_selected <= batch {
        return vec![fill_batch(&positions, batch)];
    }
    let mut shuffled = positions;
    shuffled.shuffle(rng);
    shuffled
        .chunks_exact(batch)
        .map(<[usize]>::to_vec)
        .collect()
}

/// The queue of batches left in the current epoch.
#[derive(Debug, Clone, Default)]
pub struct EpochQueue {
    batches: VecDeque<Vec<usize>>,
    /// Epochs started so far.
    pub epoch: u64,
}

impl EpochQueue {
    /// An empty queue that has already started `epoch` epochs (a resumed run).
    pub fn starting_at(epoch: u64) -> Self {
        Self {
            batches: VecDeque::new(),
            epoch,
        }
    }

    /// The next batch; `(batch, starts_new_epoch)`. A new epoch starts when the queue is empty.
    pub fn next<R: Rng>(
        &mut self,
        n_selected: usize,
        batch: usize,
        rng: &mut R,
    ) -> (Vec<usize>, bool) {
        let mut new_epoch = false;
        if self.batches.is_empty() {
            self.batches = epoch_batches(n_selected, batch, rng).into();
            self.epoch += 1;
            new_epoch = true;
        }
        (self.batches.pop_front().unwrap_or_default(), new_epoch)
    }

    /// Whether the current epoch has no batch left.
    pub fn epoch_done(&self) -> bool {
        self.batches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn one_example_fills_one_batch_per_epoch() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(epoch_batches(1, 4, &mut rng), vec![vec![0, 0, 0, 0]]);
        assert_eq!(epoch_batches(2, 5, &mut rng), vec![vec![0, 1, 0, 1, 0]]);
    }

    #[test]
    fn large_sets_are_shuffled_and_drop_the_remainder() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = epoch_batches(10, 3, &mut rng);
        assert_eq!(b.len(), 3);
        let mut all: Vec<usize> = b.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9);
        let mut q = EpochQueue::default();
        let (first, new) = q.next(10, 3, &mut rng);
        assert!(new && first.len() == 3 && q.epoch == 1);
        let _ = q.next(10, 3, &mut rng);
        let (_, new) = q.next(10, 3, &mut rng);
        assert!(!new && q.epoch_done());
        let (_, new) = q.next(10, 3, &mut rng);
        assert!(new && q.epoch == 2);
    }
}
