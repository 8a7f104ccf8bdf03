//! Abduction (AZR `code_i`): given a program and an output, find an input producing it.
//!
//! Any input works: the predicted arguments (which must be plain literals, as the executor
//! enforces) are run through the program inside the sandbox and the result is compared with the
//! gold value. Proposing, prompts and parsing are shared with deduction ([`SingleIo`]).

use super::code::{gold_value, output_matches, IoMode, SingleIo};
use super::template::Field;
use super::{IoPair, Score, Task};
use crate::executor::Executor;
use crate::types::TaskKind;

/// The abduction mode of [`SingleIo`].
#[derive(Debug, Clone, Copy)]
pub struct AbductionMode;

/// The abduction task type.
pub type Abduction = SingleIo<AbductionMode>;

impl IoMode for AbductionMode {
    const KIND: TaskKind = TaskKind::Abduction;
    const ANSWER: Field = Field::Input;
    const SHOWN: &'static str = "output";
    const ANSWERED: &'static str = "input";

    fn check(task: &Task, pair: &IoPair, answer: &str, exec: &Executor) -> Score {
        let Some(gold) = gold_value(exec, pair) else {
            return Score::wrong();
        };
        Score::binary(output_matches(exec, &task.program, answer, &gold))
    }
}
