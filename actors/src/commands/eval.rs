//! `azr eval`: score a model or checkpoint on a benchmark, offline, with the evaluator actor's
//! code ([`evaluator::evaluate`]: prompts and grading by the task types, generation through the
//! rollout engine). `azr rlvr --eval-only` scores every configured benchmark the same way.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use azr_core::executor::Executor;
use std::path::Path;

use azr_core::data::arc::{load_arc, ArcSet};
use azr_core::data::cruxeval::{self, load_cruxeval};
use azr_core::data::math::{load_math, MathSet};
use azr_core::eval::{arc, EvalSettings, SIX_BENCHMARKS};
use azr_core::oneshot::dataset::load_jsonl;
use azr_core::pretrain::{HeldoutSet, HeldoutTask};
use azr_core::tasks::{Provenance, Task, TaskRegistry, TemplateSet};
use azr_core::types::TaskKind;

use crate::actors::evaluator::{self, Benchmark, Score};
use crate::actors::faults::FaultPlan;
use crate::actors::Ctx;
use crate::backend;
use crate::cli::EvalArgs;
use crate::compute;
use crate::config::Config;
use crate::pipeline::{self, checkpoint};

/// File the tiny model's pretraining writes its held-out set to, inside the model directory.
pub const HELDOUT_FILE: &str = "heldout.jsonl";
/// The validation split next to it (`valid-KIND`; `azr pretrain --eval-set-seed`): tune on
/// this, report on the held-out set.
pub const VALIDATION_FILE: &str = "validation.jsonl";
/// The chain evaluation set next to it (`chain-KIND`; `azr pretrain --eval-set-seed S --chains N`):
/// held-out chain programs, half of shapes pretraining never showed.
pub const CHAIN_FILE: &str = "chains.jsonl";
/// The tiny model's evaluation sets by benchmark prefix (`PREFIX-KIND`) and file beside the
/// weights.
const TINY_SETS: [(&str, &str); 3] = [
    ("heldout-", HELDOUT_FILE),
    ("valid-", VALIDATION_FILE),
    ("chain-", CHAIN_FILE),
];

/// Load the items of a benchmark by name (at most `limit`; 0 = all):
/// `cruxeval-o` / `cruxeval-i` (CRUXEval output / input prediction), a math set
/// (`math500`, `aime24`, `aime25`, `amc23`, `minerva`, `olympiadbench`, `gsm8k`, read from
/// `math_dir`), or
/// `heldout-{deduction,abduction,induction}` (the tiny model's held-out set, `heldout.jsonl`
/// next to the weights in `model_dir`; `valid-KIND` and `chain-KIND` read `validation.jsonl`
/// and `chains.jsonl` there), or `humaneval` (synthesis tasks; their gold outputs are
/// computed in the sandbox by [`score`] with `humaneval::attach_gold`).
pub fn load_benchmark(
    name: &str,
    limit: usize,
    model_dir: &Path,
    math_dir: &Path,
) -> Result<Vec<Task>> {
    let norm = name.replace('_', "-");
    if let Some((kind, file)) = TINY_SETS
        .iter()
        .find_map(|(prefix, file)| norm.strip_prefix(prefix).map(|kind| (kind, *file)))
    {
        let kind: TaskKind = kind
            .parse()
            .map_err(|e: azr_core::types::KindNameError| anyhow::anyhow!(e))?;
        let path = model_dir.join(file);
        let set = HeldoutSet::load(&path)
            .with_context(|| format!("loading the held-out set {}", path.display()))?;
        let all: Vec<Task> = set
            .of_kind(kind)
            .enumerate()
            .map(|(i, t)| heldout_task(t, i))
            .collect();
        // Task kinds are open names (a custom task type parses too), so a misspelt kind would
        // otherwise score an empty set and report 0 % without complaint.
        anyhow::ensure!(
            !all.is_empty(),
            "benchmark `{name}`: {} holds no `{kind}` tasks (it holds: {})",
            path.display(),
            kinds_in(&set)
        );
        // The file is grouped by family: a limit takes an evenly spread subset, so a short
        // in-run evaluation covers every family instead of the first one or two.
        return Ok(spread_subset(all, limit));
    }
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
        n => match n.parse::<MathSet>() {
            Ok(set) => load_math(set, math_dir)
                .with_context(|| format!("loading {name} from {}", math_dir.display()))?
                .iter()
                .map(|p| p.task())
                .collect(),
            Err(_) => bail!(
                "unknown benchmark `{name}` (expected cruxeval-o, cruxeval-i, humaneval, \
                 heldout-deduction, heldout-abduction, heldout-induction, valid-KIND, chain-KIND, arc-easy, arc-challenge \
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

/// The task kinds a held-out set holds, in file order, comma-separated.
fn kinds_in(set: &HeldoutSet) -> String {
    let mut kinds: Vec<String> = Vec::new();
    for t in &set.tasks {
        let k = t.kind.to_string();
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds.join(", ")
}

/// A held-out item of the tiny model's pretraining as a task, named as `azr eval` reports it
/// (provenance: benchmark `heldout`, id `<kind>-<index>`). The message is kept for induction
/// only, the one kind whose prompt shows it.
fn heldout_task(t: &HeldoutTask, i: usize) -> Task {
    Task {
        provenance: Provenance::benchmark("heldout", format!("{}-{i}", t.kind)),
        ..t.to_task(i)
    }
}

/// The benchmark `name` as the evaluator scores it, at most `limit` items (0 = all): the ARC
/// sets with the `[evaluator.arc]` prompt, a `.jsonl` path as math problems in the 1-shot RLVR
/// row layout (named by its file stem), any other name by [`load_benchmark`]; with
/// `evaluator.paper_protocol`, AIME24, AIME25 and AMC23 are decoded avg@8 at temperature 0.6.
pub fn benchmark(cfg: &Config, name: &str, limit: usize) -> Result<Benchmark> {
    let ev = &cfg.raw.evaluator;
    if let Some(set) = ArcSet::from_name(name) {
        ev.arc
            .validate()
            .map_err(|e| anyhow::anyhow!("config key `evaluator.arc`: {e}"))?;
        return Ok(Benchmark {
            arc: Some(ev.arc.clone()),
            ..Benchmark::new(set.name(), arc_tasks(set, cfg, limit)?)
        });
    }
    if name.ends_with(".jsonl") {
        let path = Path::new(name);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        let mut tasks: Vec<Task> = load_jsonl(path)
            .with_context(|| format!("loading benchmark file {name}"))?
            .into_iter()
            .map(|r| Task::math(r.prompt, r.answer, Provenance::benchmark(&stem, &r.index)))
            .collect();
        if limit > 0 {
            tasks.truncate(limit);
        }
        return Ok(Benchmark::new(stem, tasks));
    }
    // The paper's protocol (`EvalSettings::paper`) changes only the sampled sets.
    let sampled = match name.parse::<MathSet>() {
        Ok(set) if ev.paper_protocol => {
            let paper = EvalSettings::paper(set);
            (!paper.is_greedy()).then_some((paper.samples, paper.temperature))
        }
        _ => None,
    };
    Ok(Benchmark {
        sampled,
        ..Benchmark::new(
            name,
            load_benchmark(name, limit, &cfg.raw.model.path, &ev.math_dir)?,
        )
    })
}

/// What an offline evaluation scored: the scores, the weights (a checkpoint or `model.path`)
/// and the evaluator's decoding.
#[derive(Debug, Clone)]
pub struct Scored {
    /// One score per benchmark, in order.
    pub scores: Vec<Score>,
    /// The weights scored.
    pub weights: String,
    /// Decoding (temperature, samples, budget, seed).
    pub settings: evaluator::EvalSettings,
}

impl Scored {
    /// The score line of `s`: `NAME: accuracy A (N items x K samples; temperature 0 (greedy),
    /// top_p 1, max_new_tokens M, seed S; weights W)`, followed by `; pass@K P` when K > 1.
    pub fn line(&self, s: &Score) -> String {
        let p = &self.settings.params;
        let decoding = arc::decoding_summary(&EvalSettings {
            temperature: s.temperature,
            top_p: p.top_p,
            samples: s.samples,
            max_new_tokens: p.max_new_tokens,
            limit: 0,
            seed: self.settings.seed,
            batch_size: 1,
        });
        let line = format!(
            "{}: accuracy {:.4} ({} items x {} samples; {decoding}; weights {})",
            s.benchmark, s.accuracy, s.items, s.samples, self.weights
        );
        if s.samples > 1 {
            format!("{line}; pass@{} {:.4}", s.samples, s.pass_at_k)
        } else {
            line
        }
    }

    /// The 1-shot RLVR paper's six-benchmark average, when all six were scored.
    pub fn six_average(&self) -> Option<f64> {
        let acc = |set: MathSet| {
            self.scores
                .iter()
                .find(|s| s.benchmark.parse::<MathSet>().ok() == Some(set))
                .map(|s| s.accuracy)
        };
        let six: Option<Vec<f64>> = SIX_BENCHMARKS.iter().map(|&set| acc(set)).collect();
        six.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// Score `benchmarks` offline on the weights of `checkpoint` (a checkpoint or run directory;
/// `None`: `model.path`) with the `[evaluator]` decoding, through the same evaluator code and
/// rollout engine as the in-run evaluator.
pub async fn score(
    cfg: &Config,
    checkpoint: Option<&Path>,
    mut benchmarks: Vec<Benchmark>,
) -> Result<Scored> {
    let ckpt = match checkpoint {
        Some(dir) => Some(checkpoint::resolve(dir)?),
        None => None,
    };
    let version = match &ckpt {
        Some(c) => checkpoint::load_state(c)?.version,
        None => 0,
    };
    let exec_cfg = cfg.raw.executor.clone();
    let executor = Arc::new(
        tokio::task::spawn_blocking(move || Executor::start(exec_cfg))
            .await?
            .context("starting the executor")?,
    );
    // HumanEval's gold outputs come from its reference solutions, run in the sandbox.
    for b in &mut benchmarks {
        if b.name.replace('_', "-") == "humaneval" {
            let (ex, tasks) = (executor.clone(), std::mem::take(&mut b.tasks));
            b.tasks = tokio::task::spawn_blocking(move || {
                azr_core::data::humaneval::attach_gold(tasks, &ex)
            })
            .await?;
        }
    }
    let templates = Arc::new(TemplateSet::resolve(&cfg.raw.tasks.templates)?);
    let registry = Arc::new(TaskRegistry::builtin(templates.clone(), &cfg.raw.tasks)?);
    let model = backend::load_model(cfg, ckpt.as_deref())?;
    let stop_ids = backend::stop_token_ids(&model, &templates.format.stop);
    let codec = backend::codec(&model);
    let (engine, join) = compute::spawn_engine(model.snapshot()?, version, cfg.raw.engine.clone())?;
    drop(model);
    let ctx = Arc::new(Ctx {
        registry,
        executor,
        codec,
        engine: engine.clone(),
        sampling: pipeline::train_sampling(cfg, stop_ids.clone()),
        rewards: cfg.raw.tasks.rewards.clone(),
        faults: FaultPlan::default(),
        seed: cfg.raw.run.seed,
        train_estimates: false,
        greedy_probe: false,
        staleness: cfg.raw.run.staleness,
        rollout: None,
    });
    let settings = evaluator::EvalSettings {
        seed: cfg.raw.run.seed,
        ..pipeline::eval_settings(cfg, stop_ids)
    };
    let scores = evaluator::evaluate(&ctx, &engine, &benchmarks, &settings).await;
    if let Ok(scores) = &scores {
        for s in scores {
            crate::telemetry::eval(&s.benchmark, s.accuracy, s.policy_version);
        }
    }
    drop(ctx);
    engine.shutdown();
    let _ = tokio::task::spawn_blocking(move || join.join()).await;
    Ok(Scored {
        scores: scores.map_err(|e| anyhow::anyhow!(e))?,
        weights: ckpt
            .as_ref()
            .map(|c| c.display().to_string())
            .unwrap_or_else(|| cfg.raw.model.path.display().to_string()),
        settings,
    })
}

/// `azr eval --benchmark NAME`.
pub async fn eval(args: EvalArgs) -> Result<()> {
    let cfg = super::load_config(args.config.as_deref())?;
    let limit = args.limit.unwrap_or(cfg.raw.evaluator.limit);
    let bench = benchmark(&cfg, &args.benchmark, limit)?;
    let humaneval = bench.name.replace('_', "-") == "humaneval";
    let ids: Vec<Option<String>> = bench
        .tasks
        .iter()
        .map(|t| t.provenance.id.clone())
        .collect();
    let scored = score(&cfg, args.checkpoint.as_deref(), vec![bench]).await?;
    if let Some(path) = &args.items {
        write_items(path, &scored.scores, &ids)
            .with_context(|| format!("writing the per-item results {}", path.display()))?;
    }
    for s in &scored.scores {
        if args.json {
            println!("{}", serde_json::to_string(s)?);
            continue;
        }
        if humaneval {
            // avg@k of "all hidden tests pass".
            println!(
                "{}: pass@1 {:.4} ({} items x {} samples, all hidden tests passed)",
                s.benchmark, s.accuracy, s.items, s.samples
            );
        }
        println!("{}", scored.line(s));
    }
    Ok(())
}

/// One JSON line per scored item: benchmark, index, id (when the item has one), correct
/// samples and samples.
fn write_items(path: &Path, scores: &[Score], ids: &[Option<String>]) -> Result<()> {
    let mut out = String::new();
    for s in scores {
        for (index, correct) in s.item_correct.iter().enumerate() {
            let row = serde_json::json!({
                "benchmark": s.benchmark,
                "index": index,
                "id": ids.get(index).cloned().flatten(),
                "correct": correct,
                "samples": s.samples,
            });
            out.push_str(&row.to_string());
            out.push('\n');
        }
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// The first `limit` items (0 = all) of an ARC set as tasks whose problem is the whole
/// `[evaluator.arc]` prompt, graded by label (`azr_core::eval::arc::task_verdict`).
pub fn arc_tasks(set: ArcSet, cfg: &Config, limit: usize) -> Result<Vec<Task>> {
    let ev = &cfg.raw.evaluator;
    let mut items = load_arc(set, &ev.arc_dir)
        .with_context(|| format!("loading {} from {}", set.name(), ev.arc_dir.display()))?;
    if limit > 0 {
        items.truncate(limit);
    }
    Ok(items
        .iter()
        .map(|i| Task {
            problem: ev.arc.render(i),
            ..arc::task(i, &ev.arc)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/tiny-base");

    #[test]
    fn heldout_induction_tasks_carry_their_message() {
        let tasks =
            load_benchmark("heldout-induction", 0, Path::new(MODEL), Path::new("")).unwrap();
        assert!(!tasks.is_empty());
        for t in &tasks {
            assert!(!t.message.is_empty(), "no message: {t:?}");
            assert!(t.visible >= 2 && t.visible < t.pairs.len(), "{t:?}");
        }
    }

    #[test]
    fn the_validation_split_loads_and_shares_no_task_with_the_heldout_set() {
        for kind in ["deduction", "abduction", "induction"] {
            let key = |t: &Task| (t.program.clone(), format!("{:?}", t.pairs));
            let load = |prefix: &str| {
                load_benchmark(
                    &format!("{prefix}-{kind}"),
                    0,
                    Path::new(MODEL),
                    Path::new(""),
                )
                .unwrap()
            };
            let held: std::collections::HashSet<_> = load("heldout").iter().map(key).collect();
            let valid = load("valid");
            assert!(
                valid.len() >= 200,
                "{kind}: {} validation tasks",
                valid.len()
            );
            assert!(
                valid.iter().all(|t| !held.contains(&key(t))),
                "{kind}: overlap"
            );
        }
    }

    #[test]
    fn the_chain_set_loads_by_kind() {
        let load = |name: &str| load_benchmark(name, 0, Path::new(MODEL), Path::new(""));
        for kind in ["deduction", "abduction", "induction"] {
            let tasks = load(&format!("chain-{kind}")).unwrap();
            assert_eq!(tasks.len(), 400, "{kind}");
            assert!(tasks.iter().all(|t| t.kind.as_str() == kind));
            assert!(tasks.iter().all(|t| t.program.contains(" y = ")));
        }
    }

    #[test]
    fn a_kind_the_set_lacks_is_an_error_naming_the_kinds_it_holds() {
        let err = load_benchmark("heldout-dedcution", 0, Path::new(MODEL), Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("heldout-dedcution"), "{err}");
        assert!(err.contains("no `dedcution` tasks"), "{err}");
        assert!(err.contains("deduction, abduction, induction"), "{err}");
    }

    #[test]
    fn heldout_limit_spreads_over_families() {
        let all = load_benchmark("heldout-deduction", 0, Path::new(MODEL), Path::new("")).unwrap();
        let some =
            load_benchmark("heldout-deduction", 30, Path::new(MODEL), Path::new("")).unwrap();
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
        assert_eq!(names, ["arc-easy", "arc-challenge"]);
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
        // The whole `[evaluator.arc]` prompt is the task's problem; graded by label.
        for b in &benches {
            assert_eq!(b.arc.as_ref(), Some(&cfg.raw.evaluator.arc));
            assert!(
                b.tasks[0].problem.starts_with("Question: "),
                "{:?}",
                b.tasks[0]
            );
            assert!(
                b.tasks[0].problem.ends_with("\nAnswer:"),
                "{:?}",
                b.tasks[0]
            );
        }
    }

    #[test]
    fn one_shot_rlvr_config_evaluates_math_and_both_arc_sets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/one-shot-rlvr.toml");
        let args = crate::commands::rlvr::RlvrArgs {
            config: path,
            examples: None,
            dataset: None,
            max_steps: None,
            run_dir: None,
            eval_only: true,
            checkpoint: None,
            limit: None,
            set: vec![
                format!("evaluator.arc_dir=\"{}\"", arc_dir().display()),
                format!(
                    "evaluator.math_dir=\"{}\"",
                    arc_dir().join("../math").display()
                ),
            ],
        };
        let cfg = crate::commands::rlvr::resolve_config(&args).unwrap();
        let ev = &cfg.raw.evaluator;
        assert!(ev.paper_protocol && ev.at_start);
        assert!(ev.arc.template.contains("\\boxed{}"));
        type Row = (String, usize, Option<(usize, f32)>, bool);
        let got: Vec<Row> = ev
            .benchmarks
            .iter()
            .map(|n| benchmark(&cfg, n, 0).unwrap())
            .map(|b| (b.name, b.tasks.len(), b.sampled, b.arc.is_some()))
            .collect();
        let expected: Vec<Row> = vec![
            ("math500".into(), 500, None, false),
            ("aime24".into(), 30, Some((8, 0.6)), false),
            ("aime25".into(), 30, Some((8, 0.6)), false),
            ("amc23".into(), 40, Some((8, 0.6)), false),
            ("minerva".into(), 272, None, false),
            ("olympiadbench".into(), 675, None, false),
            ("arc-easy".into(), 2376, None, true),
            ("arc-challenge".into(), 1172, None, true),
        ];
        assert_eq!(got, expected);
    }
}
