//! The engine's KV slots: per layer one preallocated key and one value buffer
//! `[max_slots, kv_heads, capacity, head_dim]` on the model's device, in its dtype.
//!
//! Active sequences occupy rows `0..rows()` (a finished row is replaced by the last one, so
//! only one row is copied). Rows are **aligned on a shared write column** `col`: row `r` holds
//! its keys in columns `start[r]..col`, and one decode iteration writes every row's new key at
//! column `col` in place (no re-copy of the cache per token) and attends over the columns
//! `min(start)..=col`; the columns before a row's `start` are masked, and each row keeps its
//! own RoPE position, so a row attends exactly as it would alone. A new prompt's prefill is
//! copied into columns `col - len..col` of its rows (moving the others right first if it is
//! longer than `col`); when `col` reaches the capacity, the columns in use are moved to the
//! left edge.

use candle_core::Tensor;

use crate::model::cache::KvBuffers;
use crate::model::{KvCache, ModelError, Snapshot};

type Result<T> = std::result::Result<T, ModelError>;

/// The slot buffers and the layout of the active rows in them.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Per layer `(k, v)`, each `[max_slots, kv_heads, capacity, head_dim]`, contiguous.
    bufs: Vec<(Tensor, Tensor)>,
    capacity: usize,
    max_slots: usize,
    /// The column the next token's key goes to.
    col: usize,
    /// Per active row: its first key column.
    start: Vec<usize>,
    /// Per active row: the RoPE position of its next token.
    next_pos: Vec<u32>,
    /// Times the columns in use were moved.
    moves: u64,
}

impl Slots {
    /// Zeroed buffers for `max_slots` rows of `capacity` keys each, for `snap`'s model.
    pub fn new(snap: &Snapshot, max_slots: usize, capacity: usize) -> Result<Self> {
        let cfg = snap.config();
        let shape = (max_slots, cfg.kv_heads(), capacity, cfg.head_dim());
        let bufs = KvBuffers::zeroed(cfg.num_hidden_layers, shape, snap.dtype(), snap.device())?;
        Ok(Self {
            bufs,
            capacity,
            max_slots,
            col: 0,
            start: Vec::new(),
            next_pos: Vec::new(),
            moves: 0,
        })
    }

    /// Number of active rows.
    pub fn rows(&self) -> usize {
        self.start.len()
    }

    /// Times the columns in use were moved (to the left edge when the write column reached
    /// the capacity, or right to make room for a longer prompt).
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// First column any active row uses.
    fn lo(&self) -> usize {
        self.start.iter().copied().min().unwrap_or(self.col)
    }

    /// Moves the columns in use of every active row so that the first one is `new_lo`.
    fn move_columns(&mut self, new_lo: usize) -> Result<()> {
        let (lo, n) = (self.lo(), self.rows());
        let width = self.col - lo;
        if new_lo == lo || n == 0 {
            return Ok(());
        }
        if new_lo + width > self.capacity {
            return Err(ModelError::InvalidInput(format!(
                "KV slots: {width} columns do not fit at {new_lo} of {}",
                self.capacity
            )));
        }
        for (kb, vb) in &self.bufs {
            for b in [kb, vb] {
                let rows = b.narrow(0, 0, n)?;
                // A fresh copy: source and destination may overlap.
                let used = rows.narrow(2, lo, width)?.force_contiguous()?;
                rows.slice_set(&used, 2, new_lo)?;
            }
        }
        for s in &mut self.start {
            *s = *s + new_lo - lo;
        }
        self.col = new_lo + width;
        self.moves += 1;
        Ok(())
    }

    /// Appends `copies` rows, each holding row 0 of the one-row `prefix` cache.
    pub fn add(&mut self, prefix: &KvCache, copies: usize) -> Result<()> {
        let len = prefix.len;
        if self.rows() + copies > self.max_slots {
            return Err(ModelError::InvalidInput("KV slots: no free slot".into()));
        }
        if len >= self.capacity {
            return Err(ModelError::InvalidInput(format!(
                "KV slots: a prompt of {len} tokens does not fit in {} columns",
                self.capacity
            )));
        }
        if self.rows() == 0 {
            self.col = len;
        } else if len > self.col {
            let lo = self.lo();
            self.move_columns(lo + len - self.col)?;
        }
        let at = self.col - len;
        let first = self.rows();
        for ((kb, vb), layer) in self.bufs.iter().zip(&prefix.layers) {
            let Some((pk, pv)) = layer else {
                return Err(ModelError::InvalidInput("KV slots: empty prefill".into()));
            };
            let (pk, pv) = (pk.force_contiguous()?, pv.force_contiguous()?);
            for row in first..first + copies {
                kb.narrow(0, row, 1)?.slice_set(&pk, 2, at)?;
                vb.narrow(0, row, 1)?.slice_set(&pv, 2, at)?;
            }
        }
        let pos = prefix.next_pos.first().copied().unwrap_or(len as u32);
        self.start.extend(std::iter::repeat_n(at, copies));
        self.next_pos.extend(std::iter::repeat_n(pos, copies));
        Ok(())
    }

    /// Removes row `row`, moving the last row into its place (as `Vec::swap_remove`).
    pub fn swap_remove(&mut self, row: usize) -> Result<()> {
        let last = self.rows() - 1;
        if row != last {
            let (s, width) = (self.start[last], self.col - self.start[last]);
            for (kb, vb) in &self.bufs {
                for b in [kb, vb] {
                    let src = b
                        .narrow(0, last, 1)?
                        .narrow(2, s, width)?
                        .force_contiguous()?;
                    b.narrow(0, row, 1)?.slice_set(&src, 2, s)?;
                }
            }
        }
        self.start.swap_remove(row);
        self.next_pos.swap_remove(row);
        if self.start.is_empty() {
            self.col = 0;
        }
        Ok(())
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.start.clear();
        self.next_pos.clear();
        self.col = 0;
    }

    /// The cache one decode iteration runs with: views of the buffers over the columns in
    /// use, with the buffers attached so the new keys are written in place at column `col`.
    /// Call [`Slots::advance`] after the forward.
    pub fn step_cache(&mut self) -> Result<KvCache> {
        if self.col >= self.capacity {
            self.move_columns(0)?;
        }
        let (n, lo) = (self.rows(), self.lo());
        let width = self.col - lo;
        let mut layers = Vec::with_capacity(self.bufs.len());
        let mut full = Vec::with_capacity(self.bufs.len());
        for (kb, vb) in &self.bufs {
            let (k, v) = (kb.narrow(0, 0, n)?, vb.narrow(0, 0, n)?);
            layers.push(Some((k.narrow(2, lo, width)?, v.narrow(2, lo, width)?)));
            full.push((k, v));
        }
        let real = self
            .start
            .iter()
            .map(|&s| (lo..self.col).map(|c| c >= s).collect())
            .collect();
        Ok(KvCache {
            layers,
            real,
            next_pos: self.next_pos.clone(),
            len: width,
            buffers: Some(KvBuffers {
                layers: full,
                start: lo,
            }),
        })
    }

    /// Records that one decode iteration wrote column `col` of every row.
    pub fn advance(&mut self) {
        self.col += 1;
        for p in &mut self.next_pos {
            *p += 1;
        }
    }
}
