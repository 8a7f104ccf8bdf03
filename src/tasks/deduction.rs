//! Deduction (AZR `code_o`): given a program and an input, predict the output.
//!
//! The answer is parsed as a Python literal in the sandbox and compared with the gold value by
//! [`PyValue::same_as`](crate::executor::PyValue::same_as); nothing is evaluated in the host.
//! Proposing, prompts and parsing are shared with abduction ([`SingleIo`]).

use super::code::{gold_value, IoMode, SingleIo};
use super::template::Field;
use super::{IoPair, Score, Task};
use crate::executor::Executor;
use crate::types::TaskKind;

/// The deduction mode of [`SingleIo`].
#[derive(Debug, Clone, Copy)]
pub struct DeductionMode;

/// The deduction task type.
pub type Deduction = SingleIo<DeductionMode>;

impl IoMode for DeductionMode {
    const KIND: TaskKind = TaskKind::Deduction;
    const ANSWER: Field = Field::Output;
    const SHOWN: &'static str = "input";
    const ANSWERED: &'static str = "output";

    fn check(_task: &Task, pair: &IoPair, answer: &str, exec: &Executor) -> Score {
        let Some(gold) = gold_value(exec, pair) else {
            return Score::wrong();
        };
        Score::binary(matches!(exec.parse_literal(answer), Ok(v) if v.same_as(&gold)))
    }
}
