//! The caller-owned key/value cache. It grows by `Tensor::cat`, so it is differentiable and can
//! be used on the training path too.

use candle_core::Tensor;

use super::error::Result;

/// Keys and values of every layer for the tokens seen so far, plus which of them are padding
/// and the next RoPE position of each row.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Per layer `(k, v)`, each `[B, kv_heads, S, head_dim]`.
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    /// Per row, per cached key: real (true) or pad (false).
    pub(crate) real: Vec<Vec<bool>>,
    /// Per row: the position the next token gets.
    pub(crate) next_pos: Vec<u32>,
    /// Number of cached keys per row (`S`).
    pub(crate) len: usize,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            real: Vec::new(),
            next_pos: Vec::new(),
            len: 0,
        }
    }

    /// Number of cached tokens per row (pads included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of rows cached (0 when empty).
    pub fn batch_size(&self) -> usize {
        self.next_pos.len()
    }

    /// The position the next token of each row gets.
    pub fn next_positions(&self) -> &[u32] {
        &self.next_pos
    }

    /// A cache holding only the given rows, in that order (used to drop finished sequences).
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        let dev_idx = |t: &Tensor| -> Result<Tensor> {
            let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let idx = Tensor::new(idx.as_slice(), t.device())?;
            Ok(t.index_select(&idx, 0)?)
        };
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => Ok(Some((dev_idx(k)?, dev_idx(v)?))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            real: rows.iter().map(|&r| self.real[r].clone()).collect(),
            next_pos: rows.iter().map(|&r| self.next_pos[r]).collect(),
            len: self.len,
        })
    }
}
