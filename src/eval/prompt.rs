//! The math prompt: a template with a `{problem}` slot, and how the final answer is read back
//! from a response.
//!
//! The default is a chat-style template in the Qwen / R1 "boxed" manner (reason step by step,
//! put the final answer in `\boxed{}`); tiny models use a compact template such as
//! `Q: {problem}\nA: ` with [`AnswerFormat::Plain`] answers ended by a stop string.

use serde::{Deserialize, Serialize};

use crate::tasks::math_grader;
use crate::tasks::parse::last_boxed;

/// Default template: a chat prompt asking for step-by-step reasoning and a boxed answer.
pub const DEFAULT_TEMPLATE: &str = "<|im_start|>system\nYou are a careful mathematician. Work through the problem step by step, then write the final answer inside \\boxed{}.<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n";

/// How the final answer is found in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerFormat {
    /// The contents of the last `\boxed{}` (or `\fbox{}`); none = no answer.
    Boxed,
    /// The response text before the first stop string (or all of it), trimmed; a `\boxed{}`
    /// inside it still wins.
    Plain,
}

/// The math prompt settings (`[prompt]` in RLVR configs). Defaults: [`DEFAULT_TEMPLATE`],
/// boxed answers, stop strings `["<|im_end|>", "<|endoftext|>"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MathPrompt {
    /// Prompt text; `{problem}` is replaced by the problem statement.
    pub template: String,
    /// How the answer is extracted from a response.
    pub answer: AnswerFormat,
    /// Strings that end a response: generation stops at those that are single tokens of the
    /// vocabulary, and the text is cut at the first one before extraction.
    pub stop: Vec<String>,
}

impl Default for MathPrompt {
    fn default() -> Self {
        Self {
            template: DEFAULT_TEMPLATE.to_string(),
            answer: AnswerFormat::Boxed,
            stop: vec!["<|im_end|>".to_string(), "<|endoftext|>".to_string()],
        }
    }
}

impl MathPrompt {
    /// The prompt for `problem` (trimmed).
    pub fn render(&self, problem: &str) -> String {
        self.template.replace("{problem}", problem.trim())
    }

    /// Whether the template has a `{problem}` slot (configs are checked with this).
    pub fn is_valid(&self) -> bool {
        self.template.contains("{problem}")
    }

    /// The final answer of `response`, if it has one.
    pub fn extract(&self, response: &str) -> Option<String> {
        let cut = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| response.find(s.as_str()))
            .min()
            .unwrap_or(response.len());
        let text = &response[..cut];
        if let Some(b) = last_boxed(text).filter(|b| !b.trim().is_empty()) {
            return Some(b);
        }
        match self.answer {
            AnswerFormat::Boxed => None,
            AnswerFormat::Plain => {
                let t = text.trim();
                (!t.is_empty()).then(|| t.to_string())
            }
        }
    }

    /// Whether `response` answers `reference` correctly (the binary RLVR reward).
    pub fn grade(&self, response: &str, reference: &str) -> bool {
        self.extract(response)
            .is_some_and(|a| math_grader::is_equiv(&a, reference))
    }
}
