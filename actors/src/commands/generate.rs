//! `azr generate`: sample a continuation from a model directory.

use anyhow::{Context, Result};
use azr_core::model::{self, Model, SamplingParams};

use crate::cli::GenerateArgs;

/// `azr generate --model PATH --prompt TEXT`.
pub async fn generate(args: GenerateArgs) -> Result<()> {
    let text = tokio::task::spawn_blocking(move || -> Result<String> {
        let device = model::parse_device(&args.device)?;
        let m = Model::load(&args.model, &device, candle_core::DType::F32)
            .with_context(|| format!("loading {}", args.model.display()))?;
        let ids = m.tokenizer().encode(&args.prompt, true)?;
        let params = SamplingParams {
            temperature: args.temperature as f32,
            max_new_tokens: args.max_tokens,
            stop_token_ids: m
                .config()
                .eos_token_id
                .as_ref()
                .map(|t| t.to_vec())
                .unwrap_or_default(),
            seed: args.seed,
            ..SamplingParams::default()
        };
        let snap = m.snapshot()?;
        let g = model::generate(&snap, &[ids], &params)?;
        let tokens = g.into_iter().next().map(|g| g.tokens).unwrap_or_default();
        Ok(m.tokenizer().decode(&tokens, false)?)
    })
    .await??;
    println!("{text}");
    Ok(())
}
