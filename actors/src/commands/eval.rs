//! `azr eval`: score a model or checkpoint on a benchmark, offline, with the same solver and
//! grading code as the evaluator actor.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use azr_core::executor::Executor;
use std::path::Path;

use azr_core::data::cruxeval::{self, load_cruxeval};
use azr_core::data::math::{load_math, MathSet};
use azr_core::pretrain::{HeldoutSet, HeldoutTask};
use azr_core::tasks::{IoPair, Provenance, Task, TaskRegistry, TemplateSet};
use azr_core::types::TaskKind;
use tokio::sync::watch;

use crate::actors::evaluator::{self, Benchmark};
use crate::actors::faults::FaultPlan;
use crate::actors::Ctx;
use crate::backend::{self, SnapshotPolicy};
use crate::cli::EvalArgs;
use crate::compute::inference;
use crate::engine::Decoding;
use crate::pipeline::checkpoint;

/// Folder of the math benchmarks, relative to the project root.
pub const MATH_DIR: &str = "../shared/data/math";
/// File the tiny model's pretraining writes its held-out set to, inside the model directory.
pub const HELDOUT_FILE: &str = "heldout.jsonl";

/// Load the items of a benchmark by name (at most `limit`; 0 = all):
/// `cruxeval-o` / `cruxeval-i` (CRUXEval output / input prediction), a math set
/// (`math500`, `aime24`, `aime25`, `amc23`, `minerva`, `olympiadbench`, `gsm8k`), or
/// `heldout-{deduction,abduction,induction}` (the tiny model's held-out set, `heldout.jsonl`
/// next to the weights in `model_dir`), or `humaneval` (synthesis tasks; their gold outputs are
/// computed in the sandbox by [`eval`] with `humaneval::attach_gold`).
pub fn load_benchmark(name: &str, limit: usize, model_dir: &Path) -> Result<Vec<Task>> {
    let norm = name.replace('_', "-");
    let mut tasks: Vec<Task> = match norm.as_str() {
        "cruxeval-o" | "cruxeval-i" => {
            let items = load_cruxeval(cruxeval::DEFAULT_PATH)
                .with_context(|| format!("loading {}", cruxeval::DEFAULT_PATH))?;
            items
                .iter()
                .map(|i| {
                    if norm == "cruxeval-o" {
                        i.deduction_task()
                    } else {
                        i.abduction_task()
                    }
                })
                .collect()
        }
        "humaneval" => {
            let path = azr_core::data::humaneval::DEFAULT_PATH;
            azr_core::data::load_humaneval(path)
                .with_context(|| format!("loading {path}"))?
                .iter()
                .map(|i| i.task())
                .collect()
        }
        n if n.starts_with("heldout-") => {
            let kind: TaskKind = n["heldout-".len()..]
                .parse()
                .map_err(|e: azr_core::types::KindNameError| anyhow::anyhow!(e))?;
            let path = model_dir.join(HELDOUT_FILE);
            let set = HeldoutSet::load(&path)
                .with_context(|| format!("loading the held-out set {}", path.display()))?;
            let all: Vec<Task> = set
                .of_kind(kind)
                .enumerate()
                .map(|(i, t)| heldout_task(t, i))
                .collect();
            // The file is grouped by family: a limit takes an evenly spread subset, so a
            // short in-run evaluation covers every family instead of the first one or two.
            return Ok(spread_subset(all, limit));
        }
        n => match n.parse::<MathSet>() {
            Ok(set) => load_math(set, MATH_DIR)
                .with_context(|| format!("loading {name} from {MATH_DIR}"))?
                .iter()
                .map(|p| p.task())
                .collect(),
            Err(_) => bail!(
                "unknown benchmark `{name}` (expected cruxeval-o, cruxeval-i, humaneval, \
                 heldout-deduction, heldout-abduction, heldout-induction or a math set: math500, aime24, aime25, \
                 amc23, minerva, olympiadbench, gsm8k)"
            ),
        },
    };
    if limit > 0 {
        tasks.truncate(limit);
    }
    Ok(tasks)
}

/// At most `limit` items (0 = all) at evenly spaced positions, in their original order.
fn spread_subset(items: Vec<Task>, limit: usize) -> Vec<Task> {
    let n = items.len();
    if limit == 0 || limit >= n {
        return items;
    }
    let keep: std::collections::BTreeSet<usize> = (0..limit).map(|i| i * n / limit).collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, t)| t)
        .collect()
}

/// A held-out item of the tiny model's pretraining as a task.
fn heldout_task(t: &HeldoutTask, i: usize) -> Task {
    Task {
        kind: t.kind,
        program: t.code.clone(),
        pairs: t
            .pairs
            .iter()
            .map(|p| IoPair {
                input: p.input.clone(),
                output: p.output.clone(),
                value: None,
            })
            .collect(),
        visible: t.visible,
        message: t.message.clone(),
        problem: String::new(),
        answer: String::new(),
        provenance: Provenance::benchmark("heldout", format!("{}-{i}", t.kind)),
    }
}

/// `azr eval --benchmark NAME`.
pub async fn eval(args: EvalArgs) -> Result<()> {
    let cfg = super::load_config(args.config.as_deref())?;
    let limit = args.limit.unwrap_or(cfg.raw.evaluator.limit);
    let tasks = load_benchmark(&args.benchmark, limit, &cfg.raw.model.path)?;
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
    // HumanEval's gold outputs come from its reference solutions, run in the sandbox.
    let humaneval = args.benchmark.replace('_', "-") == "humaneval";
    let tasks = if humaneval {
        let ex = executor.clone();
        tokio::task::spawn_blocking(move || azr_core::data::humaneval::attach_gold(tasks, &ex))
            .await?
    } else {
        tasks
    };
    let templates = Arc::new(TemplateSet::resolve(&cfg.raw.tasks.templates)?);
    let registry = Arc::new(TaskRegistry::builtin(templates.clone(), &cfg.raw.tasks)?);
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
        if humaneval {
            // One sample per item at the evaluator's temperature: avg@k of "all tests pass".
            println!(
                "{}: pass@1 {:.4} ({} items x {} samples, all hidden tests passed)",
                s.benchmark, s.accuracy, s.items, s.samples
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/tiny-base");

    #[test]
    fn heldout_induction_tasks_carry_their_message() {
        let tasks = load_benchmark("heldout-induction", 0, Path::new(MODEL)).unwrap();
        assert!(!tasks.is_empty());
        for t in &tasks {
            assert!(!t.message.is_empty(), "no message: {t:?}");
            assert!(t.visible >= 2 && t.visible < t.pairs.len(), "{t:?}");
        }
    }

    #[test]
    fn heldout_limit_spreads_over_families() {
        let all = load_benchmark("heldout-deduction", 0, Path::new(MODEL)).unwrap();
        let some = load_benchmark("heldout-deduction", 30, Path::new(MODEL)).unwrap();
        assert_eq!(some.len(), 30);
        assert_eq!(some[0].program, all[0].program);
        // The set holds 9 families of 25; a spread subset of 30 reaches every family.
        let set = HeldoutSet::load(&Path::new(MODEL).join(HELDOUT_FILE)).unwrap();
        let families: std::collections::BTreeSet<String> = set
            .of_kind(TaskKind::Deduction)
            .enumerate()
            .filter(|(i, _)| (0..30).any(|k| k * all.len() / 30 == *i))
            .map(|(_, t)| format!("{:?}", t.family))
            .collect();
        assert_eq!(families.len(), 9, "{families:?}");
    }
}
