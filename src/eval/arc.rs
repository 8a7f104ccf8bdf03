//! ARC-Easy and ARC-Challenge: the multiple-choice prompt, the answer read back from a
//! response, and accuracy / avg@k by label against `answerKey` (items from
//! [`crate::data::arc`]).
//!
//! # Prompt
//! [`ArcPrompt`] (`[evaluator.arc]` of the `azr run` / `azr eval` / `azr rlvr` config) renders `template` with `{question}` (the question, trimmed) and
//! `{choices}` (one `choice` line per option, in file order, with the file's labels: `A`-`E` or
//! `1`-`4`). The default is the plain completion format
//!
//! ```text
//! Question: {question}
//! A. {text}
//! B. {text}
//! ...
//! Answer:
//! ```
//!
//! and a chat template with a `\boxed{}` instruction suits math-style models (see
//! `config/one-shot-rlvr.toml`). The binary's evaluator cuts a prompt longer than the engine's
//! sequence budget minus `max_new_tokens` on the left, as lm-evaluation-harness does.
//!
//! # Answer extraction
//! The response is first cut at the first of `stop` (default `"\nQuestion:"`, `<|im_end|>`,
//! `<|endoftext|>`, so a base model's next invented question is never read). Then the rules
//! below are tried in order; the first that finds one of **this item's labels** wins, and a rule
//! that finds something else (`\boxed{E}` on an `A`-`D` question, `\boxed{42}`) falls through to
//! the next:
//!
//! 1. **boxed**: the content of the last `\boxed{}` / `\fbox{}` (inside `\text{}`,
//!    parentheses and a trailing `.` removed) when it starts with a label: `\boxed{C}`,
//!    `\boxed{(C)}`, `\boxed{\text{C}}`, `\boxed{C. iron}`;
//! 2. **answer phrase**: the last `answer` (any case; also `Answer:`, `**Answer:**`,
//!    `<answer>`, `final answer is`) followed, after `:`/`is`/`would be`/`option`/`choice`/
//!    `letter`, by a label or a parenthesised label: `the answer is B`, `Answer: (2)`; earlier
//!    occurrences are tried when the last one names no label;
//! 3. **leading label**: the response starts (after spaces, `*`) with a label followed by the
//!    end, a newline or one of `. ) : , ; ]`, or with `(X)` / `[X]`: `B`, ` B. iron`, `(B) iron`,
//!    `4)`; a label followed by a space and a word (`A plant ...`) is not read, it is prose;
//! 4. **parenthesised**: the last `(X)` anywhere: `so I pick (D) here`;
//! 5. otherwise there is **no answer**, scored wrong.
//!
//! Letter labels are matched in upper case; a lower-case letter counts only where it cannot be
//! an English word: as the whole `\boxed{}` content, inside parentheses, or as the whole
//! response (`b`). Several labels in one response resolve by the rules: the first label after
//! the last answer phrase, the first label at the start (`B, C` reads `B`). Numeric labels must
//! be whole numbers (`1.5` is not label `1`).
//!
//! # Scoring
//! An item's sample is correct when the extracted label equals `answerKey`; the score is avg@k
//! over [`EvalSettings::effective_samples`] samples (greedy accuracy by default), as
//! [`BenchmarkScore`] with the benchmark name `arc-easy` / `arc-challenge`.
//!
//! In the `azr` binary's evaluator (`azr eval`, the in-run evaluator), where held-out items
//! travel as tasks, an ARC item is a math task whose answer is the label ([`task`]; the binary
//! sets its problem to the whole [`ArcPrompt::render`]ed prompt and generates through the
//! rollout engine); [`task_verdict`] grades a response, cut at the stop strings
//! ([`ArcPrompt::cut`]), with the same rules, reading labels of the answer's family (`A`-`E` or
//! `1`-`5`).

use serde::{Deserialize, Serialize};

use super::{BenchmarkScore, EvalError, EvalSettings};
use crate::data::arc::ArcItem;
use crate::tasks::parse::last_boxed;
use crate::tasks::{Provenance, Task, Verdict};

/// Default template: the plain completion format `Question: ...`, lettered options, `Answer:`.
pub const DEFAULT_TEMPLATE: &str = "Question: {question}\n{choices}\nAnswer:";
/// Default option line.
pub const DEFAULT_CHOICE: &str = "{label}. {text}";

/// The ARC prompt settings. Defaults: [`DEFAULT_TEMPLATE`], [`DEFAULT_CHOICE`], stop strings
/// `["\nQuestion:", "<|im_end|>", "<|endoftext|>"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArcPrompt {
    /// Prompt text; `{question}` and `{choices}` are replaced (both required).
    pub template: String,
    /// One option line; `{label}` and `{text}` are replaced (both required).
    pub choice: String,
    /// Strings that end a response: generation stops at those that are single tokens of the
    /// vocabulary, and the text is cut at the first one before extraction.
    pub stop: Vec<String>,
}

impl Default for ArcPrompt {
    fn default() -> Self {
        Self {
            template: DEFAULT_TEMPLATE.to_string(),
            choice: DEFAULT_CHOICE.to_string(),
            stop: vec![
                "\nQuestion:".to_string(),
                "<|im_end|>".to_string(),
                "<|endoftext|>".to_string(),
            ],
        }
    }
}

/// `template` with each `{key}` of `values` replaced, in one pass (a value containing a
/// placeholder is not expanded again).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    'scan: while let Some(open) = rest.find('{') {
        for (key, value) in values {
            let slot = &rest[open + 1..];
            if slot.starts_with(key) && slot[key.len()..].starts_with('}') {
                out.push_str(&rest[..open]);
                out.push_str(value);
                rest = &slot[key.len() + 1..];
                continue 'scan;
            }
        }
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
    }
    out.push_str(rest);
    out
}

impl ArcPrompt {
    /// Checks that the template and the option line have their slots.
    ///
    /// # Errors
    /// [`EvalError::Invalid`] naming the field (`template` or `choice`) and the missing slot.
    pub fn validate(&self) -> Result<(), EvalError> {
        for (field, text, slots) in [
            ("template", &self.template, ["{question}", "{choices}"]),
            ("choice", &self.choice, ["{label}", "{text}"]),
        ] {
            if let Some(slot) = slots.iter().find(|s| !text.contains(*s)) {
                return Err(EvalError::Invalid(format!(
                    "{field}: must contain `{slot}`"
                )));
            }
        }
        Ok(())
    }

    /// The option lines of `item`, joined by newlines.
    pub fn choices_text(&self, item: &ArcItem) -> String {
        item.choices
            .iter()
            .map(|c| {
                fill(
                    &self.choice,
                    &[("label", &c.label), ("text", c.text.trim())],
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The whole prompt of `item`.
    pub fn render(&self, item: &ArcItem) -> String {
        fill(
            &self.template,
            &[
                ("question", item.question.trim()),
                ("choices", &self.choices_text(item)),
            ],
        )
    }

    /// The question and its option lines without the template (`{question}\n{choices}`): the
    /// problem text of [`task`].
    pub fn body(&self, item: &ArcItem) -> String {
        format!("{}\n{}", item.question.trim(), self.choices_text(item))
    }

    /// `response` up to the first stop string.
    pub fn cut<'a>(&self, response: &'a str) -> &'a str {
        let end = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| response.find(s.as_str()))
            .min()
            .unwrap_or(response.len());
        &response[..end]
    }

    /// The label `response` chooses among `labels` (the module's rules, after the stop cut).
    pub fn extract(&self, response: &str, labels: &[&str]) -> Option<String> {
        extract_label(self.cut(response), labels)
    }

    /// Whether `response` chooses `item`'s correct option.
    pub fn grade(&self, response: &str, item: &ArcItem) -> bool {
        self.extract(response, &item.labels()).as_deref() == Some(item.answer.as_str())
    }
}

/// Characters that may end a label at the start of a response (besides the end and newlines).
const LEADING_DELIMS: [char; 7] = ['.', ')', ':', ',', ';', ']', '*'];

/// The label at the very start of `s`: `(index in labels, byte length)`. The token is the run
/// of alphanumerics at the start; it must equal a label (letters: upper case, or any case when
/// `any_case`), and a number must not continue as a decimal (`1.5`).
fn label_at(s: &str, labels: &[&str], any_case: bool) -> Option<(usize, usize)> {
    let len = s
        .char_indices()
        .find(|(_, c)| !c.is_alphanumeric())
        .map_or(s.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (tok, rest) = s.split_at(len);
    let decimal = rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit());
    if decimal {
        return None;
    }
    labels
        .iter()
        .position(|l| {
            *l == tok
                || (any_case
                    && l.len() == 1
                    && l.chars().all(|c| c.is_ascii_alphabetic())
                    && l.eq_ignore_ascii_case(tok))
        })
        .map(|i| (i, len))
}

/// Rule 1: the last `\boxed{}`.
fn from_boxed(text: &str, labels: &[&str]) -> Option<usize> {
    let mut b = last_boxed(text)?;
    loop {
        let t = b.trim().trim_end_matches('.').trim();
        let unwrapped = ["\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{"]
            .iter()
            .find_map(|w| t.strip_prefix(w).and_then(|x| x.strip_suffix('}')))
            .or_else(|| t.strip_prefix('(').and_then(|x| x.strip_suffix(')')));
        match unwrapped {
            Some(inner) => b = inner.to_string(),
            None => {
                b = t.to_string();
                break;
            }
        }
    }
    let whole = label_at(&b, labels, true).filter(|&(_, n)| n == b.len());
    let lead = label_at(&b, labels, false).filter(|&(_, n)| {
        b[n..].starts_with(|c: char| c.is_whitespace() || LEADING_DELIMS.contains(&c))
    });
    whole.or(lead).map(|(i, _)| i)
}

/// A label, or a parenthesised label (any case), at the start of `s`.
fn label_or_parenthesised(s: &str, labels: &[&str]) -> Option<usize> {
    for (open, close) in [('(', ')'), ('[', ']')] {
        if let Some(inner) = s.strip_prefix(open) {
            let inner = inner.trim_start();
            return label_at(inner, labels, true)
                .filter(|&(_, n)| inner[n..].trim_start().starts_with(close))
                .map(|(i, _)| i);
        }
    }
    label_at(s, labels, false).map(|(i, _)| i)
}

/// Rule 2: the label after the last `answer` phrase that names one.
fn from_answer_phrase(text: &str, labels: &[&str]) -> Option<usize> {
    const LINKS: [&str; 10] = [
        "is", "would", "should", "will", "be", "was", "choice", "option", "letter", "correct",
    ];
    let lower = text.to_ascii_lowercase();
    let starts: Vec<usize> = lower.match_indices("answer").map(|(i, _)| i).collect();
    for &at in starts.iter().rev() {
        let before_ok = !lower[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphabetic());
        let mut rest = &text[at + "answer".len()..];
        if !before_ok || rest.starts_with(|c: char| c.is_alphabetic()) {
            continue;
        }
        loop {
            let skipped = rest.trim_start_matches(|c: char| {
                c.is_whitespace() || matches!(c, ':' | '*' | '>' | '=' | '-' | '"' | '\'' | '`')
            });
            let word_len = skipped
                .char_indices()
                .find(|(_, c)| !c.is_alphabetic())
                .map_or(skipped.len(), |(i, _)| i);
            let word = skipped[..word_len].to_ascii_lowercase();
            if word_len > 0 && LINKS.contains(&word.as_str()) {
                rest = &skipped[word_len..];
            } else {
                rest = skipped;
                break;
            }
        }
        if let Some(i) = label_or_parenthesised(rest, labels) {
            return Some(i);
        }
    }
    None
}

/// Rule 3: a label at the start of the response.
fn from_leading(text: &str, labels: &[&str]) -> Option<usize> {
    let t = text.trim().trim_start_matches('*').trim_start();
    if t.starts_with(['(', '[']) {
        return label_or_parenthesised(t, labels);
    }
    let whole = t.trim_end_matches(['.', '*']).trim_end();
    if let Some((i, n)) = label_at(whole, labels, true) {
        if n == whole.len() {
            return Some(i);
        }
    }
    label_at(t, labels, false)
        .filter(|&(_, n)| {
            let rest = &t[n..];
            rest.is_empty()
                || rest.starts_with(['\n', '\r'])
                || rest.starts_with(LEADING_DELIMS)
                || rest
                    .trim_start_matches([' ', '\t'])
                    .starts_with(['\n', '\r'])
        })
        .map(|(i, _)| i)
}

/// Rule 4: the last `(X)` anywhere.
fn from_parenthesised(text: &str, labels: &[&str]) -> Option<usize> {
    text.match_indices('(')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find_map(|(at, _)| label_or_parenthesised(&text[at..], labels))
}

/// One extraction rule: the index in `labels` of the label it finds in the text.
type Rule = fn(&str, &[&str]) -> Option<usize>;

/// The label `text` chooses among `labels`, by the module's rules (boxed, answer phrase,
/// leading label, last parenthesised label); `None` when it names none. `text` is taken as is
/// (no stop cut; see [`ArcPrompt::extract`]).
pub fn extract_label(text: &str, labels: &[&str]) -> Option<String> {
    let rules: [Rule; 4] = [
        from_boxed,
        from_answer_phrase,
        from_leading,
        from_parenthesised,
    ];
    rules
        .iter()
        .find_map(|rule| rule(text, labels))
        .map(|i| labels[i].to_string())
}

/// The label family of an answer key, for items whose options are not at hand: `1`-`5` for a
/// numeric key, `A`-`E` otherwise.
pub fn label_family(answer: &str) -> Vec<&'static str> {
    if answer.trim().starts_with(|c: char| c.is_ascii_digit()) {
        vec!["1", "2", "3", "4", "5"]
    } else {
        vec!["A", "B", "C", "D", "E"]
    }
}

/// Whether `name` is an ARC benchmark (`arc-easy`, `arc-challenge`, `_` accepted).
pub fn is_arc_benchmark(name: &str) -> bool {
    crate::data::arc::ArcSet::from_name(name).is_some()
}

/// `item` as a math task for the task pipeline: problem [`ArcPrompt::body`], answer the label,
/// provenance the benchmark name and item id.
pub fn task(item: &ArcItem, prompt: &ArcPrompt) -> Task {
    Task::math(
        prompt.body(item),
        item.answer.clone(),
        Provenance::benchmark(item.set.name(), item.id.clone()),
    )
}

/// The verdict on `response` to an ARC task made by [`task`]: [`Verdict::Correct`] when the
/// label it chooses (labels of [`label_family`]) is the task's answer, [`Verdict::Wrong`]
/// otherwise (no answer included).
pub fn task_verdict(task: &Task, response: &str) -> Verdict {
    let labels = label_family(&task.answer);
    if extract_label(response, &labels).as_deref() == Some(task.answer.trim()) {
        Verdict::Correct
    } else {
        Verdict::Wrong
    }
}

/// The decoding settings of a score line: `temperature 0 (greedy), top_p 1, max_new_tokens
/// 96, seed 42` (sampled: `temperature 0.6, top_p 1, max_new_tokens 3072, seed 0, avg@8`).
pub fn decoding_summary(settings: &EvalSettings) -> String {
    let head = if settings.is_greedy() {
        "temperature 0 (greedy)".to_string()
    } else {
        format!("temperature {}", settings.temperature)
    };
    let mut s = format!(
        "{head}, top_p {}, max_new_tokens {}, seed {}",
        settings.top_p, settings.max_new_tokens, settings.seed
    );
    if !settings.is_greedy() {
        s.push_str(&format!(", avg@{}", settings.effective_samples()));
    }
    s
}

/// Grades `responses[item][sample]` against `items` and scores them as benchmark `name`.
///
/// # Errors
/// [`EvalError::Invalid`] when the counts do not match.
pub fn score_responses(
    prompt: &ArcPrompt,
    name: &str,
    items: &[ArcItem],
    responses: &[Vec<String>],
    settings: &EvalSettings,
) -> Result<BenchmarkScore, EvalError> {
    if items.len() != responses.len() {
        return Err(EvalError::Invalid(format!(
            "{} items but {} response lists",
            items.len(),
            responses.len()
        )));
    }
    let graded: Vec<Vec<bool>> = items
        .iter()
        .zip(responses)
        .map(|(item, rs)| rs.iter().map(|r| prompt.grade(r, item)).collect())
        .collect();
    BenchmarkScore::from_graded(name, &graded, settings)
}
