//! The engine thread: command intake, weight swaps, admission into slots, batched decode.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::{EngineConfig, WeightSync};
use super::error::EngineError;
use super::handle::Shared;
use super::request::{GenRequest, Reply, SampleOut};
use super::slots::Slots;
use super::stats::EngineStats;
use crate::model::layout::pad_left;
use crate::model::run_shards;
use crate::model::sampling::{rows_f32, sample_row, StopReason};
use crate::model::{Kernels, KvCache, ModelError, Snapshot};
use crate::types::PolicyVersion;

/// Logits per decode step (rows × vocabulary) from which the rows are sampled in parallel: about
/// a quarter of a millisecond of single-thread sampling work, well above a dispatch to the pool.
const PARALLEL_SAMPLING_MIN: usize = 1 << 18;

/// How long an idle engine sleeps between checks of the closed flag.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// A message to the engine thread.
pub(crate) enum Cmd {
    /// A new request.
    Submit(Submitted),
    /// New weights.
    Publish(PolicyVersion, Snapshot),
    /// Park between iterations until [`Cmd::Resume`]; the sender is told once parked.
    Pause(flume::Sender<()>),
    /// Leave a pause.
    Resume,
    /// Stop (the `closed` flag is the authority; this only wakes the thread).
    Shutdown,
}

/// A request as it travels to the engine.
pub(crate) struct Submitted {
    /// Arrival number (ties of priority are served in this order).
    pub id: u64,
    /// The request.
    pub req: GenRequest,
    /// Where its answer goes.
    pub reply: flume::Sender<Reply>,
}

/// A prompt's prefill, kept while some of its samples still wait for a slot.
struct Prefix {
    /// One row: the prompt's keys and values.
    cache: KvCache,
    /// Logits after the last prompt token.
    logits: Vec<f32>,
    /// Version that computed it.
    version: PolicyVersion,
}

/// A request inside the engine.
struct Request {
    req: GenRequest,
    reply: flume::Sender<Reply>,
    outs: Vec<Option<SampleOut>>,
    /// Samples not finished yet.
    unfinished: usize,
    /// Samples `0..next_sample` have left the waiting queue.
    next_sample: usize,
    prefix: Option<Prefix>,
}

/// One running sample (one slot).
struct Seq {
    req: u64,
    sample: usize,
    rng: ChaCha8Rng,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    first_version: PolicyVersion,
    last_version: PolicyVersion,
}

impl Seq {
    /// Appends a sampled token; returns why the sample ends, if it does.
    fn push(&mut self, tok: u32, lp: f32, req: &GenRequest, max_ctx: usize) -> Option<StopReason> {
        self.tokens.push(tok);
        self.logprobs.push(lp);
        if req.params.stop_token_ids.contains(&tok) {
            Some(StopReason::StopToken(tok))
        } else if self.tokens.len() >= req.params.max_new_tokens
            || req.prompt.len() + self.tokens.len() >= max_ctx
        {
            Some(StopReason::Length)
        } else {
            None
        }
    }

    fn finish(self, stop: StopReason) -> SampleOut {
        SampleOut {
            tokens: self.tokens,
            logprobs: self.logprobs,
            stop,
            first_version: self.first_version,
            last_version: self.last_version,
        }
    }
}

/// Everything the engine thread owns.
pub(crate) struct Worker {
    snap: Snapshot,
    version: PolicyVersion,
    cfg: EngineConfig,
    rx: flume::Receiver<Cmd>,
    shared: Arc<Shared>,
    pending: Option<(PolicyVersion, Snapshot)>,
    requests: HashMap<u64, Request>,
    /// Requests with samples not yet admitted, in arrival order.
    waiting: Vec<u64>,
    /// Running samples; row `r` of `slots` belongs to `active[r]`.
    active: Vec<Seq>,
    slots: Slots,
    stats: EngineStats,
    max_ctx: usize,
    /// Parked by [`Cmd::Pause`]: no admission, no decoding, commands still taken.
    paused: bool,
}

/// Marks the engine closed and fails queued requests however the thread ends (panics too).
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.close_and_drain();
    }
}

impl Worker {
    /// `max_ctx` is the longest sequence (prompt + generated) a slot holds.
    pub(crate) fn new(
        snap: Snapshot,
        version: PolicyVersion,
        mut cfg: EngineConfig,
        rx: flume::Receiver<Cmd>,
        shared: Arc<Shared>,
        max_ctx: usize,
    ) -> Result<Self, ModelError> {
        cfg.max_slots = cfg.max_slots.max(1);
        let stats = shared.stats().clone();
        // Half a context of headroom: the columns in use move left only every so often.
        let slots = Slots::new(&snap, cfg.max_slots, max_ctx + max_ctx / 2 + 1)?;
        Ok(Self {
            slots,
            max_ctx,
            snap,
            version,
            cfg,
            rx,
            shared,
            pending: None,
            requests: HashMap::new(),
            waiting: Vec::new(),
            active: Vec::new(),
            stats,
            paused: false,
        })
    }

    /// The thread's body.
    pub(crate) fn run(mut self) {
        let _guard = ExitGuard(Arc::clone(&self.shared));
        let mut orphaned = false;
        loop {
            if self.paused {
                let t = Instant::now();
                let got = self.rx.recv();
                self.stats.paused_secs += t.elapsed().as_secs_f64();
                match got {
                    Ok(cmd) => self.handle(cmd),
                    // Nobody is left to resume: finish what is outstanding.
                    Err(flume::RecvError::Disconnected) => {
                        self.paused = false;
                        orphaned = true;
                    }
                }
                if self.shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                self.publish_stats();
                continue;
            }
            if self.active.is_empty() && self.waiting.is_empty() {
                if orphaned {
                    break;
                }
                let t = Instant::now();
                let got = self.rx.recv_timeout(IDLE_POLL);
                self.stats.idle_secs += t.elapsed().as_secs_f64();
                match got {
                    Ok(cmd) => self.handle(cmd),
                    Err(flume::RecvTimeoutError::Timeout) => {}
                    Err(flume::RecvTimeoutError::Disconnected) => orphaned = true,
                }
            }
            let busy = Instant::now();
            loop {
                match self.rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(flume::TryRecvError::Empty) => break,
                    Err(flume::TryRecvError::Disconnected) => {
                        orphaned = true;
                        break;
                    }
                }
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                break;
            }
            if self.paused {
                self.stats.busy_secs += busy.elapsed().as_secs_f64();
                self.publish_stats();
                continue;
            }
            self.drop_cancelled();
            self.maybe_swap();
            self.admit();
            self.decode_step();
            self.stats.busy_secs += busy.elapsed().as_secs_f64();
            self.publish_stats();
        }
        let all: HashSet<u64> = self.requests.keys().copied().collect();
        self.remove_requests(&all, Some(EngineError::Shutdown));
        self.publish_stats();
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submit(s) => {
                self.stats.requests_submitted += 1;
                let n = s.req.n;
                self.requests.insert(
                    s.id,
                    Request {
                        req: s.req,
                        reply: s.reply,
                        outs: vec![None; n],
                        unfinished: n,
                        next_sample: 0,
                        prefix: None,
                    },
                );
                self.waiting.push(s.id);
            }
            Cmd::Publish(version, snap) => {
                if let Err(why) = compatible(&self.snap, &snap) {
                    tracing::error!(version, %why, "rollout engine refuses published weights");
                } else {
                    self.pending = Some((version, snap));
                }
            }
            Cmd::Pause(parked) => {
                self.paused = true;
                self.stats.pauses += 1;
                // Published before the pauser is told, so it reads the parked state.
                self.publish_stats();
                // The pauser may have given up waiting; nothing to do then.
                let _ = parked.send(());
            }
            Cmd::Resume => self.paused = false,
            Cmd::Shutdown => self.shared.closed.store(true, Ordering::SeqCst),
        }
    }

    fn publish_stats(&mut self) {
        self.stats.active_slots = self.active.len();
        self.stats.paused = self.paused;
        self.stats.kv_moves = self.slots.moves();
        self.stats.version = self.version;
        self.stats.waiting = self.shared.waiting.load(Ordering::SeqCst);
        *self.shared.stats() = self.stats.clone();
    }

    /// Takes a pending weight version if the sync policy allows it now.
    fn maybe_swap(&mut self) {
        if self.pending.is_none() {
            return;
        }
        let boundary = self.cfg.weight_sync == WeightSync::SequenceBoundary;
        if boundary && !self.active.is_empty() {
            return;
        }
        if let Some((version, snap)) = self.pending.take() {
            self.snap = snap;
            self.version = version;
            self.shared.version.store(version, Ordering::SeqCst);
            self.stats.weight_updates += 1;
            if boundary {
                // Samples admitted later must not start from the old weights' prefill.
                for r in self.requests.values_mut() {
                    r.prefix = None;
                }
            }
        }
    }

    /// The waiting request to serve next: partially admitted ones first, then by priority,
    /// then by arrival.
    fn pick_waiting(&self) -> Option<usize> {
        self.waiting
            .iter()
            .enumerate()
            .max_by_key(|(_, id)| {
                let r = &self.requests[id];
                (r.next_sample > 0, r.req.priority, std::cmp::Reverse(**id))
            })
            .map(|(pos, _)| pos)
    }

    /// Moves waiting samples into free slots (prefilling their prompts once).
    fn admit(&mut self) {
        if self.pending.is_some() && self.cfg.weight_sync == WeightSync::SequenceBoundary {
            return;
        }
        let mut free = self.cfg.max_slots.saturating_sub(self.active.len());
        while free > 0 {
            let Some(pos) = self.pick_waiting() else {
                break;
            };
            let id = self.waiting[pos];
            let Some(mut r) = self.requests.remove(&id) else {
                self.waiting.remove(pos);
                continue;
            };
            if r.req.params.max_new_tokens == 0 {
                let left = r.req.n - r.next_sample;
                self.shared.waiting.fetch_sub(left, Ordering::SeqCst);
                for i in r.next_sample..r.req.n {
                    r.outs[i] = Some(SampleOut {
                        tokens: Vec::new(),
                        logprobs: Vec::new(),
                        stop: StopReason::Length,
                        first_version: self.version,
                        last_version: self.version,
                    });
                }
                r.next_sample = r.req.n;
                r.unfinished -= left;
                self.waiting.remove(pos);
                self.settle(id, r);
                continue;
            }
            if r.prefix.is_none() {
                let t = Instant::now();
                match prefill(&self.snap, &r.req.prompt) {
                    Ok((cache, logits)) => {
                        r.prefix = Some(Prefix {
                            cache,
                            logits,
                            version: self.version,
                        })
                    }
                    Err(e) => {
                        self.requests.insert(id, r);
                        self.remove_requests(&HashSet::from([id]), Some(e.into()));
                        continue;
                    }
                }
                self.stats.prefills += 1;
                self.stats.prefill_tokens += r.req.prompt.len() as u64;
                self.stats.prefill_secs += t.elapsed().as_secs_f64();
            }
            let Some(prefix) = r.prefix.as_ref() else {
                continue; // unreachable: set just above
            };
            let mut new_seqs = Vec::new();
            while free > 0 && r.next_sample < r.req.n {
                let i = r.next_sample;
                r.next_sample += 1;
                self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
                let mut seq = Seq {
                    req: id,
                    sample: i,
                    rng: ChaCha8Rng::seed_from_u64(r.req.params.seed.wrapping_add(i as u64)),
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    first_version: prefix.version,
                    last_version: prefix.version,
                };
                let (tok, lp) = sample_row(&prefix.logits, &r.req.params, &mut seq.rng);
                self.stats.tokens_generated += 1;
                match seq.push(tok, lp, &r.req, self.max_ctx) {
                    Some(stop) => {
                        r.outs[i] = Some(seq.finish(stop));
                        r.unfinished -= 1;
                        self.stats.samples_completed += 1;
                    }
                    None => {
                        new_seqs.push(seq);
                        free -= 1;
                    }
                }
            }
            if !new_seqs.is_empty() {
                if let Err(e) = self.slots.add(&prefix.cache, new_seqs.len()) {
                    self.requests.insert(id, r);
                    self.remove_requests(&HashSet::from([id]), Some(e.into()));
                    continue;
                }
                self.active.extend(new_seqs);
            }
            if r.next_sample == r.req.n {
                r.prefix = None;
                self.waiting.remove(pos);
            }
            self.settle(id, r);
        }
    }

    /// Puts a request back, or answers it if all its samples are done.
    fn settle(&mut self, id: u64, r: Request) {
        if r.unfinished > 0 {
            self.requests.insert(id, r);
            return;
        }
        let outs: Vec<SampleOut> = r.outs.into_iter().flatten().collect();
        self.stats.requests_completed += 1;
        // Counters first, so a requester that got its answer sees it counted.
        self.publish_stats();
        // The requester may have dropped its ticket meanwhile; nothing to do then.
        let _ = r.reply.send(Ok(outs));
    }

    /// One batched forward over every active row, then sampling and retirement.
    fn decode_step(&mut self) {
        if self.active.is_empty() {
            return;
        }
        let t = Instant::now();
        let ids: Vec<u32> = self
            .active
            .iter()
            .map(|s| s.tokens.last().copied().unwrap_or(0))
            .collect();
        let b = ids.len();
        let logits = self.slots.step_cache().and_then(|mut cache| {
            let ids = Tensor::from_slice(&ids, (b, 1), self.snap.device())?;
            let logits = self.snap.forward(&ids, None, Some(&mut cache))?;
            rows_f32(&logits)
        });
        let logits = match logits {
            Ok(l) => {
                self.slots.advance();
                l
            }
            Err(e) => {
                let ids: HashSet<u64> = self.active.iter().map(|s| s.req).collect();
                self.active.clear();
                self.slots.clear();
                self.remove_requests(&ids, Some(e.into()));
                return;
            }
        };
        self.stats.decode_steps += 1;
        self.stats.decode_rows += b as u64;
        // Every row draws from its own RNG, so the rows can be sampled on the compute threads
        // (idle between forwards) with the same tokens as one after another; worth it only
        // when a step holds enough logits (a large vocabulary, a wide batch).
        // Each row's request, looked up once for the draw and the bookkeeping below.
        let reqs: Vec<Option<&GenRequest>> = self
            .active
            .iter()
            .map(|s| self.requests.get(&s.req).map(|r| &r.req))
            .collect();
        let active = &self.active;
        let draw = |row: usize| {
            let mut rng = active[row].rng.clone();
            let pick = reqs[row].map(|q| sample_row(&logits[row], &q.params, &mut rng));
            (pick, rng)
        };
        let picks: Vec<(Option<(u32, f32)>, ChaCha8Rng)> =
            if b > 1 && b * logits[0].len() >= PARALLEL_SAMPLING_MIN {
                run_shards(b, draw)
            } else {
                (0..b).map(draw).collect()
            };
        let mut finished: Vec<(usize, StopReason)> = Vec::new();
        for ((row, seq), (pick, rng)) in self.active.iter_mut().enumerate().zip(picks) {
            let (Some((tok, lp)), Some(req)) = (pick, reqs[row]) else {
                continue; // unreachable: rows of removed requests are removed with them
            };
            seq.rng = rng;
            seq.last_version = self.version;
            self.stats.tokens_generated += 1;
            if let Some(stop) = seq.push(tok, lp, req, self.max_ctx) {
                finished.push((row, stop));
            }
        }
        // Highest rows first, so each swap-remove moves a row that stays.
        for (row, stop) in finished.into_iter().rev() {
            let seq = self.active.swap_remove(row);
            let slot = self.slots.swap_remove(row);
            let id = seq.req;
            if let Some(mut r) = self.requests.remove(&id) {
                let i = seq.sample;
                r.outs[i] = Some(seq.finish(stop));
                r.unfinished -= 1;
                self.stats.samples_completed += 1;
                self.settle(id, r);
            }
            if let Err(e) = slot {
                self.lose_slots(e);
                break;
            }
        }
        self.stats.decode_secs += t.elapsed().as_secs_f64();
    }

    /// The slot buffers can no longer be trusted: fail every running request.
    fn lose_slots(&mut self, e: ModelError) {
        tracing::error!(error = %e, "rollout engine lost its KV slots");
        let ids: HashSet<u64> = self.active.iter().map(|s| s.req).collect();
        self.active.clear();
        self.slots.clear();
        self.remove_requests(&ids, Some(e.into()));
    }

    /// Frees the slots and queue places of requests whose ticket was dropped.
    fn drop_cancelled(&mut self) {
        let gone: HashSet<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.reply.is_disconnected())
            .map(|(id, _)| *id)
            .collect();
        if !gone.is_empty() {
            self.remove_requests(&gone, None);
        }
    }

    /// Removes requests with their rows and waiting samples; answers them with `err` (or
    /// counts them cancelled when `err` is `None`).
    fn remove_requests(&mut self, ids: &HashSet<u64>, err: Option<EngineError>) {
        for id in ids {
            let Some(r) = self.requests.remove(id) else {
                continue;
            };
            self.shared
                .waiting
                .fetch_sub(r.req.n - r.next_sample, Ordering::SeqCst);
            match &err {
                Some(e) => {
                    self.stats.requests_failed += 1;
                    self.publish_stats();
                    let _ = r.reply.send(Err(e.clone()));
                }
                None => self.stats.requests_cancelled += 1,
            }
        }
        self.waiting.retain(|id| !ids.contains(id));
        for row in (0..self.active.len()).rev() {
            if ids.contains(&self.active[row].req) {
                self.active.swap_remove(row);
                if let Err(e) = self.slots.swap_remove(row) {
                    self.lose_slots(e);
                    return;
                }
            }
        }
    }
}

/// Prefills one prompt alone (exactly as [`crate::model::generate`] does for one prompt):
/// returns its one-row cache and the logits after its last token.
fn prefill(snap: &Snapshot, prompt: &[u32]) -> Result<(KvCache, Vec<f32>), ModelError> {
    let net = snap.transformer();
    let mut cache = snap.new_cache();
    let (ids, layout) = pad_left(&[prompt.to_vec()], 0)?;
    let t = layout.seq();
    let ids = Tensor::from_slice(&ids, (1, t), snap.device())?;
    let h = net.hidden(&ids, Some(&layout), Some(&mut cache), Kernels::Fused)?;
    let logits = rows_f32(&net.logits(&h.narrow(1, t - 1, 1)?)?)?;
    let logits = logits.into_iter().next().ok_or_else(|| {
        ModelError::InvalidInput("prefill returned no logits".into()) // cannot happen: 1 row
    })?;
    Ok((cache, logits))
}

/// Why `new` cannot replace `old` in a running engine, if it cannot.
fn compatible(old: &Snapshot, new: &Snapshot) -> Result<(), String> {
    let (a, b) = (old.config(), new.config());
    if a.num_hidden_layers != b.num_hidden_layers
        || a.kv_heads() != b.kv_heads()
        || a.head_dim() != b.head_dim()
        || a.vocab_size != b.vocab_size
        || a.max_position_embeddings != b.max_position_embeddings
    {
        return Err("the model shape differs from the running one".into());
    }
    if old.dtype() != new.dtype() {
        return Err(format!(
            "dtype {:?} instead of {:?}",
            new.dtype(),
            old.dtype()
        ));
    }
    if !old.device().same_device(new.device()) {
        return Err("the weights are on another device".into());
    }
    Ok(())
}
