//! Parsing of generations: the answer region, fenced or tagged blocks, `\boxed{}` and program
//! normalisation.
//!
//! Strict about structure (tags and block markers must be present and closed), lenient about
//! whitespace (around tags, blocks and contents).

use super::template::{BlockStyle, Field, Format};
use super::FormatError;

/// One block found in a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Contents, with surrounding blank lines and trailing whitespace removed.
    pub content: String,
    /// Whether the block was closed (by a fence, or in the tagged style by a following tag).
    pub terminated: bool,
}

/// Extract the answer region of `prefix + text`.
///
/// With `wrapped` and answer tags configured, the response must be
/// `<think> ... </think> <answer> ... </answer>` (the think part only when think tags are
/// configured); the region is the text inside `<answer>`. Otherwise the region is the whole
/// response, cut after the first end tag in the tagged style.
pub fn answer_region(
    format: &Format,
    prefix: &str,
    text: &str,
    wrapped: bool,
) -> Result<String, FormatError> {
    let full = format!("{prefix}{text}");
    if wrapped && format.answer_tags.len() == 2 {
        let mut rest = full.trim_start();
        if format.think_tags.len() == 2 {
            let (open, close) = (&format.think_tags[0], &format.think_tags[1]);
            rest = rest
                .strip_prefix(open.as_str())
                .ok_or(FormatError::Wrapper)?;
            let end = rest.find(close.as_str()).ok_or(FormatError::Wrapper)?;
            rest = rest[end + close.len()..].trim_start();
            let (aopen, aclose) = (&format.answer_tags[0], &format.answer_tags[1]);
            rest = rest
                .strip_prefix(aopen.as_str())
                .ok_or(FormatError::Wrapper)?;
            let end = rest.find(aclose.as_str()).ok_or(FormatError::Wrapper)?;
            return Ok(rest[..end].to_string());
        }
        let (aopen, aclose) = (&format.answer_tags[0], &format.answer_tags[1]);
        let start = rest.rfind(aopen.as_str()).ok_or(FormatError::Wrapper)?;
        let inner = &rest[start + aopen.len()..];
        let end = inner.find(aclose.as_str()).ok_or(FormatError::Wrapper)?;
        return Ok(inner[..end].to_string());
    }
    if format.style == BlockStyle::Tagged && !format.end.is_empty() {
        if let Some(pos) = full.find(format.end.as_str()) {
            return Ok(full[..pos + format.end.len()].to_string());
        }
    }
    Ok(full)
}

/// Tidy a block's contents: drop leading blank lines and trailing whitespace, keeping the
/// indentation of the first non-blank line.
fn tidy(s: &str) -> String {
    let s = s.trim_end();
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        if line.trim().is_empty() {
            start += line.len();
        } else {
            break;
        }
    }
    let body = &s[start.min(s.len())..];
    // A single-line block may carry leading spaces after the tag (`<in> 1`): drop them.
    if body.contains('\n') {
        body.to_string()
    } else {
        body.trim().to_string()
    }
}

/// All blocks of `field` in the region, in order.
pub fn blocks(format: &Format, region: &str, field: Field) -> Vec<Block> {
    let name = format.name(field);
    match format.style {
        BlockStyle::Fenced => fenced_blocks(region)
            .into_iter()
            .filter(|(info, _)| info.eq_ignore_ascii_case(name))
            .map(|(_, b)| b)
            .collect(),
        BlockStyle::Tagged => tagged_segments(format, region)
            .into_iter()
            .filter(|(tag, _)| *tag == name)
            .map(|(_, b)| b)
            .collect(),
    }
}

/// Every fenced block as (info string, block).
fn fenced_blocks(region: &str) -> Vec<(String, Block)> {
    const FENCE: &str = "```";
    let mut out = Vec::new();
    let mut rest = region;
    while let Some(open) = rest.find(FENCE) {
        let after = &rest[open + FENCE.len()..];
        let (info, body) = match after.find('\n') {
            Some(nl) => (after[..nl].trim().to_string(), &after[nl + 1..]),
            None => (after.trim().to_string(), ""),
        };
        match body.find(FENCE) {
            Some(close) => {
                out.push((
                    info,
                    Block {
                        content: tidy(&body[..close]),
                        terminated: true,
                    },
                ));
                rest = &body[close + FENCE.len()..];
            }
            None => {
                out.push((
                    info,
                    Block {
                        content: tidy(body),
                        terminated: false,
                    },
                ));
                break;
            }
        }
    }
    out
}

/// Split a tagged region into (tag, block) segments; text before the first tag is ignored.
fn tagged_segments<'f>(format: &'f Format, region: &str) -> Vec<(&'f str, Block)> {
    let tags = format.tags();
    // Positions of all tags (longest tag wins at a position).
    let mut found: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < region.len() {
        let here = &region[i..];
        if let Some(t) = tags
            .iter()
            .filter(|t| here.starts_with(**t))
            .max_by_key(|t| t.len())
        {
            found.push((i, t));
            i += t.len();
        } else {
            i += here.chars().next().map_or(1, char::len_utf8);
        }
    }
    let mut out = Vec::new();
    for (k, (pos, tag)) in found.iter().enumerate() {
        if *tag == format.end {
            break;
        }
        let start = pos + tag.len();
        let (end, terminated) = match found.get(k + 1) {
            Some((next, _)) => (*next, true),
            None => (region.len(), false),
        };
        out.push((
            *tag,
            Block {
                content: tidy(&region[start..end]),
                terminated,
            },
        ));
    }
    out
}

/// The single required block of `field`: the last one (fenced, as AZR) or the first one
/// (tagged); it must be closed and non-empty.
pub fn required_block(format: &Format, region: &str, field: Field) -> Result<String, FormatError> {
    let all = blocks(format, region, field);
    let name = format.name(field).to_string();
    let block = match format.style {
        BlockStyle::Fenced => all.last(),
        BlockStyle::Tagged => all.first(),
    }
    .ok_or_else(|| FormatError::MissingBlock(name.clone()))?;
    if !block.terminated {
        return Err(FormatError::Unterminated(name));
    }
    if block.content.trim().is_empty() {
        return Err(FormatError::EmptyBlock(name));
    }
    Ok(block.content.clone())
}

/// The first closed, non-empty block of `field` (proposals take the first, as AZR).
pub fn first_block(format: &Format, region: &str, field: Field) -> Result<String, FormatError> {
    let name = format.name(field).to_string();
    let block = blocks(format, region, field)
        .into_iter()
        .next()
        .ok_or_else(|| FormatError::MissingBlock(name.clone()))?;
    if !block.terminated {
        return Err(FormatError::Unterminated(name));
    }
    if block.content.trim().is_empty() {
        return Err(FormatError::EmptyBlock(name));
    }
    Ok(block.content)
}

/// The contents of the last `\boxed{...}` (or `\fbox{...}`) in `text`, braces matched.
pub fn last_boxed(text: &str) -> Option<String> {
    let pos = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|k| text.rfind(k).map(|p| (p, k.len())))
        .max_by_key(|(p, _)| *p)?;
    let after = &text[pos.0 + pos.1..];
    if let Some(body) = after.strip_prefix('{') {
        let mut depth = 1usize;
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(body[..i].trim().to_string());
                    }
                }
                _ => {}
            }
        }
        None
    } else if let Some(body) = after.strip_prefix(' ') {
        // `\boxed 5$` form.
        let end = body.find(['$', '\n']).unwrap_or(body.len());
        let v = body[..end].trim();
        (!v.is_empty()).then(|| v.to_string())
    } else {
        None
    }
}

/// Names of the functions a program defines (`def NAME(`), at any indentation.
pub fn defined_functions(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines() {
        let t = line.trim_start();
        let t = t.strip_prefix("async ").map(str::trim_start).unwrap_or(t);
        if let Some(rest) = t.strip_prefix("def ") {
            let rest = rest.trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && rest[name.len()..].trim_start().starts_with('(') {
                names.push(name);
            }
        }
    }
    names
}

/// AZR's program normalisation: there must be a function; with `reject_multiple` a second `def`
/// anywhere is refused; unless some function is already called `f`, the first function is renamed
/// to `f` (with its calls, e.g. recursion).
pub fn normalize_program(code: &str, reject_multiple: bool) -> Result<String, FormatError> {
    let names = defined_functions(code);
    let first = names.first().ok_or(FormatError::NoFunction)?;
    if reject_multiple && names.len() > 1 {
        return Err(FormatError::MultipleFunctions);
    }
    if names.iter().any(|n| n == "f") {
        return Ok(code.to_string());
    }
    Ok(rename_calls(code, first, "f"))
}

/// Replace the identifier `from` by `to` where it is followed by `(` (definition and calls).
fn rename_calls(code: &str, from: &str, to: &str) -> String {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let prev_ok = code[..i].chars().next_back().is_none_or(|c| !is_ident(c));
        if prev_ok && rest.starts_with(from) {
            let tail = &rest[from.len()..];
            let next_ok = tail.chars().next().is_none_or(|c| !is_ident(c));
            if next_ok && tail.trim_start().starts_with('(') {
                out.push_str(to);
                i += from.len();
                continue;
            }
        }
        let c = rest.chars().next().map_or(' ', |c| c);
        out.push(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::TemplateSet;

    fn paper() -> Format {
        TemplateSet::builtin("paper").unwrap().format
    }
    fn compact() -> Format {
        TemplateSet::builtin("compact").unwrap().format
    }

    #[test]
    fn wrapped_region_requires_think_then_answer() {
        let f = paper();
        let ok = " x </think>\n <answer>\n```output\n3\n```\n</answer> trailing";
        assert_eq!(
            answer_region(&f, "<think>", ok, true).unwrap(),
            "\n```output\n3\n```\n"
        );
        assert_eq!(
            answer_region(&f, "<think>", "x <answer>1</answer>", true),
            Err(FormatError::Wrapper)
        );
        assert_eq!(
            answer_region(&f, "<think>", "x </think> <answer>1", true),
            Err(FormatError::Wrapper)
        );
        assert_eq!(
            answer_region(&f, "<think>", "x </think> junk <answer>1</answer>", true),
            Err(FormatError::Wrapper)
        );
    }

    #[test]
    fn fenced_blocks_skip_other_names_and_detect_unterminated() {
        let f = paper();
        let r =
            "```python\ndef f(a):\n    return a\n```\ntext\n```Input  \n  'x' \n```\n```output\n1";
        assert_eq!(
            required_block(&f, r, Field::Program).unwrap(),
            "def f(a):\n    return a"
        );
        assert_eq!(required_block(&f, r, Field::Input).unwrap(), "'x'");
        assert_eq!(
            required_block(&f, r, Field::Output),
            Err(FormatError::Unterminated("output".into()))
        );
        assert_eq!(
            required_block(&f, r, Field::Message),
            Err(FormatError::MissingBlock("message".into()))
        );
        // `input_1` is not an `input` block.
        assert!(blocks(&f, "```input_1\n1\n```", Field::Input).is_empty());
    }

    #[test]
    fn tagged_segments_split_on_tags_and_stop_at_end() {
        let f = compact();
        let region = answer_region(
            &f,
            "<prog>",
            "def f(a):\n return a\n<in> 3<out>3<end><in>9<end>",
            false,
        )
        .unwrap();
        assert_eq!(
            required_block(&f, &region, Field::Program).unwrap(),
            "def f(a):\n return a"
        );
        assert_eq!(required_block(&f, &region, Field::Input).unwrap(), "3");
        assert_eq!(blocks(&f, &region, Field::Input).len(), 1);
        let open = answer_region(&f, "<out>", "12", false).unwrap();
        assert_eq!(
            required_block(&f, &open, Field::Output),
            Err(FormatError::Unterminated("<out>".into()))
        );
    }

    #[test]
    fn boxed_extraction_matches_braces() {
        assert_eq!(
            last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}} end").as_deref(),
            Some("\\frac{1}{2}")
        );
        assert_eq!(last_boxed("\\boxed 7$").as_deref(), Some("7"));
        assert_eq!(last_boxed("\\boxed{1"), None);
        assert_eq!(last_boxed("no box"), None);
        assert_eq!(last_boxed("\\fbox{x}").as_deref(), Some("x"));
    }

    #[test]
    fn programs_are_renamed_and_checked() {
        assert_eq!(
            normalize_program("def g(n):\n    return 1 if n < 1 else g (n-1)+gg(1)", true).unwrap(),
            "def f(n):\n    return 1 if n < 1 else f (n-1)+gg(1)"
        );
        assert_eq!(
            normalize_program("x = 1", true),
            Err(FormatError::NoFunction)
        );
        let two = "def f(a):\n    def h(b):\n        return b\n    return h(a)";
        assert_eq!(
            normalize_program(two, true),
            Err(FormatError::MultipleFunctions)
        );
        assert_eq!(normalize_program(two, false).unwrap(), two);
    }
}
