//! [`PipelineBuilder`]: start a training run from a [`Config`] and user-supplied components.
//!
//! ```text
//!  PipelineBuilder::new(config)
//!     .task_type(|t| ...)                 extra task types (TaskType + Proposer), into the registry
//!     .template_sections("compact", toml) their template sections, merged into the set in use
//!     .replace_actor(|w| MyReward::new(w)) any actor, by name, as a Service speaking its messages
//!     .compute(|c| ...)                   trainer + weights + tokenizer (default: backend)
//!     .run().await                        -> RunOutcome
//! ```
//!
//! `azr run` is `PipelineBuilder::new(config).resume(..).stop(stop_signal()).progress(true)`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use azr_core::executor::Executor;
use azr_core::oneshot::history::AccuracyHistory;
use azr_core::pretrain::corpus::BASE_CONFIG_FILE;
use azr_core::pretrain::{CorpusConfig, Replay, ReplaySpec};
use azr_core::tasks::{
    SolverTargeting, TaskBuffers, TaskRegistry, TaskType, TasksConfig, TemplateError, TemplateSet,
};
use tokio::sync::watch;

use crate::actors::store::Source;
use crate::actors::{Ctx, EstimateJob, ProposalItem, ProposeJob, Scored, SolveJob, ToReward};
use crate::backend::{self, ModelTrainer};
use crate::cluster::head::{ClusterHead, HeadOptions};
use crate::commands::run::{load_benchmarks, rlvr_examples};
use crate::config::{self, Config, ConfigError};
use crate::engine::Trainer;
use crate::pipeline::{self, checkpoint, Engines, RunOutcome, Services};
use crate::service::{ActorFactory, ReplaceError, Service};

/// An error from user-supplied code (a compute factory).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a run could not be built or failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Template sections given to [`PipelineBuilder::template_sections`] do not merge.
    #[error("template sections for set `{set}`: {message}")]
    TemplateSections {
        /// The template set they were given for.
        set: String,
        /// What is wrong.
        message: String,
    },
    /// A task type could not be built (its template section or settings).
    #[error("task type: {0}")]
    TaskType(#[from] TemplateError),
    /// A replacement actor does not fit the pipeline (unknown name, other message type).
    #[error(transparent)]
    Replace(#[from] ReplaceError),
    /// The compute factory of [`PipelineBuilder::compute`] failed.
    #[error("compute: {0}")]
    Compute(BoxError),
    /// Starting or running the pipeline failed (executor, model, checkpoint, an actor).
    #[error(transparent)]
    Run(#[from] anyhow::Error),
}

/// `tasks.chain_unseen` must be the `[corpus] chain_unseen` of the base at `model_dir` when the
/// base keeps its pretraining config ([`CorpusConfig::of_base`]): novelty counts the chain shapes
/// the base was shown as the corpus's, and a mismatch would call shapes it saw novel (or the
/// reverse).
fn check_base_split(model_dir: &std::path::Path, chain_unseen: f64) -> anyhow::Result<()> {
    let Some(corpus) = CorpusConfig::of_base(model_dir)? else {
        return Ok(());
    };
    anyhow::ensure!(
        corpus.chain_unseen == chain_unseen,
        "config key `tasks.chain_unseen` is {chain_unseen}, but the base `{}` was pretrained \
         with `[corpus] chain_unseen = {}` ({}): set the same value",
        model_dir.display(),
        corpus.chain_unseen,
        model_dir.join(BASE_CONFIG_FILE).display()
    );
    Ok(())
}

/// What a task type factory gets: the template set of the run (with the sections added through
/// [`PipelineBuilder::template_sections`]) and the `[tasks]` config (`[tasks.kind.<name>]`
/// settings through [`TasksConfig::kind_settings`]).
pub struct TaskContext<'a> {
    /// The run's template set.
    pub templates: &'a Arc<TemplateSet>,
    /// `[tasks]`.
    pub tasks: &'a TasksConfig,
}

/// Builds one task type for a run.
pub type TaskTypeFactory =
    Box<dyn FnOnce(&TaskContext<'_>) -> Result<Box<dyn TaskType>, TemplateError> + Send>;

/// What a compute factory gets.
pub struct ComputeContext<'a> {
    /// The run's config.
    pub config: &'a Config,
    /// The checkpoint the run resumes from (weights in `model/`, optimizer state), if any.
    pub checkpoint: Option<&'a Path>,
    /// The run's template set (its `format.stop` strings end generations).
    pub templates: &'a TemplateSet,
}

type ComputeFactory<T> =
    Box<dyn FnOnce(&ComputeContext<'_>) -> Result<Engines<T>, BoxError> + Send>;

/// What a replacement actor is built from: the context every actor shares (task registry,
/// executor, rollout engine, tokenizer, sampling and reward settings) and the sending side of
/// every channel between the actors (see the diagram in [`crate::actors`]). A replacement keeps
/// the senders it pushes to, as the built-in actor does.
#[derive(Clone)]
pub struct Wiring {
    /// The shared context.
    pub ctx: Arc<Ctx>,
    /// Task store -> proposer.
    pub propose_jobs: flume::Sender<ProposeJob>,
    /// Task store -> solver.
    pub solve_jobs: flume::Sender<SolveJob>,
    /// Proposer -> executor.
    pub proposals: flume::Sender<ProposalItem>,
    /// Executor -> estimator.
    pub estimates: flume::Sender<EstimateJob>,
    /// Proposer, executor, estimator, solver -> reward.
    pub answers: flume::Sender<ToReward>,
    /// Reward (and task store) -> learner.
    pub rollouts: flume::Sender<Scored>,
    /// How long one request to an actor may take (`run.request_timeout_s`).
    pub request_timeout: Duration,
}

/// Builds the factory of one replacement actor once the channels exist.
pub(crate) type Replacement = Box<dyn FnOnce(&Wiring) -> ActorFactory + Send>;

/// Starts a training run (self-play or 1-shot RLVR, as `selfplay.mode` says) from a config and
/// user-supplied components; see the [module docs](self) and `examples/custom-task/`.
///
/// `T` is the trainer type: [`ModelTrainer`] (the built-in model and learner) unless
/// [`PipelineBuilder::compute`] supplies another.
pub struct PipelineBuilder<T: Trainer = ModelTrainer> {
    cfg: Config,
    task_types: Vec<TaskTypeFactory>,
    sections: Vec<(String, String)>,
    replacements: Vec<Replacement>,
    compute: ComputeFactory<T>,
    resume: Option<PathBuf>,
    stop: Option<watch::Receiver<bool>>,
    progress: bool,
    /// Head of a cluster: its options and whether the head runs an executor worker itself.
    cluster: Option<(HeadOptions, bool)>,
}

impl PipelineBuilder<ModelTrainer> {
    /// A run of `cfg` with the built-in task types, actors and compute.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            task_types: Vec::new(),
            sections: Vec::new(),
            replacements: Vec::new(),
            compute: Box::new(|c: &ComputeContext<'_>| {
                backend::engines(c.config, c.checkpoint, c.templates).map_err(BoxError::from)
            }),
            resume: None,
            stop: None,
            progress: false,
            cluster: None,
        }
    }
}

impl<T: Trainer> PipelineBuilder<T> {
    /// Add a task type, built when the run starts from the run's templates and `[tasks]`
    /// config. Its kind is then a valid `selfplay.task_kinds` entry (a proposable kind) and
    /// gets buffers, seeds, metric labels and batch slots like a built-in one; a type whose kind
    /// is built in replaces the built-in one.
    pub fn task_type<F>(mut self, factory: F) -> Self
    where
        F: FnOnce(&TaskContext<'_>) -> Result<Box<dyn TaskType>, TemplateError> + Send + 'static,
    {
        self.task_types.push(Box::new(factory));
        self
    }

    /// Template sections (TOML text of one or more `[<section>]` tables) to add to the template
    /// set named `set` (`compact`, `paper`, or the `name` of a template file) when the run uses
    /// that set; a section the set already has is an error. Task types read them with
    /// [`TemplateSet::section`].
    pub fn template_sections(mut self, set: &str, toml_text: &str) -> Self {
        self.sections.push((set.to_string(), toml_text.to_string()));
        self
    }

    /// Replace the built-in actor of the same name ([`Service::name`]: one of
    /// `azr_core::metrics::ACTORS`) with the service `build` makes from the run's [`Wiring`].
    /// The service must handle the built-in actor's message type (e.g.
    /// [`crate::actors::reward::RewardMsg`] for `reward`); anything else fails the run at start
    /// with [`BuildError::Replace`].
    pub fn replace_actor<S, F>(mut self, build: F) -> Self
    where
        S: Service,
        F: FnOnce(&Wiring) -> S + Send + 'static,
    {
        self.replacements.push(Box::new(move |w: &Wiring| {
            ActorFactory::of(Arc::new(build(w)))
        }));
        self
    }

    /// Use another trainer / policy: `build` makes the [`Engines`] (trainer, initial weights,
    /// stop tokens, tokenizer) of the run. It gets the checkpoint a resumed run starts from.
    pub fn compute<U, F>(self, build: F) -> PipelineBuilder<U>
    where
        U: Trainer,
        F: FnOnce(&ComputeContext<'_>) -> Result<Engines<U>, BoxError> + Send + 'static,
    {
        PipelineBuilder {
            cfg: self.cfg,
            task_types: self.task_types,
            sections: self.sections,
            replacements: self.replacements,
            compute: Box::new(build),
            resume: self.resume,
            stop: self.stop,
            progress: self.progress,
            cluster: self.cluster,
        }
    }

    /// Resume from this checkpoint or run directory (default: the latest checkpoint in
    /// `run.run_dir` when `run.auto_resume` is true).
    pub fn resume(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resume = Some(dir.into());
        self
    }

    /// Stop gracefully (finish the step, checkpoint) when `stop` turns true, e.g.
    /// [`crate::stop_signal`] (Ctrl-C / SIGTERM). Default: run until `run.max_steps`.
    pub fn stop(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Run as the head of a cluster (`azr run --cluster-listen`): `Some((options, local))`,
    /// where `local` says whether the head runs an executor worker itself (see
    /// [`crate::cluster`]); `None` (the default) runs on this machine alone.
    pub(crate) fn cluster(mut self, cluster: Option<(HeadOptions, bool)>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Show a progress bar on a terminal (default off).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// The task registry of the run: the built-in types over `templates`, then the user's.
    fn registry(
        templates: &Arc<TemplateSet>,
        tasks: &TasksConfig,
        extra: Vec<TaskTypeFactory>,
    ) -> Result<TaskRegistry, BuildError> {
        let mut registry = TaskRegistry::builtin(templates.clone(), tasks)?;
        let cx = TaskContext { templates, tasks };
        for factory in extra {
            let t = factory(&cx)?;
            let kind = t.kind();
            if registry.register(t).is_some() {
                tracing::info!(%kind, "task type replaces the built-in one");
            } else {
                tracing::info!(%kind, "task type registered");
            }
        }
        Ok(registry)
    }

    /// Build everything and train until `run.max_steps`, the stop signal or a fatal error.
    /// Must run inside a multi-threaded tokio runtime.
    pub async fn run(self) -> Result<RunOutcome, BuildError> {
        let PipelineBuilder {
            cfg,
            task_types,
            sections,
            replacements,
            compute,
            resume,
            stop,
            progress,
            cluster,
        } = self;
        if let Some(addr) = cfg.metrics_addr {
            crate::observe::install_metrics(addr)?;
        }
        let cfg = Arc::new(cfg);
        // Without a stop signal the sender lives as long as the run: never stops it.
        let (_never, never) = watch::channel(false);
        let stop = stop.unwrap_or(never);

        let checkpoint: Option<PathBuf> = match &resume {
            Some(dir) => Some(checkpoint::resolve(dir)?),
            None if cfg.raw.run.auto_resume => checkpoint::latest(cfg.run_dir())?,
            None => None,
        };
        let state = match &checkpoint {
            Some(c) => {
                let s = checkpoint::load_state(c)?;
                tracing::info!(checkpoint = %c.display(), step = s.step, version = s.version, "resuming");
                s
            }
            None => pipeline::fresh_state(cfg.raw.run.seed),
        };

        let mut templates = TemplateSet::resolve(&cfg.raw.tasks.templates).with_context(|| {
            format!(
                "config key `tasks.templates`: `{}`",
                cfg.raw.tasks.templates
            )
        })?;
        for (set, text) in &sections {
            if *set == templates.name {
                merge_sections(&mut templates, text).map_err(|message| {
                    BuildError::TemplateSections {
                        set: set.clone(),
                        message,
                    }
                })?;
            }
        }
        let templates = Arc::new(templates);
        let registry = Arc::new(Self::registry(&templates, &cfg.raw.tasks, task_types)?);
        azr_core::metrics::use_registry(&registry);

        let exec_cfg = cfg.raw.executor.clone();
        let executor = Arc::new(
            tokio::task::spawn_blocking(move || Executor::start(exec_cfg))
                .await
                .context("starting the executor")?
                .context("starting the executor (config section `[executor]`)")?,
        );
        azr_core::metrics::record_isolation(executor.isolation());
        crate::telemetry::queue("rollouts", 0, cfg.raw.run.learner_queue);

        let engines = compute(&ComputeContext {
            config: &cfg,
            checkpoint: checkpoint.as_deref(),
            templates: &templates,
        })
        .map_err(BuildError::Compute)?;

        let source = match cfg.raw.selfplay.mode {
            config::Mode::Azr => {
                // Every self-play kind gets a buffer with its seed tasks; a resumed checkpoint
                // made before a kind existed gets the missing buffers created and seeded.
                let mut buffers: TaskBuffers = if state.mode_state.is_null() {
                    TaskBuffers::default()
                } else {
                    serde_json::from_value(state.mode_state.clone())
                        .context("restoring the task buffers")?
                };
                // Novelty is judged against the base's own corpus (not checkpointed: a resumed
                // run takes it from its config again), so the config must name the base's split.
                check_base_split(&cfg.raw.model.path, cfg.raw.tasks.chain_unseen)?;
                buffers.set_chain_split(cfg.raw.tasks.chain_split());
                let (ex, r) = (executor.clone(), registry.clone());
                let kinds = cfg.raw.selfplay.task_kinds.clone();
                let bc = cfg.raw.tasks.buffer.clone();
                let buffers = tokio::task::spawn_blocking(move || {
                    buffers.ensure(&r, &kinds, &bc, &ex).map(|_| buffers)
                })
                .await
                .context("seeding the task buffers")?
                .context("creating and seeding the task buffers")?;
                let sp = &cfg.raw.selfplay;
                let spec = ReplaySpec {
                    per_kind: sp.replay_pool,
                    // A stream of its own, fixed by the run's seed (the pool is redrawn, not
                    // checkpointed, on resume).
                    seed: cfg.raw.run.seed ^ 0x7265_706c_6179,
                    induction_inputs: cfg.raw.tasks.induction.num_inputs,
                    induction_visible: cfg.raw.tasks.induction.num_visible,
                };
                let (ex, kinds, fraction) =
                    (executor.clone(), sp.task_kinds.clone(), sp.replay_fraction);
                let replay =
                    tokio::task::spawn_blocking(move || Replay::draw(&ex, &kinds, fraction, &spec))
                        .await
                        .context("drawing the replay pools")?;
                if fraction > 0.0 {
                    for &kind in &sp.task_kinds {
                        let tasks = replay.pool_len(kind);
                        tracing::info!(%kind, tasks, fraction, "replay pool drawn");
                    }
                }
                Source::SelfPlay {
                    buffers,
                    window: cfg.raw.tasks.buffer.newest_window,
                    targeting: SolverTargeting::of(&cfg.raw.tasks.buffer),
                    replay,
                }
            }
            config::Mode::Rlvr => {
                let history = if state.mode_state.is_null() {
                    AccuracyHistory::new()
                } else {
                    AccuracyHistory::from_json_str(&state.mode_state.to_string())
                        .context("restoring the accuracy history")?
                };
                Source::Rlvr {
                    examples: rlvr_examples(&cfg)?,
                    per_batch: cfg.raw.rlvr.batch as u64,
                    n: cfg.raw.rlvr.samples_per_prompt,
                    history,
                    history_path: cfg.run_dir().join(&cfg.raw.rlvr.history_file),
                }
            }
        };
        let benchmarks = Arc::new(load_benchmarks(&cfg)?);
        let cluster = match cluster {
            Some((opts, local_executor)) => Some(
                ClusterHead::start(
                    opts,
                    cfg.to_toml(),
                    local_executor.then(|| (registry.clone(), executor.clone())),
                )
                .await
                .context("starting the cluster head (--cluster-listen)")?,
            ),
            None => None,
        };

        let progress = (progress && std::io::stderr().is_terminal()).then(|| {
            let pb = indicatif::ProgressBar::new(cfg.raw.run.max_steps);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} step {pos}/{len} [{elapsed_precise}] {per_sec} {msg}",
            ) {
                pb.set_style(style);
            }
            pb.set_position(state.step);
            pb
        });

        let outcome = pipeline::run(
            cfg.clone(),
            engines,
            Services {
                registry,
                executor,
                benchmarks,
                replacements,
                cluster: cluster.clone(),
            },
            state,
            source,
            stop,
            progress.clone(),
        )
        .await;
        if let Some(head) = &cluster {
            match head.finish(cfg.run_dir()) {
                Ok(r) => tracing::info!(nodes = r.nodes.len(), "cluster report written"),
                Err(e) => tracing::warn!(error = %e, "cluster report not written"),
            }
        }
        let outcome = outcome.map_err(|e| match e.downcast::<ReplaceError>() {
            Ok(r) => BuildError::Replace(r),
            Err(e) => BuildError::Run(e),
        })?;
        if let Some(pb) = progress {
            pb.finish_and_clear();
        }
        tracing::info!(
            steps = outcome.steps,
            version = outcome.version,
            "training stopped"
        );
        Ok(outcome)
    }
}

/// Add the top-level tables of `text` to `set` as sections; a section the set has is an error.
fn merge_sections(set: &mut TemplateSet, text: &str) -> Result<(), String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    for (name, value) in table {
        let toml::Value::Table(section) = value else {
            return Err(format!("`{name}` is a value, not a [{name}] table"));
        };
        if set.has_section(&name) || ["name", "format", "wrapper"].contains(&name.as_str()) {
            return Err(format!("the set already has a [{name}] section"));
        }
        set.sections.insert(name, section);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_must_name_the_chain_split_its_base_was_pretrained_with() {
        let assets = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets"));
        // Both shipped bases held out the default quarter (their configs predate the key).
        for base in ["tiny-base", "chain-base"] {
            check_base_split(&assets.join(base), 0.25).unwrap();
            let e = check_base_split(&assets.join(base), 0.5)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("tasks.chain_unseen") && e.contains("0.25"),
                "{e}"
            );
        }
        // A directory without a pretraining config (a checkpoint) is not checked.
        let dir = tempfile::tempdir().unwrap();
        check_base_split(dir.path(), 0.75).unwrap();
        // A base that held out half: its value is the only one accepted.
        std::fs::write(
            dir.path().join(BASE_CONFIG_FILE),
            "seed = 0\n[corpus]\nchain = 0.5\nchain_unseen = 0.5\n",
        )
        .unwrap();
        check_base_split(dir.path(), 0.5).unwrap();
        assert!(check_base_split(dir.path(), 0.25).is_err());
        // A malformed corpus section is an error naming the file and the key.
        std::fs::write(dir.path().join(BASE_CONFIG_FILE), "[corpus]\nchian = 0.5\n").unwrap();
        let e = check_base_split(dir.path(), 0.25).unwrap_err().to_string();
        assert!(e.contains("chian") && e.contains(BASE_CONFIG_FILE), "{e}");
    }

    #[test]
    fn sections_merge_into_the_set_and_never_overwrite() {
        let mut set = TemplateSet::builtin("compact").unwrap();
        merge_sections(&mut set, "[mine]\nsolve = \"{x}\"\n").unwrap();
        assert!(set.has_section("mine"));
        let err = merge_sections(&mut set, "[deduction]\nsolve = \"x\"\n").unwrap_err();
        assert!(err.contains("[deduction]"), "{err}");
        let err = merge_sections(&mut set, "top = 1\n").unwrap_err();
        assert!(err.contains("`top`"), "{err}");
        assert!(merge_sections(&mut set, "[format]\nx = 1\n").is_err());
        assert!(merge_sections(&mut set, "[broken").is_err());
    }
}
