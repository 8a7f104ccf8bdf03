//! `azr eval`: score a model or checkpoint on a benchmark, offline, with the same solver and
//! grading code as the evaluator actor.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use azr_core::executor::Executor;
use azr_core::tasks::{Task, TaskRegistry, TemplateSet};
use tokio::sync::watch;

use crate::actors::evaluator::{self, Benchmark};
use crate::actors::faults::FaultPlan;
use crate::actors::Ctx;
use crate::backend::{self, SnapshotPolicy};
use crate::cli::EvalArgs;
use crate::compute::inference;
use crate::engine::Decoding;
use crate::pipeline::checkpoint;

/// Load the items of a benchmark by name (at most `limit`; 0 = all).
pub fn load_benchmark(name: &str, limit: usize) -> Result<Vec<Task>> {
    let _ = limit;
    bail!("unknown benchmark `{name}`")
}

/// `azr eval --benchmark NAME`.
pub async fn eval(args: EvalArgs) -> Result<()> {
    let cfg = super::load_config(args.config.as_deref())?;
    let limit = args.limit.unwrap_or(cfg.raw.evaluator.limit);
    let tasks = load_benchmark(&args.benchmark, limit)?;
    let ckpt = match &args.checkpoint {
        Some(dir) => Some(checkpoint::resolve(dir)?),
        None => None,
    };
    let exec_cfg = cfg.raw.executor.clone();
    let executor = Arc::new(
        tokio::task::spawn_blocking(move || Executor::start(exec_cfg))
            .await?
            .context("starting the executor")?,
    );
    let templates = Arc::new(TemplateSet::resolve(&cfg.raw.tasks.templates)?);
    let registry = Arc::new(TaskRegistry::builtin(templates.clone(), &cfg.raw.tasks));
    let model = backend::load_model(&cfg, ckpt.as_deref())?;
    let stop_ids = backend::stop_token_ids(&model, &templates.format.stop);
    let codec = backend::codec(&model);
    let policy = SnapshotPolicy::new(model.snapshot()?, stop_ids);
    drop(model);
    let (_weights_tx, weights_rx) = watch::channel(None);
    let (inference, join) = inference::spawn(policy, codec.clone(), weights_rx, 0, 16)?;
    let (learner_tx, _learner_rx) = flume::bounded(1);
    let ctx = Arc::new(Ctx {
        registry,
        executor,
        codec,
        inference,
        learner_tx,
        faults: FaultPlan::default(),
        timeout: std::time::Duration::from_secs(cfg.raw.run.request_timeout_s),
    });
    let ev = &cfg.raw.evaluator;
    let decoding = Decoding {
        temperature: ev.temperature,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: ev.max_new_tokens,
    };
    let bench = Benchmark {
        name: args.benchmark.clone(),
        tasks,
    };
    let scores = evaluator::evaluate(&ctx, &[bench], ev.samples, decoding, cfg.raw.run.seed)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    drop(ctx);
    let _ = tokio::task::spawn_blocking(move || join.join()).await;
    for s in scores {
        println!(
            "{}: accuracy {:.4} ({} items x {} samples; temperature {}, max_new_tokens {}, weights {})",
            s.benchmark,
            s.accuracy,
            s.items,
            s.samples,
            decoding.temperature,
            decoding.max_new_tokens,
            ckpt.as_ref()
                .map(|c| c.display().to_string())
                .unwrap_or_else(|| cfg.raw.model.path.display().to_string()),
        );
    }
    Ok(())
}
