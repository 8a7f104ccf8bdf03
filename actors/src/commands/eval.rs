//! `azr eval`: score a model or checkpoint on a benchmark, offline, with the same solver and
//! grading code as the evaluator actor.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use azr_core::executor::Executor;
use std::path::Path;

use azr_core::data::arc::{load_arc, ArcSet};
use azr_core::data::cruxeval::{self, load_cruxeval};
use azr_core::data::math::{load_math, MathSet};
use azr_core::eval::{arc, EvalSettings};
use azr_core::pretrain::{HeldoutSet, HeldoutTask};
use azr_core::tasks::{IoPair, Provenance, Task, TaskRegistry, TemplateSet};
use azr_core::types::TaskKind;

use crate::actors::evaluator::{self, Benchmark};
use crate::actors::faults::FaultPlan;
use crate::actors::Ctx;
use crate::backend;
use crate::cli::EvalArgs;
use crate::compute;
use crate::config::Config;
use crate::pipeline::{self, checkpoint};

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
                 heldout-deduction, heldout-abduction, heldout-induction, arc-easy, arc-challenge \
                 or a math set: math500, aime24, aime25, amc23, minerva, olympiadbench, gsm8k)"
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
    // branch `arc` (issue #17): ARC is scored by `azr_core::eval::arc` on a weight snapshot.
    if let Some(set) = ArcSet::from_name(&args.benchmark) {
        return eval_arc(set, &args, &cfg).await;
    }
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
    let (engine, join) = compute::spawn_engine(model.snapshot()?, 0, cfg.raw.engine.clone())?;
    drop(model);
    let ctx = Arc::new(Ctx {
        registry,
        executor,
        codec,
        engine: engine.clone(),
        sampling: pipeline::train_sampling(&cfg, stop_ids.clone()),
        rewards: cfg.raw.tasks.rewards.clone(),
        faults: FaultPlan::default(),
        seed: cfg.raw.run.seed,
    });
    let settings = evaluator::EvalSettings {
        seed: cfg.raw.run.seed,
        ..pipeline::eval_settings(&cfg, stop_ids)
    };
    let bench = Benchmark {
        name: args.benchmark.clone(),
        tasks,
    };
    let scores = evaluator::evaluate(&ctx, &[bench], &settings)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    drop(ctx);
    engine.shutdown();
    let _ = tokio::task::spawn_blocking(move || join.join()).await;
    let ev = &cfg.raw.evaluator;
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
            ev.temperature,
            ev.max_new_tokens,
            ckpt.as_ref()
                .map(|c| c.display().to_string())
                .unwrap_or_else(|| cfg.raw.model.path.display().to_string()),
        );
    }
    Ok(())
}

// ---- branch `arc` (issue #17): ARC-Easy / ARC-Challenge --------------------------------------

/// The decoding of ARC under `[evaluator]`: its temperature, samples (avg@k), longest answer
/// and item limit (`limit`; 0 = all), top-p 1, the run seed, 16 sequences per call.
pub fn arc_settings(cfg: &Config, limit: usize) -> EvalSettings {
    let ev = &cfg.raw.evaluator;
    EvalSettings {
        temperature: ev.temperature as f32,
        top_p: 1.0,
        samples: ev.samples,
        max_new_tokens: ev.max_new_tokens,
        limit,
        seed: cfg.raw.run.seed,
        batch_size: 16,
    }
}

/// The first `limit` items (0 = all) of an ARC set as tasks for the in-run evaluator:
/// `[evaluator.arc]`'s question-and-options body, graded by label
/// (`azr_core::eval::arc::task_verdict`).
pub fn arc_tasks(set: ArcSet, cfg: &Config, limit: usize) -> Result<Vec<Task>> {
    let ev = &cfg.raw.evaluator;
    let mut items = load_arc(set, &ev.arc_dir)
        .with_context(|| format!("loading {} from {}", set.name(), ev.arc_dir.display()))?;
    if limit > 0 {
        items.truncate(limit);
    }
    Ok(items.iter().map(|i| arc::task(i, &ev.arc)).collect())
}

/// `azr eval --benchmark arc-easy|arc-challenge`: prompt `[evaluator.arc]`, decoding
/// [`arc_settings`], one line with the accuracy and the decoding settings.
async fn eval_arc(set: ArcSet, args: &EvalArgs, cfg: &Config) -> Result<()> {
    let ev = &cfg.raw.evaluator;
    let settings = arc_settings(cfg, args.limit.unwrap_or(ev.limit));
    let items = load_arc(set, &ev.arc_dir)
        .with_context(|| format!("loading {} from {}", set.name(), ev.arc_dir.display()))?;
    let ckpt = match &args.checkpoint {
        Some(dir) => Some(checkpoint::resolve(dir)?),
        None => None,
    };
    let snap = backend::load_model(cfg, ckpt.as_deref())?.snapshot()?;
    let prompt = ev.arc.clone();
    let score = tokio::task::spawn_blocking(move || {
        arc::evaluate_items(&snap, &prompt, set.name(), &items, &settings)
    })
    .await??;
    println!(
        "{}: accuracy {:.4} ({} items x {} samples; {}; weights {})",
        score.benchmark,
        score.accuracy,
        score.items,
        score.samples,
        arc::decoding_summary(&settings),
        ckpt.as_ref()
            .map(|c| c.display().to_string())
            .unwrap_or_else(|| cfg.raw.model.path.display().to_string()),
    );
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

    // ---- branch `arc` (issue #17) ----

    /// `../shared/data/arc` next to the project root, or `$AZR_SHARED_DATA/arc`.
    fn arc_dir() -> std::path::PathBuf {
        match std::env::var_os("AZR_SHARED_DATA") {
            Some(d) => std::path::PathBuf::from(d).join("arc"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/arc"),
        }
    }

    #[test]
    fn arc_names_load_as_tasks_for_the_run_evaluator() {
        let text = format!(
            "[evaluator]\nbenchmarks = [\"arc-easy\", \"arc_challenge\"]\nlimit = 3\narc_dir = \"{}\"\n",
            arc_dir().display()
        );
        let cfg = Config::from_toml_str(&text, "t").unwrap();
        let benches = crate::commands::run::load_benchmarks(&cfg).unwrap();
        let names: Vec<&str> = benches.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["arc-easy", "arc_challenge"]);
        for b in &benches {
            assert_eq!(b.tasks.len(), 3);
            for t in &b.tasks {
                assert_eq!(t.kind, TaskKind::Math);
                assert!(t.problem.contains("\nA. "), "{t:?}");
                assert!(["A", "B", "C", "D", "E", "1", "2", "3", "4"].contains(&t.answer.as_str()));
            }
        }
        // The config with its `[evaluator.arc]` table survives the round trip through TOML
        // (it is written next to checkpoints).
        let back = Config::from_toml_str(&cfg.to_toml(), "round trip").unwrap();
        assert_eq!(back.raw, cfg.raw);
        let s = arc_settings(&cfg, 5);
        assert_eq!(
            (s.limit, s.samples, s.max_new_tokens, s.seed),
            (5, 1, 96, 42)
        );
        assert!(s.is_greedy());
    }

    #[test]
    fn one_shot_rlvr_configs_evaluate_both_arc_sets() {
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let pipeline = Config::load(&config_dir.join("one-shot-rlvr-pipeline.toml")).unwrap();
        let mut rlvr =
            crate::rlvr::config::RlvrConfig::load(&config_dir.join("one-shot-rlvr.toml")).unwrap();
        for list in [&pipeline.raw.evaluator.benchmarks, &rlvr.eval.benchmarks] {
            assert!(list.iter().any(|b| b == "arc-easy"), "{list:?}");
            assert!(list.iter().any(|b| b == "arc-challenge"), "{list:?}");
        }
        assert!(pipeline.raw.evaluator.arc.template.contains("\\boxed{}"));
        let text = toml::to_string(&rlvr).unwrap();
        let back = crate::rlvr::config::RlvrConfig::from_toml_str(&text, "round trip").unwrap();
        assert_eq!(back, rlvr);
        rlvr.eval.arc_dir = arc_dir();
        rlvr.eval.data_dir = arc_dir().join("../math");
        let sets = crate::rlvr::evaluator::load_sets(&rlvr).unwrap();
        let got: Vec<(&str, usize)> = sets
            .iter()
            .map(|s| {
                let n = s
                    .arc
                    .as_ref()
                    .map_or(s.problems.len(), |(_, items)| items.len());
                (s.name.as_str(), n)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("math500", 500),
                ("arc-easy", 2376),
                ("arc-challenge", 1172)
            ]
        );
        // ARC is greedy under the paper protocol, with the `[eval]` token budget.
        let arc_settings = &sets[1].settings;
        assert!(arc_settings.is_greedy());
        assert_eq!(arc_settings.max_new_tokens, 3072);
    }
}
