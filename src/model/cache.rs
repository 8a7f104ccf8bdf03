//! The caller-owned key/value cache. It grows by `Tensor::cat`, so it is differentiable and can
//! be used on the training path too. The rollout engine ([`crate::engine`]) and
//! [`crate::model::sampling::generate`] attach preallocated buffers ([`KvBuffers`]) so new keys
//! are written in place instead (no gradient, no re-copy of the cache per token).

use candle_core::{DType, Device, Tensor};

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
    /// Preallocated storage the layers' keys/values are views of, if any.
    pub(crate) buffers: Option<KvBuffers>,
}

/// Preallocated per-layer key/value buffers, each `[B, kv_heads, capacity, head_dim]` and
/// contiguous; the cache's layers are the column views `start..start + len` of them, and new
/// keys are written in place at column `start + len` while there is room (otherwise the cache
/// falls back to `Tensor::cat`).
///
/// In-place writes bypass autograd and alias every clone of the cache, so only a single owner
/// that never differentiates through the cache (the rollout engine, `generate`) attaches buffers.
#[derive(Debug, Clone)]
pub(crate) struct KvBuffers {
    /// Per layer `(k, v)` buffers.
    pub layers: Vec<(Tensor, Tensor)>,
    /// First buffer column of the cached view.
    pub start: usize,
}

impl KvBuffers {
    /// Zeroed `(key, value)` buffers of `shape` `[rows, kv_heads, capacity, head_dim]` for
    /// each of `num_layers` layers.
    pub(crate) fn zeroed(
        num_layers: usize,
        shape: (usize, usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<Vec<(Tensor, Tensor)>> {
        let zeros = || Tensor::zeros(shape, dtype, device);
        (0..num_layers).map(|_| Ok((zeros()?, zeros()?))).collect()
    }
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            real: Vec::new(),
            next_pos: Vec::new(),
            len: 0,
            buffers: None,
        }
    }

    /// An empty cache with preallocated [`KvBuffers`] of `shape` `[batch, kv_heads, capacity,
    /// head_dim]` per layer: appends write in place until the capacity is reached. For a single owner that never differentiates through the cache
    /// (see [`KvBuffers`]).
    pub(crate) fn preallocated(
        num_layers: usize,
        shape: (usize, usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            buffers: Some(KvBuffers {
                layers: KvBuffers::zeroed(num_layers, shape, dtype, device)?,
                start: 0,
            }),
            ..Self::new(num_layers)
        })
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
        // With buffers, the rows' buffers are selected (one copy) and the cache stays a view
        // of them, so later appends still write in place.
        let buffers = match &self.buffers {
            Some(b) => Some(KvBuffers {
                layers: b
                    .layers
                    .iter()
                    .map(|(k, v)| Ok((dev_idx(k)?, dev_idx(v)?)))
                    .collect::<Result<Vec<_>>>()?,
                start: b.start,
            }),
            None => None,
        };
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| match (l, &buffers) {
                (Some(_), Some(b)) => {
                    let (k, v) = &b.layers[i];
                    Ok(Some((
                        k.narrow(2, b.start, self.len)?,
                        v.narrow(2, b.start, self.len)?,
                    )))
                }
                (Some((k, v)), None) => Ok(Some((dev_idx(k)?, dev_idx(v)?))),
                (None, _) => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            real: rows.iter().map(|&r| self.real[r].clone()).collect(),
            next_pos: rows.iter().map(|&r| self.next_pos[r]).collect(),
            len: self.len,
            buffers,
        })
    }

    /// Appends the new keys and values `[B, kv_heads, T, head_dim]` of layer `layer` and
    /// returns everything that layer attends over. Writes into the [`KvBuffers`] when they
    /// have room, else concatenates. The caller updates `len` after the last layer.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor,
        v: Tensor,
    ) -> Result<(Tensor, Tensor)> {
        if let Some(bufs) = &self.buffers {
            let (kb, vb) = &bufs.layers[layer];
            let at = bufs.start + self.len;
            if at + k.dim(2)? <= kb.dim(2)? && kb.dim(0)? == k.dim(0)? {
                kb.slice_set(&k, 2, at)?;
                vb.slice_set(&v, 2, at)?;
                let t = k.dim(2)?;
                let kv = (
                    kb.narrow(2, bufs.start, self.len + t)?,
                    vb.narrow(2, bufs.start, self.len + t)?,
                );
                self.layers[layer] = Some(kv.clone());
                return Ok(kv);
            }
        }
        let kv = match self.layers[layer].take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        self.layers[layer] = Some(kv.clone());
        Ok(kv)
    }
}
