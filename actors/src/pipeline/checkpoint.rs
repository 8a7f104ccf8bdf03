//! Checkpoints: everything a killed run needs to continue where it stopped.
//!
//! Layout under the run directory:
//! ```text
//! checkpoints/step_000010/model/      weights in HF format + tokenizer (Trainer::save)
//! checkpoints/step_000010/optimizer.safetensors
//! checkpoints/step_000010/state.json  step, policy version, RNG, buffers, counters, restarts
//! checkpoints/latest                  name of the newest complete checkpoint
//! ```
//! A checkpoint is written into `step_XXXXXX.tmp` and renamed when complete, and `latest` is
//! replaced atomically afterwards, so a `kill -9` at any moment leaves the previous checkpoint
//! intact. The two newest checkpoints are kept, and with `run.keep_every = N` also those of steps
//! that are multiples of N.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use azr_core::types::PolicyVersion;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Counters that continue across a resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Sequences generated for training (all roles).
    pub sequences: u64,
    /// Response tokens generated for training.
    pub tokens: u64,
    /// Proposals sampled.
    pub proposals: u64,
    /// Proposals that were valid.
    pub valid_proposals: u64,
    /// Solver answers graded.
    pub answers: u64,
    /// Solver answers that were correct.
    pub correct_answers: u64,
}

/// The driver's state, checkpointed as `state.json`. The task buffers are an opaque JSON value
/// owned by the mode (self-play buffers or RLVR accuracy history).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Next step to run (= steps completed).
    pub step: u64,
    /// Policy version of the weights in the checkpoint.
    pub version: PolicyVersion,
    /// The driver's random stream (reference draws, sampling seeds).
    pub rng: ChaCha8Rng,
    /// Mode-specific state (buffers, accuracy history).
    pub mode_state: serde_json::Value,
    /// Counters that continue across resumes.
    pub counters: Counters,
    /// Worker restarts over the whole run.
    pub restarts: BTreeMap<String, u64>,
}

/// Directory holding the checkpoints of a run.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    let dir = checkpoints_dir(run_dir);
    let pointer = dir.join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name =
        fs::read_to_string(&pointer).with_context(|| format!("reading {}", pointer.display()))?;
    let path = dir.join(name.trim());
    if !path.join("state.json").exists() {
        anyhow::bail!(
            "{} names {} which has no state.json",
            pointer.display(),
            path.display()
        );
    }
    Ok(Some(path))
}

/// Resolve `--resume DIR`: a checkpoint directory itself, or a run directory with checkpoints.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if dir.join("state.json").exists() {
        return Ok(dir.to_path_buf());
    }
    latest(dir)?.with_context(|| format!("no checkpoint found in {}", dir.display()))
}

/// Load `state.json` of a checkpoint.
pub fn load_state(ckpt: &Path) -> Result<RunState> {
    let p = ckpt.join("state.json");
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// A checkpoint being written: call [`Pending::model_dir`] for the trainer, then
/// [`Pending::commit`].
pub struct Pending {
    run_dir: PathBuf,
    name: String,
    tmp: PathBuf,
}

/// Start writing the checkpoint of `step` (creates `step_XXXXXX.tmp`).
pub fn begin(run_dir: &Path, step: u64) -> Result<Pending> {
    let name = format!("step_{step:06}");
    let tmp = checkpoints_dir(run_dir).join(format!("{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(Pending {
        run_dir: run_dir.to_path_buf(),
        name,
        tmp,
    })
}

impl Pending {
    /// Where the trainer writes weights and optimizer state.
    pub fn dir(&self) -> &Path {
        &self.tmp
    }

    /// Write `state.json`, publish the checkpoint and prune old ones (all but the two newest and,
    /// when `keep_every > 0`, those of steps that are multiples of it). Returns its path.
    pub fn commit(self, state: &RunState, keep_every: u64) -> Result<PathBuf> {
        let json = serde_json::to_vec(state).context("serializing run state")?;
        let state_path = self.tmp.join("state.json");
        fs::write(&state_path, json)
            .with_context(|| format!("writing {}", state_path.display()))?;
        let dir = checkpoints_dir(&self.run_dir);
        let final_path = dir.join(&self.name);
        if final_path.exists() {
            fs::remove_dir_all(&final_path)?;
        }
        fs::rename(&self.tmp, &final_path)?;
        let pointer_tmp = dir.join("latest.tmp");
        fs::write(&pointer_tmp, &self.name)?;
        fs::rename(&pointer_tmp, dir.join("latest"))?;
        prune(&dir, step_of(&self.name), 2, keep_every)?;
        Ok(final_path)
    }
}

/// The step of a `step_XXXXXX` name (`None` for any other name, which orders first).
fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step_")?.parse().ok()
}

/// Keep the `keep` newest `step_*` checkpoints and remove stale `.tmp` ones: those of steps up to
/// `committed`, the checkpoint just published. A `.tmp` of a later step is a checkpoint the
/// trainer may be writing right now (it is begun when its batch is sent, which can be before the
/// previous step's report commits), so it is left alone. Checkpoints of steps that are multiples
/// of `keep_every` (when it is > 0) are never removed.
fn prune(dir: &Path, committed: Option<u64>, keep: usize, keep_every: u64) -> Result<()> {
    let mut done = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("step_") {
            continue;
        }
        if let Some(step_name) = name.strip_suffix(".tmp") {
            if step_of(step_name) <= committed {
                fs::remove_dir_all(entry.path())?;
            }
        } else {
            done.push(name);
        }
    }
    done.sort_by_key(|n| step_of(n));
    let n = done.len().saturating_sub(keep);
    let milestone =
        |name: &str| keep_every > 0 && step_of(name).is_some_and(|s| s % keep_every == 0);
    for name in done[..n].iter().filter(|n| !milestone(n)) {
        fs::remove_dir_all(dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn state(step: u64) -> RunState {
        RunState {
            step,
            version: step,
            rng: ChaCha8Rng::seed_from_u64(7),
            mode_state: serde_json::json!({"k": step}),
            counters: Counters {
                sequences: 3 * step,
                ..Counters::default()
            },
            restarts: BTreeMap::from([("solver".to_string(), 1)]),
        }
    }

    /// The entries of a run's checkpoint directory, sorted.
    fn listed(run: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(checkpoints_dir(run))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_latest_resume_and_prune() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        assert!(latest(run).unwrap().is_none());
        for step in [2, 4, 6] {
            let p = begin(run, step).unwrap();
            fs::write(p.dir().join("optimizer.safetensors"), b"x").unwrap();
            p.commit(&state(step), 0).unwrap();
        }
        let l = latest(run).unwrap().unwrap();
        assert!(l.ends_with("step_000006"));
        let s = load_state(&l).unwrap();
        assert_eq!((s.step, s.version, s.counters.sequences), (6, 6, 18));
        assert_eq!(s.restarts["solver"], 1);
        assert_eq!(resolve(run).unwrap(), l);
        assert_eq!(resolve(&l).unwrap(), l);
        let names = listed(run);
        assert_eq!(names, ["latest", "step_000004", "step_000006"]);
    }

    #[test]
    fn keep_every_retains_milestones_besides_the_two_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        for step in (10..=70).step_by(10) {
            begin(run, step).unwrap().commit(&state(step), 30).unwrap();
        }
        let names = listed(run);
        assert_eq!(
            names,
            ["latest", "step_000030", "step_000060", "step_000070"]
        );
    }

    #[test]
    fn commit_keeps_a_later_checkpoint_still_being_written() {
        // The trainer writes step 4 while step 2's report commits: pruning must not delete it.
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let stale = begin(run, 1).unwrap();
        let two = begin(run, 2).unwrap();
        let four = begin(run, 4).unwrap();
        fs::write(four.dir().join("model.safetensors"), b"x").unwrap();
        two.commit(&state(2), 0).unwrap();
        assert!(!stale.dir().exists(), "an abandoned earlier .tmp is pruned");
        assert!(four.dir().join("model.safetensors").exists());
        four.commit(&state(4), 0).unwrap();
        assert!(latest(run).unwrap().unwrap().ends_with("step_000004"));
    }

    #[test]
    fn interrupted_checkpoint_leaves_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        begin(run, 1).unwrap().commit(&state(1), 0).unwrap();
        let _unfinished = begin(run, 2).unwrap();
        let l = latest(run).unwrap().unwrap();
        assert_eq!(load_state(&l).unwrap().step, 1);
    }
}
