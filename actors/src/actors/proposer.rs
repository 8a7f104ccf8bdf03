//! The proposer: builds proposer prompts from reference tasks, samples proposals from the
//! current policy snapshot, and parses them into [`Proposal`]s (a format error is data, not a
//! failure).

use std::sync::Arc;
use std::time::Duration;

use azr_core::tasks::{Proposal, ProposerPrompt, Task};
use azr_core::types::TaskKind;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::handle::{RequestError, WorkerHandle};
use super::{serve, Ctx};
use crate::engine::{Decoding, Generated};

/// Registered name.
pub const NAME: &str = "proposer";

/// One sampled proposal.
#[derive(Debug, Clone)]
pub struct ProposeOutput {
    /// The prompt (with the induction reference program, if any).
    pub prompt: ProposerPrompt,
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// The generation.
    pub generated: Generated,
    /// The parsed proposal, or why it does not parse.
    pub proposal: Result<Proposal, String>,
}

/// Messages of [`Proposer`].
pub enum ProposerMsg {
    /// Sample one proposal per reference set.
    Propose {
        /// Step (fault injection and logs).
        step: u64,
        /// Task kind.
        kind: TaskKind,
        /// One reference set per proposal.
        references: Vec<Vec<Task>>,
        /// Decoding settings.
        decoding: Decoding,
        /// Sampling seed.
        seed: u64,
        /// Reply.
        reply: RpcReplyPort<Result<Vec<ProposeOutput>, String>>,
    },
}

/// The proposer actor.
pub struct Proposer;

/// State of [`Proposer`].
pub struct ProposerState {
    ctx: Arc<Ctx>,
}

impl Actor for Proposer {
    type Msg = ProposerMsg;
    type State = ProposerState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ProposerState { ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ProposerMsg::Propose {
            step,
            kind,
            references,
            decoding,
            seed,
            reply,
        } = msg;
        state.ctx.faults.maybe_panic(NAME, step);
        let ctx = state.ctx.clone();
        serve(NAME, reply, async move {
            propose(&ctx, kind, &references, decoding, seed).await
        });
        Ok(())
    }
}

async fn propose(
    ctx: &Ctx,
    kind: TaskKind,
    references: &[Vec<Task>],
    decoding: Decoding,
    seed: u64,
) -> Result<Vec<ProposeOutput>, String> {
    let tt = ctx
        .task_type(kind)?
        .proposer()
        .ok_or_else(|| format!("task type `{kind}` does not propose"))?;
    let mut prompts = Vec::with_capacity(references.len());
    let mut ids = Vec::with_capacity(references.len());
    for refs in references {
        let p = tt.proposer_prompt(refs).map_err(|e| e.to_string())?;
        ids.push(ctx.codec.encode(&p.text)?);
        prompts.push(p);
    }
    let gens = ctx.inference.generate(ids.clone(), decoding, seed).await?;
    Ok(prompts
        .into_iter()
        .zip(ids)
        .zip(gens)
        .map(|((prompt, prompt_ids), generated)| {
            let proposal = tt
                .parse_proposal(&prompt, &generated.text)
                .map_err(|e| e.to_string());
            ProposeOutput {
                prompt,
                prompt_ids,
                generated,
                proposal,
            }
        })
        .collect())
}

/// Typed handle to the proposer.
#[derive(Clone)]
pub struct ProposerHandle(WorkerHandle<ProposerMsg>);

impl ProposerHandle {
    /// A handle with a per-attempt timeout.
    pub fn new(timeout: Duration) -> Self {
        Self(WorkerHandle::new(NAME, timeout))
    }

    /// Sample one proposal of `kind` per reference set.
    pub async fn propose(
        &self,
        step: u64,
        kind: TaskKind,
        references: Vec<Vec<Task>>,
        decoding: Decoding,
        seed: u64,
    ) -> Result<Vec<ProposeOutput>, RequestError> {
        self.0
            .request(|reply| ProposerMsg::Propose {
                step,
                kind,
                references: references.clone(),
                decoding,
                seed,
                reply,
            })
            .await
    }
}
