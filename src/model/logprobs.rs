//! Per-token log-probabilities and entropies of given responses, batched with masks: what the
//! learner backpropagates through (on a [`Model`]) and what the reference policy provides (on a
//! [`Snapshot`]).

use std::sync::Arc;

use candle_core::{DType, Tensor, D};

use super::cpu_ops::TokenLogProbEntropy;

use super::error::{ModelError, Result};
use super::kernels::Kernels;
use super::layout::BatchLayout;
use super::policy::{Model, Snapshot};
use super::transformer::{ids_tensor, log_softmax_f32, Transformer};

/// Log-probs, entropies and the response mask of a batch, all `[B, R]` f32 where `R` is the
/// longest response. Entries past a row's response length are 0 and `mask` is 0 there.
#[derive(Debug, Clone)]
pub struct LogProbBatch {
    /// `log p(response[b][r] | prompt[b], response[b][..r])` at temperature 1.
    pub logprobs: Tensor,
    /// Entropy of the full next-token distribution at each response position.
    pub entropy: Tensor,
    /// 1.0 on real response tokens, 0.0 on padding.
    pub mask: Tensor,
}

/// Log-probs of `(prompt, response)` pairs under the model's live weights, on the
/// differentiable path: gradients flow from `logprobs` and `entropy` into every weight.
///
/// # Errors
/// An empty prompt, an empty batch, or all responses empty.
pub fn response_logprobs(model: &Model, batch: &[(Vec<u32>, Vec<u32>)]) -> Result<LogProbBatch> {
    logprobs_with_kernels(model.transformer(), Kernels::Differentiable, batch)
}

/// The same as [`response_logprobs`] on a frozen snapshot (fused kernels, no gradients), e.g.
/// for reference-policy log-probs.
pub fn snapshot_response_logprobs(
    snap: &Snapshot,
    batch: &[(Vec<u32>, Vec<u32>)],
) -> Result<LogProbBatch> {
    logprobs_with_kernels(snap.transformer(), Kernels::Fused, batch)
}

/// [`response_logprobs`] on any network with explicit [`Kernels`].
///
/// Prompts are left-padded to a common end column `P`, responses right-padded to `R`, so the
/// logits predicting every response token are the contiguous columns `P-1 .. P+R-1`: the LM
/// head runs on those only. On the CPU with [`Kernels::Differentiable`], log-prob and entropy
/// come from one custom op that never materialises the `[B, R, vocab]` log-softmax.
pub fn logprobs_with_kernels(
    net: &Transformer,
    kernels: Kernels,
    batch: &[(Vec<u32>, Vec<u32>)],
) -> Result<LogProbBatch> {
    if batch.is_empty() {
        return Err(ModelError::InvalidInput("empty batch".into()));
    }
    if let Some(i) = batch.iter().position(|(p, _)| p.is_empty()) {
        return Err(ModelError::InvalidInput(format!("prompt {i} is empty")));
    }
    let vocab = net.config().vocab_size;
    if batch
        .iter()
        .any(|(p, r)| p.iter().chain(r).any(|&t| t as usize >= vocab))
    {
        return Err(ModelError::InvalidInput(format!(
            "token id outside the vocabulary of {vocab}"
        )));
    }
    let p_max = batch.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let r_max = batch.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    if r_max == 0 {
        return Err(ModelError::InvalidInput("all responses are empty".into()));
    }
    let (b, t) = (batch.len(), p_max + r_max);
    let mut ids = Vec::with_capacity(b * t);
    let mut positions = Vec::with_capacity(b * t);
    let mut real = Vec::with_capacity(b * t);
    let mut targets = Vec::with_capacity(b * r_max);
    let mut mask = Vec::with_capacity(b * r_max);
    for (p, r) in batch {
        let pad = p_max - p.len();
        ids.extend(std::iter::repeat_n(0u32, pad));
        ids.extend_from_slice(p);
        ids.extend_from_slice(r);
        ids.extend(std::iter::repeat_n(0u32, r_max - r.len()));
        let real_len = (p.len() + r.len()) as u32;
        positions.extend(std::iter::repeat_n(0u32, pad));
        positions.extend(0..real_len);
        // Right pads come after every real token, so they never influence real positions;
        // their positions repeat the last real one to stay inside the RoPE table.
        positions.extend(std::iter::repeat_n(
            real_len.saturating_sub(1),
            r_max - r.len(),
        ));
        real.extend(std::iter::repeat_n(false, pad));
        real.extend(std::iter::repeat_n(true, p.len() + r.len()));
        real.extend(std::iter::repeat_n(false, r_max - r.len()));
        targets.extend_from_slice(r);
        targets.extend(std::iter::repeat_n(0u32, r_max - r.len()));
        mask.extend(std::iter::repeat_n(1f32, r.len()));
        mask.extend(std::iter::repeat_n(0f32, r_max - r.len()));
    }
    let dev = net.device();
    let layout = BatchLayout::new(b, t, positions, real)?;
    let ids = ids_tensor(&ids, b, t, dev)?;
    let hidden = net.hidden(&ids, Some(&layout), None, kernels)?;
    let logits = net.logits(&hidden.narrow(1, p_max - 1, r_max)?)?;
    let mask = Tensor::from_vec(mask, (b, r_max), dev)?;
    let (token_lp, entropy) = if kernels == Kernels::Differentiable && dev.is_cpu() {
        let op = TokenLogProbEntropy {
            targets: Arc::new(targets),
            entropy: true,
        };
        let both = logits
            .reshape((b * r_max, vocab))?
            .contiguous()?
            .apply_op1(op)?;
        (
            both.narrow(1, 0, 1)?.reshape((b, r_max))?,
            both.narrow(1, 1, 1)?.reshape((b, r_max))?,
        )
    } else {
        let logp = log_softmax_f32(&logits)?;
        let targets = Tensor::from_vec(targets, (b, r_max, 1), dev)?;
        let token_lp = logp.gather(&targets, D::Minus1)?.squeeze(D::Minus1)?;
        let entropy = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?;
        (token_lp, entropy)
    };
    Ok(LogProbBatch {
        logprobs: (token_lp * &mask)?,
        entropy: (entropy * &mask)?,
        mask: mask.to_dtype(DType::F32)?,
    })
}
