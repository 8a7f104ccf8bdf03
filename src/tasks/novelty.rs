//! Program shapes and proposal novelty.
//!
//! A program's **shape** is its token sequence with everything a rename or a new constant would
//! change taken out, so that two proposals with the same shape are the same program up to
//! naming and constants:
//! * local identifiers (the function, its parameters, assigned and loop variables, lambda
//!   parameters, names bound by `as`, `global`, `class`) become `v0`, `v1`, ... in order of
//!   first occurrence;
//! * keywords, builtins that the program does not rebind, attribute and method names (after
//!   `.`), keyword-argument names of calls and the names of `import` statements are kept;
//! * every numeric literal becomes `N` (a sign directly in front of it included: `-1` is a
//!   constant), every string literal `S` (prefixes, quotes and contents alike);
//! * comments, blank lines and docstring-like string statements are dropped; whitespace is
//!   normalised: tokens are joined by one space, a logical line (brackets and `\` continue it)
//!   becomes one line indented by one space per block level, `a; b` becomes two lines and the
//!   inline body of `if c: x` a line of its own.
//!
//! The lexer is a small Python tokenizer written here (no Python needed); it never fails, and on
//! text that is not Python it still returns a deterministic shape.
//!
//! [`corpus_shapes`] is the set of shapes the pretraining corpus contains (every template the
//! training side of [`crate::pretrain`] draws from); [`ShapeMemory`] remembers the shapes of the
//! tasks admitted to the task buffers. A valid proposal is **novel** when its shape is in
//! neither ([`ShapeMemory::observe`]).

use crate::pretrain::chains::{all_chains, ChainSplit};
use crate::pretrain::generator::stable_hash;
use crate::pretrain::templates::TEMPLATES;
use crate::types::TaskKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

/// Python's keywords (soft keywords such as `match` are names).
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Builtin functions, types, constants and common exceptions: kept unless the program rebinds
/// them.
const BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "complex",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "locals",
    "map",
    "max",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
    "__import__",
    "NotImplemented",
    "Ellipsis",
    "Exception",
    "BaseException",
    "ValueError",
    "TypeError",
    "KeyError",
    "IndexError",
    "ZeroDivisionError",
    "StopIteration",
    "RuntimeError",
    "AssertionError",
    "AttributeError",
    "NotImplementedError",
    "ArithmeticError",
    "LookupError",
    "OverflowError",
    "RecursionError",
];

/// Operators and delimiters of more than one character, longest first.
const MULTI_OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "**", "//", "==", "!=", "<=", ">=", "->", "+=", "-=", "*=",
    "/=", "%=", "&=", "|=", "^=", "@=", ":=", "<<", ">>",
];

/// Assignment operators (a name before one, outside brackets, is bound).
const ASSIGN_OPS: &[&str] = &[
    "=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", ">>=", "<<=", "&=", "|=", "^=", "@=",
];

/// Statements that end with a `:` and a block.
const COMPOUND: &[&str] = &[
    "if", "elif", "else", "for", "while", "def", "class", "with", "try", "except", "finally",
    "async",
];

/// One token of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword.
    Name(String),
    /// A numeric literal.
    Num,
    /// A string literal.
    Str,
    /// An operator or delimiter.
    Op(String),
}

impl Tok {
    fn is_op(&self, op: &str) -> bool {
        matches!(self, Tok::Op(o) if o == op)
    }
    fn is_name(&self, name: &str) -> bool {
        matches!(self, Tok::Name(n) if n == name)
    }
}

/// A logical line: the width of its indentation and its tokens.
struct RawLine {
    indent: usize,
    toks: Vec<Tok>,
}

/// Split `code` into logical lines of tokens (comments dropped, bracketed and `\`-continued
/// lines joined).
fn lex(code: &str) -> Vec<RawLine> {
    let chars: Vec<char> = code.chars().collect();
    let mut lines = Vec::new();
    let mut toks: Vec<Tok> = Vec::new();
    let mut indent = 0usize;
    let mut at_line_start = true;
    let mut depth = 0usize;
    let mut i = 0;
    let n = chars.len();
    let end_line = |toks: &mut Vec<Tok>, lines: &mut Vec<RawLine>, indent: usize| {
        if !toks.is_empty() {
            lines.push(RawLine {
                indent,
                toks: std::mem::take(toks),
            });
        }
    };
    while i < n {
        let c = chars[i];
        if at_line_start {
            // Measure the indentation of a new logical line (tabs to the next multiple of 8).
            let mut w = 0;
            while i < n && (chars[i] == ' ' || chars[i] == '\t' || chars[i] == '\x0c') {
                w = if chars[i] == '\t' {
                    (w / 8 + 1) * 8
                } else {
                    w + 1
                };
                i += 1;
            }
            indent = w;
            at_line_start = false;
            continue;
        }
        match c {
            '\n' | '\r' => {
                i += 1;
                if depth == 0 {
                    end_line(&mut toks, &mut lines, indent);
                    at_line_start = true;
                }
            }
            ' ' | '\t' | '\x0c' => i += 1,
            '#' => {
                while i < n && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\\' if i + 1 < n && (chars[i + 1] == '\n' || chars[i + 1] == '\r') => {
                i += 2;
                if i < n && chars[i - 1] == '\r' && chars[i] == '\n' {
                    i += 1;
                }
            }
            '\'' | '"' => {
                i = skip_string(&chars, i);
                toks.push(Tok::Str);
            }
            c if c.is_ascii_digit() || (c == '.' && i + 1 < n && chars[i + 1].is_ascii_digit()) => {
                i = skip_number(&chars, i);
                toks.push(Tok::Num);
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if i < n && (chars[i] == '\'' || chars[i] == '"') && is_string_prefix(&word) {
                    i = skip_string(&chars, i);
                    toks.push(Tok::Str);
                } else {
                    toks.push(Tok::Name(word));
                }
            }
            _ => {
                let rest: String = chars[i..n.min(i + 3)].iter().collect();
                let op = MULTI_OPS
                    .iter()
                    .find(|op| rest.starts_with(**op))
                    .map_or_else(|| c.to_string(), |op| (*op).to_string());
                match op.as_str() {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                i += op.chars().count();
                toks.push(Tok::Op(op));
            }
        }
    }
    end_line(&mut toks, &mut lines, indent);
    lines
}

/// Whether `w` may prefix a string literal (`r`, `b`, `f`, `u`, `rb`, `br`, `fr`, `rf`, any case).
fn is_string_prefix(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "r" | "b" | "f" | "u" | "rb" | "br" | "fr" | "rf"
    )
}

/// The index just past the string literal whose opening quote is at `i` (single or triple
/// quoted; a backslash always escapes the next character; an unterminated string runs to the
/// end of its line, or of the text when triple quoted).
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let q = chars[i];
    let n = chars.len();
    let triple = i + 2 < n && chars[i + 1] == q && chars[i + 2] == q;
    i += if triple { 3 } else { 1 };
    while i < n {
        let c = chars[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if triple {
            if c == q && i + 2 < n && chars[i + 1] == q && chars[i + 2] == q {
                return i + 3;
            }
        } else if c == q {
            return i + 1;
        } else if c == '\n' {
            return i;
        }
        i += 1;
    }
    n
}

/// The index just past the numeric literal starting at `i` (ints, floats, exponents, hex, octal
/// and binary, `_` separators, imaginary `j`).
fn skip_number(chars: &[char], mut i: usize) -> usize {
    let n = chars.len();
    let hex = chars[i] == '0' && i + 1 < n && matches!(chars[i + 1], 'x' | 'X');
    while i < n {
        let c = chars[i];
        if c.is_ascii_alphanumeric() || c == '_' {
            if !hex && matches!(c, 'e' | 'E') && i + 1 < n && matches!(chars[i + 1], '+' | '-') {
                i += 2;
                continue;
            }
            i += 1;
        } else if c == '.' && !(i + 1 < n && chars[i + 1] == '.') {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Turn indentation widths into block levels (a dedent to a width never seen closes the blocks
/// wider than it).
fn levels(lines: &[RawLine]) -> Vec<usize> {
    let mut stack: Vec<usize> = vec![0];
    lines
        .iter()
        .map(|l| {
            while stack.len() > 1 && l.indent < stack[stack.len() - 1] {
                stack.pop();
            }
            if l.indent > stack[stack.len() - 1] {
                stack.push(l.indent);
            }
            stack.len() - 1
        })
        .collect()
}

/// Split a statement list: the inline body of a compound header (`if c: x`) becomes a line one
/// level deeper, and `;` separates statements.
fn split_statements(level: usize, toks: Vec<Tok>, out: &mut Vec<(usize, Vec<Tok>)>) {
    if toks
        .first()
        .is_some_and(|t| COMPOUND.iter().any(|k| t.is_name(k)))
    {
        if let Some(colon) = header_colon(&toks) {
            if colon + 1 < toks.len() {
                let mut toks = toks;
                let body = toks.split_off(colon + 1);
                out.push((level, toks));
                split_statements(level + 1, body, out);
                return;
            }
        }
    }
    let mut depth = 0usize;
    let mut cur = Vec::new();
    for t in toks {
        if let Tok::Op(o) = &t {
            match o.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth = depth.saturating_sub(1),
                ";" if depth == 0 => {
                    if !cur.is_empty() {
                        out.push((level, std::mem::take(&mut cur)));
                    }
                    continue;
                }
                _ => {}
            }
        }
        cur.push(t);
    }
    if !cur.is_empty() {
        out.push((level, cur));
    }
}

/// The index of the `:` that ends a compound statement's header: the first one outside brackets
/// and outside a `lambda`'s parameters.
fn header_colon(toks: &[Tok]) -> Option<usize> {
    let mut depth = 0usize;
    let mut lambdas = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Op(o) if matches!(o.as_str(), "(" | "[" | "{") => depth += 1,
            Tok::Op(o) if matches!(o.as_str(), ")" | "]" | "}") => depth = depth.saturating_sub(1),
            Tok::Name(n) if n == "lambda" && depth == 0 => lambdas += 1,
            Tok::Op(o) if o == ":" && depth == 0 => {
                if lambdas > 0 {
                    lambdas -= 1;
                } else {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The names a program binds (so they are locals even when they spell a builtin) and the names
/// of its `import` statements (kept as written).
fn bindings(lines: &[(usize, Vec<Tok>)]) -> (HashSet<String>, HashSet<String>) {
    let mut bound = HashSet::new();
    let mut imported = HashSet::new();
    for (_, toks) in lines {
        let name_at = |i: usize| match toks.get(i) {
            Some(Tok::Name(n)) if !KEYWORDS.contains(&n.as_str()) => Some(n.clone()),
            _ => None,
        };
        let first_is = |k: &str| toks.first().is_some_and(|t| t.is_name(k));
        if first_is("import") || first_is("from") {
            for t in toks {
                if let Tok::Name(n) = t {
                    if !KEYWORDS.contains(&n.as_str()) {
                        imported.insert(n.clone());
                    }
                }
            }
            continue;
        }
        // `global` / `nonlocal` names.
        if first_is("global") || first_is("nonlocal") {
            bound.extend((1..toks.len()).filter_map(name_at));
            continue;
        }
        let mut depth = 0usize;
        // Depth of the parameter list of a `def` line, or of a `lambda`'s parameters.
        let def_line =
            first_is("def") || (first_is("async") && toks.get(1).is_some_and(|t| t.is_name("def")));
        let mut in_lambda: Vec<usize> = Vec::new();
        let mut in_for = false;
        let assign = top_level_assign(toks);
        for (i, t) in toks.iter().enumerate() {
            let prev = i.checked_sub(1).and_then(|p| toks.get(p));
            let next = toks.get(i + 1);
            match t {
                Tok::Op(o) if matches!(o.as_str(), "(" | "[" | "{") => depth += 1,
                Tok::Op(o) if matches!(o.as_str(), ")" | "]" | "}") => {
                    depth = depth.saturating_sub(1)
                }
                Tok::Op(o) if o == ":" && in_lambda.last() == Some(&depth) => {
                    in_lambda.pop();
                }
                Tok::Name(n) if n == "lambda" => in_lambda.push(depth),
                Tok::Name(n) if n == "for" => in_for = true,
                Tok::Name(n) if n == "in" => in_for = false,
                Tok::Name(n) if !KEYWORDS.contains(&n.as_str()) => {
                    let after_dot = prev.is_some_and(|p| p.is_op("."));
                    let param_slot = prev.is_none_or(|p| {
                        matches!(p, Tok::Op(o) if matches!(o.as_str(), "(" | "," | "*" | "**"))
                            || p.is_name("lambda")
                    });
                    let binds = (prev.is_some_and(|p| p.is_name("def") || p.is_name("class")))
                        || (def_line && depth == 1 && param_slot)
                        || (!in_lambda.is_empty() && param_slot)
                        || (in_for && !after_dot)
                        || prev.is_some_and(|p| p.is_name("as"))
                        || next.is_some_and(|x| x.is_op(":="))
                        || assign.is_some_and(|a| {
                            i < a
                                && !after_dot
                                && next
                                    .is_none_or(|x| !x.is_op("[") && !x.is_op(".") && !x.is_op("("))
                        });
                    if binds {
                        bound.insert(n.clone());
                    }
                }
                _ => {}
            }
        }
    }
    (bound, imported)
}

/// The index of a statement's last assignment operator outside brackets, if it has one.
fn top_level_assign(toks: &[Tok]) -> Option<usize> {
    let mut depth = 0usize;
    let mut found = None;
    for (i, t) in toks.iter().enumerate() {
        if let Tok::Op(o) = t {
            match o.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth = depth.saturating_sub(1),
                o if depth == 0 && ASSIGN_OPS.contains(&o) => found = Some(i),
                _ => {}
            }
        }
    }
    found
}

/// Whether a `+`/`-` before a number is a sign (not a binary operator) after `prev`.
fn is_sign_position(prev: Option<&Tok>) -> bool {
    match prev {
        None => true,
        Some(Tok::Op(o)) => !matches!(o.as_str(), ")" | "]" | "}"),
        Some(Tok::Name(n)) => {
            KEYWORDS.contains(&n.as_str()) && !matches!(n.as_str(), "True" | "False" | "None")
        }
        Some(Tok::Num | Tok::Str) => false,
    }
}

/// The normalised shape of a Python program (see the module docs).
pub fn program_shape(code: &str) -> String {
    let raw = lex(code);
    let lv = levels(&raw);
    let mut lines: Vec<(usize, Vec<Tok>)> = Vec::new();
    for (l, r) in lv.into_iter().zip(raw) {
        split_statements(l, r.toks, &mut lines);
    }
    // A statement that is only a string (a docstring) does nothing.
    lines.retain(|(_, t)| !(t.len() == 1 && t[0] == Tok::Str));
    let (bound, imported) = bindings(&lines);
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = String::new();
    for (level, toks) in &lines {
        if !out.is_empty() {
            out.push('\n');
        }
        for _ in 0..*level {
            out.push(' ');
        }
        let mut depth = 0usize;
        let mut first = true;
        let mut push = |out: &mut String, s: &str| {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(s);
        };
        for (i, t) in toks.iter().enumerate() {
            let prev = i.checked_sub(1).and_then(|p| toks.get(p));
            let next = toks.get(i + 1);
            match t {
                Tok::Num => push(&mut out, "N"),
                Tok::Str => push(&mut out, "S"),
                Tok::Op(o) => {
                    match o.as_str() {
                        "(" | "[" | "{" => depth += 1,
                        ")" | "]" | "}" => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    // A sign glued to a constant is part of the constant.
                    if (o == "-" || o == "+") && next == Some(&Tok::Num) && is_sign_position(prev) {
                        continue;
                    }
                    push(&mut out, o);
                }
                Tok::Name(n) => {
                    let keep = KEYWORDS.contains(&n.as_str())
                        || prev.is_some_and(|p| p.is_op("."))
                        || imported.contains(n)
                        || (!bound.contains(n)
                            && (BUILTINS.contains(&n.as_str())
                                || (depth > 0
                                    && next.is_some_and(|x| x.is_op("="))
                                    && prev.is_some_and(|p| p.is_op("(") || p.is_op(",")))));
                    if keep {
                        push(&mut out, n);
                    } else {
                        let k = names.len();
                        let id = *names.entry(n.clone()).or_insert(k);
                        push(&mut out, &format!("v{id}"));
                    }
                }
            }
        }
    }
    out
}

/// A stable 64-bit key of a shape (FNV-1a: the same across runs, builds and platforms, so a
/// checkpointed memory stays valid).
pub fn shape_hash(shape: &str) -> u64 {
    stable_hash(shape.as_bytes())
}

/// Programs drawn per template to build [`corpus_shapes`]: constants never change a shape
/// (tested), so one draw would do; a few more guard against a template whose structure depends
/// on its random draw.
pub const CORPUS_DRAWS_PER_TEMPLATE: usize = 8;

/// The shapes of the pretraining corpus: every template on the training side of the
/// [`crate::pretrain`] split (the `unseen` templates and the `compose` family never reach the
/// corpus, so their shapes are not in it), drawn [`CORPUS_DRAWS_PER_TEMPLATE`] times with a fixed
/// seed, and every [chain](crate::pretrain::chains) the default [`ChainSplit`] (a quarter held
/// out) lets through. The chains are counted whether or not the model's corpus had them
/// (`[corpus] chain`), which only makes novelty stricter for a base pretrained without them.
pub fn corpus_shapes() -> &'static CorpusShapes {
    corpus_shapes_for(ChainSplit::default())
}

/// [`corpus_shapes`] for a base whose corpus held out the chain shapes of `split`. Each split's
/// set is built once, on first use (a few milliseconds: a few thousand short programs).
pub fn corpus_shapes_for(split: ChainSplit) -> &'static CorpusShapes {
    static CORPUS: [OnceLock<CorpusShapes>; ChainSplit::SHARES.len()] =
        [const { OnceLock::new() }; ChainSplit::SHARES.len()];
    CORPUS[split.index()].get_or_init(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut shapes = BTreeMap::new();
        for t in TEMPLATES.iter().filter(|t| !t.unseen) {
            for _ in 0..CORPUS_DRAWS_PER_TEMPLATE {
                let s = program_shape(&t.program(&mut rng));
                shapes.entry(shape_hash(&s)).or_insert(s);
            }
        }
        // One shape per chain serves both the split and the set (`Chain::unseen` would
        // normalise the program a second time).
        for s in all_chains().iter().map(|c| c.shape()) {
            if !split.is_unseen(&s) {
                shapes.entry(shape_hash(&s)).or_insert(s);
            }
        }
        CorpusShapes { shapes }
    })
}

/// The set of shapes of the pretraining corpus ([`corpus_shapes`]).
#[derive(Debug, Clone)]
pub struct CorpusShapes {
    shapes: BTreeMap<u64, String>,
}

impl CorpusShapes {
    /// Whether the corpus has the shape of key `hash` ([`shape_hash`]).
    pub fn contains(&self, hash: u64) -> bool {
        self.shapes.contains_key(&hash)
    }

    /// Number of distinct shapes.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// Whether the corpus has no shape (never: there are templates).
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    /// The shapes, by key.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.shapes.values().map(String::as_str)
    }
}

/// What [`ShapeMemory::observe`] found for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeSeen {
    /// The task's program shape.
    pub shape: String,
    /// Neither in the pretraining corpus nor among the shapes already remembered (of any kind).
    pub novel: bool,
    /// The share of this kind's earlier observations that had this shape, in [0, 1] (0 for a
    /// kind's first observation): how much the proposer has been repeating it.
    #[serde(default)]
    pub share: f32,
}

/// Serialised form: per kind, `(shape key, times observed)` sorted by key.
type MemoryRepr = BTreeMap<TaskKind, Vec<(u64, u32)>>;

/// The persistent memory of program shapes admitted to the task buffers: per task kind, how many
/// times each shape (by [`shape_hash`]) was observed. It only grows (a task evicted from a
/// buffer keeps its shape here) and is checkpointed with the buffers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MemoryRepr", into = "MemoryRepr")]
pub struct ShapeMemory {
    kinds: BTreeMap<TaskKind, HashMap<u64, u32>>,
    /// The chain shapes the base model's corpus held out ([`corpus_shapes_for`]); not
    /// checkpointed: the run sets it from `tasks.chain_unseen` ([`ShapeMemory::set_chain_split`]).
    split: ChainSplit,
}

impl From<MemoryRepr> for ShapeMemory {
    fn from(r: MemoryRepr) -> Self {
        Self {
            kinds: r
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            split: ChainSplit::default(),
        }
    }
}

impl From<ShapeMemory> for MemoryRepr {
    fn from(m: ShapeMemory) -> Self {
        m.kinds
            .into_iter()
            .map(|(k, v)| {
                let mut v: Vec<(u64, u32)> = v.into_iter().collect();
                v.sort_unstable();
                (k, v)
            })
            .collect()
    }
}

impl ShapeMemory {
    /// Count as the pretraining corpus the shapes of a base that held out the chain shapes of
    /// `split` (default: a quarter, `assets/chain-base` and every template-only base).
    pub fn set_chain_split(&mut self, split: ChainSplit) {
        self.split = split;
    }

    /// The chain split novelty is judged against.
    pub fn chain_split(&self) -> ChainSplit {
        self.split
    }

    /// Whether any kind has observed the shape of key `hash`.
    pub fn contains(&self, hash: u64) -> bool {
        self.kinds.values().any(|m| m.contains_key(&hash))
    }

    /// Times `kind` observed the shape of key `hash`.
    pub fn count(&self, kind: TaskKind, hash: u64) -> u32 {
        self.kinds
            .get(&kind)
            .and_then(|m| m.get(&hash))
            .copied()
            .unwrap_or(0)
    }

    /// Distinct shapes `kind` observed.
    pub fn distinct(&self, kind: TaskKind) -> usize {
        self.kinds.get(&kind).map_or(0, HashMap::len)
    }

    /// Observations `kind` made, counting repeats.
    pub fn total(&self, kind: TaskKind) -> u64 {
        self.kinds
            .get(&kind)
            .map_or(0, |m| m.values().map(|&c| u64::from(c)).sum())
    }

    /// Remember the shape of `program`, observed by `kind`, and say whether it was novel (in
    /// neither the pretraining corpus nor this memory, of any kind, before this call) and what
    /// share of `kind`'s earlier observations had the same shape.
    pub fn observe(&mut self, kind: TaskKind, program: &str) -> ShapeSeen {
        let shape = program_shape(program);
        let h = shape_hash(&shape);
        let novel = !corpus_shapes_for(self.split).contains(h) && !self.contains(h);
        let total = self.total(kind);
        let share = if total == 0 {
            0.0
        } else {
            (f64::from(self.count(kind, h)) / total as f64) as f32
        };
        let c = self.kinds.entry(kind).or_default().entry(h).or_insert(0);
        *c = c.saturating_add(1);
        ShapeSeen {
            shape,
            novel,
            share,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretrain::generator::{ProgramGenerator, Split};
    use crate::pretrain::templates::Family;

    #[test]
    fn renaming_and_constants_keep_the_shape() {
        let a = program_shape("def f(a, b):\n c = a + b\n return c * 3");
        assert_eq!(a, "def v0 ( v1 , v2 ) :\n v3 = v1 + v2\n return v3 * N");
        // Other names, another constant, 4-space indentation, a comment, a blank line.
        let b = program_shape("def g(x,y):\n\n    total = x+y   # sum\n    return total*17");
        assert_eq!(a, b);
        // Strings: any quotes, prefix or contents are one token.
        assert_eq!(
            program_shape("def f(s):\n return s + 'ab'"),
            program_shape("def f(t):\n return t + r\"x'y\\\"\"")
        );
        // A sign is part of its constant; floats, hex and exponents are constants.
        assert_eq!(
            program_shape("def f(x):\n return x[-1] + 2.5e-3"),
            program_shape("def f(x):\n return x[0] + 0x1F")
        );
        assert_eq!(
            program_shape("def f(x):\n return x[-1] + 2.5e-3"),
            "def v0 ( v1 ) :\n return v1 [ N ] + N"
        );
    }

    #[test]
    fn operators_and_structure_change_the_shape() {
        let base = program_shape("def f(a, b):\n c = a + b\n return c * 3");
        for other in [
            "def f(a, b):\n c = a - b\n return c * 3",
            "def f(a, b):\n c = a + b\n return c // 3",
            "def f(a, b):\n c = b + a\n return c * 3",
            "def f(a, b):\n return (a + b) * 3",
            "def f(a, b):\n c = a + b\n if c > 1:\n  return c * 3\n return c",
            "def f(a, b):\n c = a + b\n return c * 'x'",
            "def f(a, b):\n c = a + b\n return c * 3 - 1",
        ] {
            assert_ne!(program_shape(other), base, "{other}");
        }
        // A binary minus stays an operator.
        assert_eq!(
            program_shape("def f(a):\n return a - 1"),
            "def v0 ( v1 ) :\n return v1 - N"
        );
    }

    #[test]
    fn builtins_keywords_attributes_and_keyword_arguments_are_kept() {
        assert_eq!(
            program_shape("def f(x):\n return sorted(x, reverse=True)[::-1]"),
            "def v0 ( v1 ) :\n return sorted ( v1 , reverse = True ) [ : : N ]"
        );
        assert_eq!(
            program_shape("def f(s):\n return s.upper().count('a') is None"),
            "def v0 ( v1 ) :\n return v1 . upper ( ) . count ( S ) is None"
        );
        // A rebound builtin is a local like any other.
        assert_eq!(
            program_shape("def f(x):\n sum = 0\n for v in x:\n  sum += v\n return sum"),
            program_shape("def f(x):\n t = 0\n for v in x:\n  t += v\n return t")
        );
        // `sum` used as the builtin is not.
        assert_ne!(
            program_shape("def f(x):\n return sum(x)"),
            program_shape("def f(x):\n return g(x)")
        );
        // Import names are kept; the names they bind are not renamed.
        assert_eq!(
            program_shape("import math\ndef f(a):\n return math.sqrt(a)"),
            "import math\ndef v0 ( v1 ) :\n return math . sqrt ( v1 )"
        );
        // A keyword argument that names a parameter of a local function follows its renaming.
        assert_eq!(
            program_shape("def f(a):\n def g(n=1):\n  return n\n return g(n=a)"),
            program_shape("def f(b):\n def h(m=2):\n  return m\n return h(m=b)")
        );
    }

    #[test]
    fn layout_is_normalised() {
        let flat = program_shape("def f(a):\n if a > 3: return a; return 0");
        let spread = program_shape("def f(a):\n    if a > 3:\n        return a\n    return 0");
        assert_eq!(
            flat,
            "def v0 ( v1 ) :\n if v1 > N :\n  return v1\n  return N"
        );
        // In the flat one `return 0` belongs to the `if` body; otherwise the same tokens.
        assert_ne!(flat, spread);
        assert_eq!(
            program_shape("def f(a):\n if a > 3: return a\n return 0"),
            spread
        );
        // Brackets and backslashes continue a line; docstrings and comments vanish.
        assert_eq!(
            program_shape("def f(x):\n    \"\"\"Doc.\n    more\"\"\"\n    return [v +\n       1 for v in x] \\\n   + x  # c"),
            program_shape("def f(y):\n return [w + 2 for w in y] + y")
        );
        // Lambdas: the parameters are locals, the colon is not a block.
        assert_eq!(
            program_shape("def f(x):\n return sorted(x, key=lambda v: -v)"),
            "def v0 ( v1 ) :\n return sorted ( v1 , key = lambda v2 : - v2 )"
        );
        // Text that is not Python still has a (deterministic) shape.
        assert_eq!(program_shape("'unterminated"), program_shape("\"x"));
        assert_eq!(program_shape(""), "");
    }

    #[test]
    fn every_template_has_one_shape_and_the_corpus_is_its_training_side() {
        // Constants never change a template's shape.
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        for t in TEMPLATES {
            let shapes: HashSet<String> = (0..32)
                .map(|_| program_shape(&t.program(&mut rng)))
                .collect();
            assert_eq!(shapes.len(), 1, "template {} has shapes {shapes:?}", t.name);
        }
        let corpus = corpus_shapes();
        // The training stream of `azr pretrain` (seed 0, config/tiny-pretrain.toml) draws
        // exactly these shapes.
        let mut g = ProgramGenerator::new(0, Split::Train);
        let drawn: HashSet<u64> = (0..3000)
            .map(|_| shape_hash(&program_shape(&g.next_program(1).unwrap().code)))
            .collect();
        let mut crng = ChaCha8Rng::seed_from_u64(1);
        let seen_chains: HashSet<u64> = all_chains()
            .iter()
            .filter(|c| !c.unseen(ChainSplit::default()))
            .map(|c| shape_hash(&program_shape(&c.program(&mut crng))))
            .collect();
        let all: HashSet<u64> = corpus.shapes.keys().copied().collect();
        let union: HashSet<u64> = drawn.union(&seen_chains).copied().collect();
        assert_eq!(union, all);
        // A stream with chains draws only corpus shapes too.
        let mut g = ProgramGenerator::new(5, Split::Train).with_chains(0.5);
        for _ in 0..2000 {
            let code = g.next_program(1).unwrap().code;
            assert!(corpus.contains(shape_hash(&program_shape(&code))), "{code}");
        }
        // Unseen chains are split off by shape, so none shares one with a seen chain; the
        // rare one that reads like a seen template (`b = a * 2; return b - 3`) is in the
        // corpus through the template.
        let unseen: Vec<u64> = all_chains()
            .iter()
            .filter(|c| c.unseen(ChainSplit::default()))
            .map(|c| shape_hash(&c.shape()))
            .collect();
        let outside = unseen.iter().filter(|h| !corpus.contains(**h)).count();
        assert!(
            outside * 100 > unseen.len() * 98,
            "{outside} of {}",
            unseen.len()
        );
        // Held-out (unseen) templates with a shape of their own are not in the corpus.
        let sorted_last = TEMPLATES.iter().find(|t| t.name == "sorted_last").unwrap();
        assert_eq!(sorted_last.family, Family::Compose);
        let s = program_shape(&sorted_last.program(&mut rng));
        assert!(!corpus.contains(shape_hash(&s)), "{s}");
        assert!(
            drawn.len() > 40 && drawn.len() <= TEMPLATES.len(),
            "{}",
            drawn.len()
        );
        // 51 template shapes and 3,005 seen chain shapes, one of them shared. The corpus defines
        // what counts as novel: a change to it must be deliberate (and the README's counts kept).
        assert_eq!(corpus.len(), 3055);
    }

    #[test]
    fn a_base_that_held_out_more_chains_has_fewer_corpus_shapes_and_its_memory_says_so() {
        let quarter = corpus_shapes();
        let half_split = ChainSplit::from_share(0.5).unwrap();
        let half = corpus_shapes_for(half_split);
        assert!(std::ptr::eq(
            quarter,
            corpus_shapes_for(ChainSplit::default())
        ));
        // Nested: every shape of the smaller corpus is in the larger one.
        assert!(
            half.len() < quarter.len() - 900,
            "{} {}",
            half.len(),
            quarter.len()
        );
        for s in half.iter() {
            assert!(quarter.contains(shape_hash(s)), "{s}");
        }
        // A chain held out by the half split only: in the quarter's corpus, novel for a memory
        // judged against the half split (and once only), never novel against the quarter's.
        let chain = all_chains()
            .into_iter()
            .find(|c| c.unseen(half_split) && !c.unseen(ChainSplit::default()))
            .unwrap();
        let program = chain.program(&mut ChaCha8Rng::seed_from_u64(3));
        let mut q = ShapeMemory::default();
        assert!(!q.observe(TaskKind::Deduction, &program).novel);
        let mut h = ShapeMemory::default();
        h.set_chain_split(half_split);
        assert_eq!(h.chain_split(), half_split);
        assert!(h.observe(TaskKind::Deduction, &program).novel);
        assert!(!h.observe(TaskKind::Abduction, &program).novel);
        // The split is the run's, not the checkpoint's: a restored memory has the default.
        let back: ShapeMemory = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back.chain_split(), ChainSplit::default());
    }

    #[test]
    fn memory_says_novel_once_per_shape_across_kinds_and_survives_serde() {
        let mut m = ShapeMemory::default();
        let (d, a) = (TaskKind::Deduction, TaskKind::Abduction);
        // A corpus shape (template `add_k`) is never novel.
        let seen = m.observe(d, "def f(a):\n return a + 5");
        assert!(!seen.novel);
        // A new shape is novel the first time only, whatever the names, constants or kind.
        let p = "def f(a):\n b = a * a\n return b - a + 7";
        assert!(m.observe(d, p).novel);
        assert!(
            !m.observe(d, "def f(q):\n r = q * q\n return r - q + 1")
                .novel
        );
        assert!(!m.observe(a, p).novel);
        assert_eq!(m.distinct(d), 2);
        assert_eq!(m.distinct(a), 1);
        let h = shape_hash(&program_shape(p));
        assert_eq!((m.count(d, h), m.count(a, h)), (2, 1));
        let json = serde_json::to_string(&m).unwrap();
        let back: ShapeMemory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert!(!back.clone().observe(a, p).novel);
    }

    #[test]
    fn share_is_the_fraction_of_the_kinds_earlier_observations_with_the_shape() {
        let mut m = ShapeMemory::default();
        let (d, a) = (TaskKind::Deduction, TaskKind::Abduction);
        let add = "def f(a):\n return a + 5";
        let len = "def f(x):\n return len(x)";
        // First observation of a kind: nothing earlier, share 0.
        assert_eq!(m.observe(d, add).share, 0.0);
        // 1 of 1 earlier deduction observations had this shape (another constant).
        assert_eq!(m.observe(d, "def f(b):\n return b + 9").share, 1.0);
        // A new shape: 0 of 2.
        assert_eq!(m.observe(d, len).share, 0.0);
        // `add` again: 2 of 3; `len` again: 1 of 4.
        assert!((m.observe(d, add).share - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(m.observe(d, len).share, 0.25);
        assert_eq!(m.total(d), 5);
        // Kinds count separately: abduction has seen nothing yet.
        assert_eq!(m.observe(a, add).share, 0.0);
        // The counts behind the share survive serde.
        let back: ShapeMemory = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.clone().observe(d, add).share, 0.6);
    }
}
