//! Tiny-model pretraining: the procedural program corpus, the character-level tokenizer and
//! next-token pretraining of the embedded CPU base model.
//!
//! | module | what it holds |
//! |---|---|
//! | [`templates`] | the program templates, grouped in families (some held out of training) |
//! | [`chains`] | compositional programs: chains of typed operations, a quarter held out |
//! | [`generator`] | the seeded program generator, the train/held-out split, executor labelling |
//! | [`heldout`] | the held-out deduction/abduction/induction set ([`heldout_set`]), JSONL |
//! | [`replay`] | replay pools: corpus tasks of the training side for self-play solver batches |
//! | [`tokenizer`] | the character-level `tokenizer.json` |
//! | [`corpus`] | compact-template rendering, the training stream and row packing |
//! | [`train`] | [`pretrain`]: next-token training, loss curve, checkpoints, final evaluation |
//! | [`eval`] | greedy held-out evaluation per task kind |
//! | [`alloc`] | glibc allocator tuning that makes CPU training steps ~1.3x faster |
//! | [`config`] | [`PretrainConfig`], loaded from `config/tiny-pretrain.toml` |
//! | [`error`] | [`PretrainError`] |

pub mod alloc;
pub mod chains;
pub mod config;
pub mod corpus;
pub mod error;
pub mod eval;
pub mod generator;
pub mod heldout;
pub mod replay;
pub mod templates;
pub mod tokenizer;
pub mod train;

pub use config::{EvalConfig, PretrainConfig, TinyModelConfig, TrainConfig};
pub use corpus::{CorpusConfig, RowPacker, RowStream, Sample, SampleStream};
pub use error::PretrainError;
pub use eval::{evaluate, EvalReport, KindReport, Tally};
pub use generator::{IoPair, LabeledProgram, ProgramGenerator, ProgramSpec, Split};
pub use heldout::{chain_set, draw_tasks, heldout_set, HeldoutConfig, HeldoutSet, HeldoutTask};
pub use replay::{replay_pool, Replay, ReplaySpec};
pub use templates::{Family, Template, TEMPLATES};
pub use tokenizer::TinyTokenizer;
pub use train::{pretrain, PretrainOutcome, PretrainProgress, StepStats, Trainer};
