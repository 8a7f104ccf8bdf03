//! Prompt templates, loaded from TOML (`config/templates/*.toml`).
//!
//! A [`TemplateSet`] holds the block markers the parsers look for ([`Format`]), the wrapper and
//! one section per task kind, looked up by the kind's name: each task type reads its own
//! section into its own typed struct ([`TemplateSet::section`]) and checks its placeholders
//! ([`require`]). A file may leave out the sections of kinds it does not use; the registry only
//! registers the kinds whose section is present. Two sets are built in
//! (embedded with `include_str!`, so the binary works from any directory): `paper` (R1-style
//! `<think>`/`<answer>` with fenced blocks, for real models) and `compact` (the tiny model's
//! `<prog>...<in>...<out>...<end>` sequences). Any other file can be loaded with
//! [`TemplateSet::load`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The embedded `paper` template set.
pub const PAPER_TOML: &str = include_str!("../../config/templates/paper.toml");
/// The embedded `compact` template set.
pub const COMPACT_TOML: &str = include_str!("../../config/templates/compact.toml");

/// Errors loading a template set.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read template file {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML does not match the schema.
    #[error("invalid template TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// No built-in set has this name.
    #[error("unknown built-in template set `{0}` (expected `paper` or `compact`)")]
    UnknownBuiltin(String),
    /// A template lacks a placeholder its task type fills.
    #[error("template `{template}` must contain the placeholder `{{{placeholder}}}`")]
    MissingPlaceholder {
        /// Template key, e.g. `deduction.solve`.
        template: String,
        /// Placeholder name.
        placeholder: String,
    },
    /// Inconsistent `[format]` settings.
    #[error("invalid [format]: {0}")]
    Format(String),
    /// The set has no section for a kind that needs one.
    #[error("template set `{set}` has no [{section}] section")]
    MissingSection {
        /// Template set name.
        set: String,
        /// Section name.
        section: String,
    },
    /// The `[tasks.kind.<name>]` settings of a kind do not match its settings struct.
    #[error("config [tasks.kind.{kind}]: {message}")]
    Settings {
        /// Kind name.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// A section does not match its task type's schema (missing or unknown keys).
    #[error("template section [{section}]: {message}")]
    Section {
        /// Section name.
        section: String,
        /// What is wrong.
        message: String,
    },
}

/// How blocks are delimited in prompts and generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockStyle {
    /// Markdown fences: ```` ```NAME ```` newline, content, ```` ``` ````.
    Fenced,
    /// Tags: a block starts with its tag and ends at the next tag (or the end tag).
    Tagged,
}

/// The block markers and answer structure (`[format]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    /// Fenced or tagged blocks.
    pub style: BlockStyle,
    /// Text the wrapper ends with that belongs to the response; prepended before parsing.
    #[serde(default)]
    pub response_prefix: String,
    /// `[open, close]` reasoning tags (empty: no reasoning structure required).
    #[serde(default)]
    pub think_tags: Vec<String>,
    /// `[open, close]` answer tags (empty: the whole response is the answer region).
    #[serde(default)]
    pub answer_tags: Vec<String>,
    /// Stop sequences for the sampler. Texts given to the parsers must keep them.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Program block name (fenced: `python`; tagged: `<prog>`).
    pub program: String,
    /// Input block name.
    pub input: String,
    /// Output block name.
    pub output: String,
    /// Message block name.
    pub message: String,
    /// End tag (tagged style only; empty for fenced).
    #[serde(default)]
    pub end: String,
}

impl Format {
    /// The marker of a field.
    pub fn name(&self, field: Field) -> &str {
        match field {
            Field::Program => &self.program,
            Field::Input => &self.input,
            Field::Output => &self.output,
            Field::Message => &self.message,
        }
    }

    /// All tags of the tagged style (block tags and the end tag).
    pub fn tags(&self) -> Vec<&str> {
        let mut t = vec![
            self.program.as_str(),
            self.input.as_str(),
            self.output.as_str(),
            self.message.as_str(),
        ];
        if !self.end.is_empty() {
            t.push(self.end.as_str());
        }
        t
    }

    fn check(&self) -> Result<(), TemplateError> {
        for (what, tags) in [
            ("think_tags", &self.think_tags),
            ("answer_tags", &self.answer_tags),
        ] {
            if !(tags.is_empty() || tags.len() == 2 && tags.iter().all(|t| !t.is_empty())) {
                return Err(TemplateError::Format(format!(
                    "{what} must be empty or [open, close]"
                )));
            }
        }
        if !self.think_tags.is_empty() && self.answer_tags.is_empty() {
            return Err(TemplateError::Format(
                "think_tags need answer_tags".to_string(),
            ));
        }
        let names = [&self.program, &self.input, &self.output, &self.message];
        if names.iter().any(|n| n.trim().is_empty()) {
            return Err(TemplateError::Format(
                "program/input/output/message must be non-empty".to_string(),
            ));
        }
        if self.style == BlockStyle::Tagged && self.end.is_empty() {
            return Err(TemplateError::Format(
                "the tagged style needs an `end` tag".to_string(),
            ));
        }
        Ok(())
    }
}

/// A block field of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The program.
    Program,
    /// An input (argument list).
    Input,
    /// An output literal.
    Output,
    /// The induction message.
    Message,
}

/// `[wrapper]`: the text every wrapped prompt is embedded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wrapper {
    /// Wrapper text with a `{body}` placeholder.
    pub text: String,
}

/// A complete template set: `name`, `[format]`, `[wrapper]` and any number of sections (every
/// other top-level table), one per task kind plus shared ones such as `[seed]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSet {
    /// Name (for logs).
    pub name: String,
    /// Block markers and answer structure.
    pub format: Format,
    /// Prompt wrapper.
    pub wrapper: Wrapper,
    /// Every other table, by name.
    #[serde(flatten)]
    pub sections: BTreeMap<String, toml::Table>,
}

impl TemplateSet {
    /// Load and check a template file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// One of the embedded sets: `paper` or `compact`.
    pub fn builtin(name: &str) -> Result<Self, TemplateError> {
        match name {
            "paper" => Self::from_toml(PAPER_TOML),
            "compact" => Self::from_toml(COMPACT_TOML),
            other => Err(TemplateError::UnknownBuiltin(other.to_string())),
        }
    }

    /// A built-in name (`paper`, `compact`) or else a file path.
    pub fn resolve(name_or_path: &str) -> Result<Self, TemplateError> {
        match name_or_path {
            "paper" | "compact" => Self::builtin(name_or_path),
            path => Self::load(path),
        }
    }

    /// Parse and check TOML text (the shared parts; each task type checks its own section when
    /// it is built).
    pub fn from_toml(text: &str) -> Result<Self, TemplateError> {
        let set: TemplateSet = toml::from_str(text)?;
        set.format.check()?;
        require("wrapper.text", &set.wrapper.text, &["body"])?;
        Ok(set)
    }

    /// Whether the set has a section of this name.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    /// The section `name` read into a task type's own struct (use `#[serde(deny_unknown_fields)]`
    /// on it so that typos are reported).
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, TemplateError> {
        let table = self
            .sections
            .get(name)
            .ok_or_else(|| TemplateError::MissingSection {
                set: self.name.clone(),
                section: name.to_string(),
            })?;
        table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| TemplateError::Section {
                section: name.to_string(),
                message: e.message().to_string(),
            })
    }

    /// Embed a task body in the wrapper.
    pub fn wrap(&self, body: &str) -> String {
        render(&self.wrapper.text, &[("body", body)])
    }

    /// The text prepended to a response before parsing, for a prompt that was (or was not)
    /// wrapped: the wrapper's `response_prefix` (fenced style), or the tag the prompt ends with
    /// (tagged style).
    pub fn response_prefix(&self, prompt_body: &str, wrapped: bool) -> String {
        match self.format.style {
            BlockStyle::Fenced => {
                if wrapped {
                    self.format.response_prefix.clone()
                } else {
                    String::new()
                }
            }
            BlockStyle::Tagged => {
                let tail = if wrapped {
                    self.wrap(prompt_body)
                } else {
                    prompt_body.to_string()
                };
                self.format
                    .tags()
                    .into_iter()
                    .filter(|t| tail.ends_with(t))
                    .max_by_key(|t| t.len())
                    .unwrap_or("")
                    .to_string()
            }
        }
    }
}

/// Check that template `key` (e.g. `deduction.solve`) contains every `{placeholder}` its task
/// type fills.
pub fn require(key: &str, text: &str, placeholders: &[&str]) -> Result<(), TemplateError> {
    for p in placeholders {
        if !text.contains(&format!("{{{p}}}")) {
            return Err(TemplateError::MissingPlaceholder {
                template: key.to_string(),
                placeholder: p.to_string(),
            });
        }
    }
    Ok(())
}

/// Fill `{name}` placeholders in one pass; braces that do not name a given placeholder are kept
/// verbatim (so Python dict literals in templates survive), and substituted values are never
/// scanned again.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let map: HashMap<&str, &str> = values.iter().copied().collect();
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}');
        let name = end.map(|e| &after[..e]);
        match name.and_then(|n| map.get(n).map(|v| (n, *v))) {
            Some((n, v)) => {
                out.push_str(v);
                rest = &after[n.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_known_placeholders_once() {
        let t = "a {x} {'k': 1} {y}{x}";
        assert_eq!(
            render(t, &[("x", "{y}"), ("y", "Y")]),
            "a {y} {'k': 1} Y{y}"
        );
    }

    #[test]
    fn builtins_load_and_differ() {
        let p = TemplateSet::builtin("paper").unwrap();
        let c = TemplateSet::builtin("compact").unwrap();
        assert_eq!(p.format.style, BlockStyle::Fenced);
        assert_eq!(c.format.style, BlockStyle::Tagged);
        assert!(TemplateSet::builtin("nope").is_err());
    }

    #[test]
    fn files_on_disk_match_the_embedded_sets() {
        for name in ["paper", "compact"] {
            let disk = TemplateSet::load(format!("config/templates/{name}.toml")).unwrap();
            assert_eq!(disk, TemplateSet::builtin(name).unwrap());
            assert_eq!(TemplateSet::resolve(name).unwrap().name, name);
        }
        assert!(matches!(
            TemplateSet::load("config/templates/none.toml"),
            Err(TemplateError::Io { .. })
        ));
    }

    #[test]
    fn sections_are_looked_up_by_name() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Math {
            solve: String,
            #[allow(dead_code)]
            answer: String,
            #[allow(dead_code)]
            wrapped: bool,
        }
        let p = TemplateSet::builtin("paper").unwrap();
        let m: Math = p.section("math").unwrap();
        assert!(m.solve.contains("{problem}"));
        assert!(matches!(
            p.section::<Math>("nope"),
            Err(TemplateError::MissingSection { .. })
        ));
        // Unknown keys in a section are reported by the section's reader.
        let bad = format!(
            "{PAPER_TOML}\n[extra]\nsolve = \"x\"\nanswer = \"y\"\nwrapped = true\ntypo = 1\n"
        );
        let set = TemplateSet::from_toml(&bad).unwrap();
        assert!(matches!(
            set.section::<Math>("extra"),
            Err(TemplateError::Section { .. })
        ));
        // A file may leave out kinds: only format, wrapper and name are required.
        let minimal = "name = \"m\"\n[format]\nstyle = \"tagged\"\nprogram = \"<p>\"\ninput = \"<i>\"\noutput = \"<o>\"\nmessage = \"<m>\"\nend = \"<e>\"\n[wrapper]\ntext = \"{body}\"\n";
        let set = TemplateSet::from_toml(minimal).unwrap();
        assert!(set.sections.is_empty());
        assert!(require("a.b", "x {y}", &["y"]).is_ok());
        assert!(matches!(
            require("a.b", "x", &["y"]),
            Err(TemplateError::MissingPlaceholder { .. })
        ));
    }

    #[test]
    fn tagged_prefix_is_the_trailing_tag() {
        let c = TemplateSet::builtin("compact").unwrap();
        assert_eq!(c.response_prefix("<prog>x\n<in>1<out>", true), "<out>");
        assert_eq!(c.response_prefix("abc", true), "");
        let p = TemplateSet::builtin("paper").unwrap();
        assert_eq!(p.response_prefix("abc", true), "<think>");
        assert_eq!(p.response_prefix("abc", false), "");
    }
}
