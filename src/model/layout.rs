//! Where each token of a `[B, T]` block sits: its RoPE position and whether it is padding.
//!
//! Left-padded batches (ragged prompts) put pad tokens before the real ones; pads are
//! invisible to every real query (key masking) and their own outputs are ignored. A pad query
//! still attends to itself so that no softmax row is fully masked (that would give NaNs that
//! leak into gradients).

use super::error::{ModelError, Result};

/// Positions and padding of a `[batch, seq]` block of token ids, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLayout {
    batch: usize,
    seq: usize,
    positions: Vec<u32>,
    real: Vec<bool>,
}

impl BatchLayout {
    /// A layout from explicit per-token positions and real/pad flags (both `batch * seq` long,
    /// row-major).
    pub fn new(batch: usize, seq: usize, positions: Vec<u32>, real: Vec<bool>) -> Result<Self> {
        if positions.len() != batch * seq || real.len() != batch * seq {
            return Err(ModelError::InvalidInput(format!(
                "layout of {batch}x{seq} needs {} positions and flags, got {} and {}",
                batch * seq,
                positions.len(),
                real.len()
            )));
        }
        Ok(Self {
            batch,
            seq,
            positions,
            real,
        })
    }

    /// Rows of lengths `lens`, each left-padded to `seq`: row `b` has `seq - lens[b]` pads, then
    /// its real tokens at positions `0..lens[b]`.
    pub fn left_padded(lens: &[usize], seq: usize) -> Result<Self> {
        let mut positions = Vec::with_capacity(lens.len() * seq);
        let mut real = Vec::with_capacity(lens.len() * seq);
        for &len in lens {
            if len > seq {
                return Err(ModelError::InvalidInput(format!(
                    "row of length {len} does not fit in {seq} columns"
                )));
            }
            let pad = seq - len;
            for t in 0..seq {
                positions.push(t.saturating_sub(pad) as u32);
                real.push(t >= pad);
            }
        }
        Self::new(lens.len(), seq, positions, real)
    }

    /// All-real rows continuing at per-row start positions: row `b` holds positions
    /// `start[b]..start[b] + seq`.
    pub fn continuing(start: &[u32], seq: usize) -> Self {
        let positions = start
            .iter()
            .flat_map(|&s| (0..seq as u32).map(move |t| s + t))
            .collect();
        Self {
            batch: start.len(),
            seq,
            positions,
            real: vec![true; start.len() * seq],
        }
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of columns.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// RoPE positions, row-major.
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// Real (true) / pad (false) flags, row-major.
    pub fn real(&self) -> &[bool] {
        &self.real
    }

    /// Whether any token is padding.
    pub fn has_padding(&self) -> bool {
        self.real.iter().any(|r| !r)
    }
}

/// Left-pads `rows` with `pad_id` to the longest length; returns the flat ids and the layout.
pub fn pad_left(rows: &[Vec<u32>], pad_id: u32) -> Result<(Vec<u32>, BatchLayout)> {
    let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
    let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
    let mut ids = Vec::with_capacity(rows.len() * seq);
    for row in rows {
        ids.extend(std::iter::repeat_n(pad_id, seq - row.len()));
        ids.extend_from_slice(row);
    }
    Ok((ids, BatchLayout::left_padded(&lens, seq)?))
}

/// The additive attention bias `[B, 1, T, S]` (0 = may attend, -inf = masked) for `T` new
/// queries over `S = past + T` keys, or `None` when plain causal masking with no padding and a
/// single query makes it unnecessary.
///
/// `past_real[b]` flags the cached keys of row `b` (empty when there is no cache).
pub(crate) fn attention_bias(
    past_real: &[Vec<bool>],
    past: usize,
    layout: &BatchLayout,
) -> Option<Vec<f32>> {
    let (b, t) = (layout.batch, layout.seq);
    let s = past + t;
    let past_pad = past_real.iter().any(|r| r.iter().any(|x| !x));
    if t == 1 && !past_pad && !layout.has_padding() {
        return None;
    }
    let mut bias = vec![f32::NEG_INFINITY; b * t * s];
    for row in 0..b {
        for q in 0..t {
            let qs = past + q;
            let base = (row * t + q) * s;
            for k in 0..=qs {
                let key_real = if k < past {
                    past_real
                        .get(row)
                        .and_then(|r| r.get(k))
                        .copied()
                        .unwrap_or(true)
                } else {
                    layout.real[row * t + (k - past)]
                };
                if key_real || k == qs {
                    bias[base + k] = 0.0;
                }
            }
        }
    }
    Some(bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_positions_and_flags() {
        let l = BatchLayout::left_padded(&[2, 3], 3).unwrap();
        assert_eq!(l.positions(), &[0, 0, 1, 0, 1, 2]);
        assert_eq!(l.real(), &[false, true, true, true, true, true]);
    }

    #[test]
    fn bias_masks_pads_but_keeps_diagonal() {
        let l = BatchLayout::left_padded(&[1], 2).unwrap();
        let b = attention_bias(&[], 0, &l).unwrap();
        // query 0 (pad) sees only itself; query 1 (real) must not see the pad.
        assert_eq!(b, vec![0.0, f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0]);
        let step = BatchLayout::continuing(&[1], 1);
        let b = attention_bias(&[vec![false, true]], 2, &step).unwrap();
        assert_eq!(b, vec![f32::NEG_INFINITY, 0.0, 0.0]);
        assert!(attention_bias(&[vec![true, true]], 2, &step).is_none());
    }
}
