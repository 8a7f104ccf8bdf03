//! The program templates of the procedural pretraining corpus.
//!
//! Each [`Template`] is a small Python function body (1-6 lines, 1-space indentation, which is
//! valid Python and keeps sequences short) with random small constants, over typed arguments.
//! Templates are grouped in [`Family`]s. Templates flagged `unseen` never appear in the
//! training stream; the whole [`Family::Compose`] family is unseen (compositions of the seen
//! operations), so the held-out set measures generalisation beyond the training templates.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A family of program templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// One integer argument, one arithmetic operation.
    Arith1,
    /// Two integer arguments, one or two operations.
    Arith2,
    /// String slicing and methods.
    Str,
    /// Aggregates over a list of ints.
    ListAgg,
    /// List-to-list transforms.
    ListTx,
    /// Dicts from short strings to ints.
    Dict,
    /// Conditional expressions and `if` statements.
    Cond,
    /// `for` loops with accumulators.
    Loop,
    /// Compositions of two seen operations; held out of training entirely.
    Compose,
    /// Statement chains of two or three typed primitive operations, built by
    /// [`super::chains`] rather than from a template (in the training stream only when
    /// `[corpus] chain` is above 0; never in the held-out or validation sets).
    Chain,
}

impl Family {
    /// Every template family, in a fixed order (the held-out and validation sets draw from
    /// these; [`Family::Chain`] has no templates and is not among them).
    pub const ALL: [Family; 9] = [
        Family::Arith1,
        Family::Arith2,
        Family::Str,
        Family::ListAgg,
        Family::ListTx,
        Family::Dict,
        Family::Cond,
        Family::Loop,
        Family::Compose,
    ];

    /// Snake-case name used in JSONL files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Arith1 => "arith1",
            Family::Arith2 => "arith2",
            Family::Str => "str",
            Family::ListAgg => "list_agg",
            Family::ListTx => "list_tx",
            Family::Dict => "dict",
            Family::Cond => "cond",
            Family::Loop => "loop",
            Family::Compose => "compose",
            Family::Chain => "chain",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of one argument of a template, which decides how inputs are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// An int in `0..=30`.
    Int,
    /// A string of 1-6 letters from `a-h`.
    Str,
    /// A list of 1-5 ints in `0..=20`.
    IntList,
    /// A dict of 1-3 distinct one-letter keys from `a-e` to ints in `0..=9`.
    Dict,
}

/// A program template: a family, a name, typed named arguments and a body builder.
pub struct Template {
    /// Unique name (used for per-template reports and JSONL).
    pub name: &'static str,
    /// The family it belongs to.
    pub family: Family,
    /// Argument names and kinds, in call order.
    pub args: &'static [(&'static str, ArgKind)],
    /// Held out of the training stream entirely.
    pub unseen: bool,
    /// A short description, used as the message of induction samples (AZR's proposer writes
    /// one for every induction task).
    pub message: &'static str,
    /// Builds the body (lines joined by `\n`, each indented by at least one space), drawing
    /// constants from the RNG.
    body: fn(&mut ChaCha8Rng) -> String,
}

impl Template {
    /// Draw one program from this template: `def f(<args>):\n<body>` (no trailing newline).
    pub fn program(&self, rng: &mut ChaCha8Rng) -> String {
        let names: Vec<&str> = self.args.iter().map(|(n, _)| *n).collect();
        format!("def f({}):\n{}", names.join(", "), (self.body)(rng))
    }

    /// Draw one argument list for this template, as Python argument text (`9, 'ab'`).
    pub fn input(&self, rng: &mut ChaCha8Rng) -> String {
        let parts: Vec<String> = self.args.iter().map(|(_, k)| sample_arg(*k, rng)).collect();
        parts.join(", ")
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("unseen", &self.unseen)
            .finish()
    }
}

const LETTERS: &[u8] = b"abcdefgh";
const KEYS: &[u8] = b"abcde";

/// Sample one argument value as Python literal text.
pub(crate) fn sample_arg(kind: ArgKind, rng: &mut ChaCha8Rng) -> String {
    match kind {
        ArgKind::Int => rng.random_range(0..=30).to_string(),
        ArgKind::Str => format!("'{}'", word(rng, 1, 6)),
        ArgKind::IntList => {
            let n = rng.random_range(1..=5);
            let items: Vec<String> = (0..n)
                .map(|_| rng.random_range(0..=20).to_string())
                .collect();
            format!("[{}]", items.join(", "))
        }
        ArgKind::Dict => {
            let n = rng.random_range(1..=3);
            let mut keys: Vec<u8> = KEYS.to_vec();
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let i = rng.random_range(0..keys.len());
                let key = keys.remove(i) as char;
                items.push(format!("'{key}': {}", rng.random_range(0..=9)));
            }
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A random lower-case word of `min..=max` letters from `a-h`.
pub(crate) fn word(rng: &mut ChaCha8Rng, min: usize, max: usize) -> String {
    let n = rng.random_range(min..=max);
    (0..n).map(|_| letter(rng)).collect()
}

/// A random letter from `a-h`.
pub(crate) fn letter(rng: &mut ChaCha8Rng) -> char {
    // LETTERS is a non-empty constant, so `choose` always returns Some.
    *LETTERS.choose(rng).unwrap_or(&b'a') as char
}

/// A random dict key from `a-e`.
pub(crate) fn key(rng: &mut ChaCha8Rng) -> char {
    *KEYS.choose(rng).unwrap_or(&b'a') as char
}

/// A random integer constant in `lo..=hi`.
pub(crate) fn k(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo..=hi)
}

const A: (&str, ArgKind) = ("a", ArgKind::Int);
const B: (&str, ArgKind) = ("b", ArgKind::Int);
const S: (&str, ArgKind) = ("s", ArgKind::Str);
const X: (&str, ArgKind) = ("x", ArgKind::IntList);
const D: (&str, ArgKind) = ("d", ArgKind::Dict);

macro_rules! tpl {
    ($name:literal, $family:ident, [$($arg:ident),*], $unseen:literal, $msg:literal, $body:expr) => {
        Template {
            name: $name,
            family: Family::$family,
            args: &[$($arg),*],
            unseen: $unseen,
            message: $msg,
            body: $body,
        }
    };
}

/// Every template. Order is part of the generator's determinism: append, never reorder.
pub static TEMPLATES: &[Template] = &[
    // ---- arith1
    tpl!("add_k", Arith1, [A], false, "add a constant", |r| format!(
        " return a + {}",
        k(r, 1, 9)
    )),
    tpl!(
        "sub_k",
        Arith1,
        [A],
        false,
        "subtract a constant",
        |r| format!(" return a - {}", k(r, 1, 9))
    ),
    tpl!(
        "mul_k",
        Arith1,
        [A],
        false,
        "multiply by a constant",
        |r| format!(" return a * {}", k(r, 2, 5))
    ),
    tpl!(
        "floordiv_k",
        Arith1,
        [A],
        false,
        "integer divide by a constant",
        |r| format!(" return a // {}", k(r, 2, 4))
    ),
    tpl!(
        "mod_k",
        Arith1,
        [A],
        false,
        "remainder by a constant",
        |r| format!(" return a % {}", k(r, 2, 5))
    ),
    tpl!(
        "double_minus_k",
        Arith1,
        [A],
        false,
        "double then subtract",
        |r| { format!(" b = a * 2\n return b - {}", k(r, 1, 9)) }
    ),
    tpl!("mul_k_add_k", Arith1, [A], true, "multiply then add", |r| {
        format!(" return a * {} + {}", k(r, 2, 4), k(r, 1, 9))
    }),
    // ---- arith2
    tpl!(
        "mul_k_sub",
        Arith2,
        [A, B],
        false,
        "scale a then subtract b",
        |r| format!(" return a * {} - b", k(r, 2, 4))
    ),
    tpl!(
        "add_mul_k",
        Arith2,
        [A, B],
        false,
        "add a scaled b",
        |r| format!(" return a + b * {}", k(r, 2, 4))
    ),
    tpl!(
        "sub_add_k",
        Arith2,
        [A, B],
        false,
        "difference plus a constant",
        |r| format!(" return a - b + {}", k(r, 1, 9))
    ),
    tpl!("mul", Arith2, [A, B], false, "product of both", |_| {
        " return a * b".to_string()
    }),
    tpl!(
        "add_sub_k",
        Arith2,
        [A, B],
        false,
        "sum minus a constant",
        |r| format!(" return a + b - {}", k(r, 1, 9))
    ),
    tpl!(
        "sum_then_mul",
        Arith2,
        [A, B],
        false,
        "scale the sum",
        |r| { format!(" c = a + b\n return c * {}", k(r, 2, 3)) }
    ),
    tpl!(
        "diff_times_k",
        Arith2,
        [A, B],
        true,
        "scale the difference",
        |r| { format!(" return (a - b) * {}", k(r, 2, 3)) }
    ),
    // ---- str
    tpl!("reverse", Str, [S], false, "reverse the string", |_| {
        " return s[::-1]".to_string()
    }),
    tpl!("upper", Str, [S], false, "upper case", |_| {
        " return s.upper()".to_string()
    }),
    tpl!(
        "concat_lit",
        Str,
        [S],
        false,
        "append a suffix",
        |r| format!(" return s + '{}'", word(r, 1, 3))
    ),
    tpl!(
        "drop_first",
        Str,
        [S],
        false,
        "drop the first letter",
        |_| " return s[1:]".to_string()
    ),
    tpl!(
        "repeat_k",
        Str,
        [S],
        false,
        "repeat the string",
        |r| format!(" return s * {}", k(r, 2, 3))
    ),
    tpl!("prefix_k", Str, [S], false, "keep a prefix", |r| format!(
        " return s[:{}]",
        k(r, 1, 4)
    )),
    tpl!("last_char", Str, [S], false, "last letter", |_| {
        " return s[-1]".to_string()
    }),
    tpl!(
        "count_char",
        Str,
        [S],
        false,
        "count a letter",
        |r| format!(" return s.count('{}')", letter(r))
    ),
    tpl!("replace_char", Str, [S], false, "replace a letter", |r| {
        format!(" return s.replace('{}', '{}')", letter(r), letter(r))
    }),
    tpl!("len_str", Str, [S], false, "length of the string", |_| {
        " return len(s)".to_string()
    }),
    tpl!(
        "first_last",
        Str,
        [S],
        true,
        "first and last letters",
        |_| " return s[0] + s[-1]".to_string()
    ),
    tpl!("suffix_k", Str, [S], true, "keep a suffix", |r| format!(
        " return s[-{}:]",
        k(r, 1, 3)
    )),
    // ---- list_agg
    tpl!("len", ListAgg, [X], false, "length of the list", |_| {
        " return len(x)".to_string()
    }),
    tpl!("sum", ListAgg, [X], false, "sum of the list", |_| {
        " return sum(x)".to_string()
    }),
    tpl!("max", ListAgg, [X], false, "largest item", |_| {
        " return max(x)".to_string()
    }),
    tpl!("min", ListAgg, [X], false, "smallest item", |_| {
        " return min(x)".to_string()
    }),
    tpl!("first", ListAgg, [X], false, "first item", |_| {
        " return x[0]".to_string()
    }),
    tpl!("last", ListAgg, [X], false, "last item", |_| {
        " return x[-1]".to_string()
    }),
    tpl!(
        "count_k",
        ListAgg,
        [X],
        false,
        "count a value",
        |r| format!(" return x.count({})", k(r, 0, 20))
    ),
    tpl!(
        "range_span",
        ListAgg,
        [X],
        false,
        "largest minus smallest",
        |_| " return max(x) - min(x)".to_string()
    ),
    tpl!(
        "len_plus_k",
        ListAgg,
        [X],
        true,
        "length plus a constant",
        |r| format!(" return len(x) + {}", k(r, 1, 9))
    ),
    // ---- list_tx
    tpl!("sorted", ListTx, [X], false, "sort the list", |_| {
        " return sorted(x)".to_string()
    }),
    tpl!("tail", ListTx, [X], false, "drop the first item", |_| {
        " return x[1:]".to_string()
    }),
    tpl!(
        "reverse_list",
        ListTx,
        [X],
        false,
        "reverse the list",
        |_| " return x[::-1]".to_string()
    ),
    tpl!(
        "append_k",
        ListTx,
        [X],
        false,
        "append a value",
        |r| format!(" return x + [{}]", k(r, 0, 9))
    ),
    tpl!("sorted_desc", ListTx, [X], false, "sort descending", |_| {
        " return sorted(x, reverse=True)".to_string()
    }),
    tpl!("add_each_k", ListTx, [X], false, "add to each item", |r| {
        format!(" return [v + {} for v in x]", k(r, 1, 5))
    }),
    tpl!("mul_each_k", ListTx, [X], false, "scale each item", |r| {
        format!(" return [v * {} for v in x]", k(r, 2, 3))
    }),
    tpl!("filter_gt_k", ListTx, [X], false, "keep large items", |r| {
        format!(" return [v for v in x if v > {}]", k(r, 0, 15))
    }),
    tpl!(
        "take_k",
        ListTx,
        [X],
        false,
        "keep the first items",
        |r| format!(" return x[:{}]", k(r, 1, 3))
    ),
    tpl!(
        "mod_each_k",
        ListTx,
        [X],
        true,
        "remainder of each item",
        |r| { format!(" return [v % {} for v in x]", k(r, 2, 5)) }
    ),
    // ---- dict
    tpl!("get_default", Dict, [D], false, "look up a key", |r| {
        format!(" return d.get('{}', {})", key(r), k(r, 0, 9))
    }),
    tpl!("len_dict", Dict, [D], false, "number of keys", |_| {
        " return len(d)".to_string()
    }),
    tpl!("sorted_keys", Dict, [D], false, "sorted keys", |_| {
        " return sorted(d)".to_string()
    }),
    tpl!("sum_values", Dict, [D], false, "sum of values", |_| {
        " return sum(d.values())".to_string()
    }),
    tpl!("set_key", Dict, [D], false, "set a key", |r| {
        format!(" d['{}'] = {}\n return d", key(r), k(r, 0, 9))
    }),
    tpl!("max_value", Dict, [D], false, "largest value", |_| {
        " return max(d.values())".to_string()
    }),
    tpl!(
        "keys_gt_k",
        Dict,
        [D],
        false,
        "keys with large values",
        |r| { format!(" return [c for c in d if d[c] > {}]", k(r, 0, 8)) }
    ),
    tpl!("has_key", Dict, [D], false, "check a key", |r| format!(
        " return '{}' in d",
        key(r)
    )),
    tpl!("invert", Dict, [D], true, "swap keys and values", |_| {
        " return {v: c for c, v in d.items()}".to_string()
    }),
    // ---- cond
    tpl!("max2", Cond, [A, B], false, "larger of two", |_| {
        " return a if a > b else b".to_string()
    }),
    tpl!("min2", Cond, [A, B], false, "smaller of two", |_| {
        " return a if a < b else b".to_string()
    }),
    tpl!("absdiff", Cond, [A, B], false, "distance between", |_| {
        " return a - b if a > b else b - a".to_string()
    }),
    tpl!("hi_lo", Cond, [A], false, "compare to a threshold", |r| {
        format!(" return 'hi' if a > {} else 'lo'", k(r, 5, 25))
    }),
    tpl!("even_pick", Cond, [A, B], false, "a if even else b", |_| {
        " return a if a % 2 == 0 else b".to_string()
    }),
    tpl!("if_stmt", Cond, [A], false, "shift by a threshold", |r| {
        let t = k(r, 5, 25);
        format!(
            " if a > {t}:\n  return a - {}\n return a + {}",
            k(r, 1, 5),
            k(r, 1, 5)
        )
    }),
    tpl!("len_check", Cond, [S], false, "shorten long strings", |r| {
        format!(" if len(s) > {}:\n  return s[:2]\n return s", k(r, 1, 4))
    }),
    tpl!(
        "upper_if_long",
        Cond,
        [S],
        true,
        "upper case long strings",
        |r| { format!(" return s.upper() if len(s) > {} else s", k(r, 1, 4)) }
    ),
    // ---- loop
    tpl!("loop_sum_k", Loop, [X], false, "weighted sum", |r| {
        format!(" t = 0\n for v in x:\n  t += v * {}\n return t", k(r, 1, 2))
    }),
    tpl!(
        "loop_reverse",
        Loop,
        [S],
        false,
        "reverse by a loop",
        |_| { " r = ''\n for c in s:\n  r = c + r\n return r".to_string() }
    ),
    tpl!(
        "loop_count",
        Loop,
        [S],
        false,
        "count a letter by a loop",
        |r| {
            format!(
                " n = 0\n for c in s:\n  if c == '{}':\n   n += 1\n return n",
                letter(r)
            )
        }
    ),
    tpl!("loop_evens", Loop, [X], false, "keep even items", |_| {
        " y = []\n for v in x:\n  if v % 2 == 0:\n   y.append(v)\n return y".to_string()
    }),
    tpl!("loop_double", Loop, [A], false, "double a few times", |r| {
        format!(
            " t = {}\n for i in range(a % 5):\n  t = t * 2\n return t",
            k(r, 1, 5)
        )
    }),
    tpl!(
        "loop_stretch",
        Loop,
        [S],
        false,
        "repeat each letter",
        |r| {
            format!(
                " r = ''\n for c in s:\n  r += c * {}\n return r",
                k(r, 2, 3)
            )
        }
    ),
    tpl!("loop_count_gt", Loop, [X], true, "count large items", |r| {
        format!(
            " c = 0\n for v in x:\n  if v > {}:\n   c += 1\n return c",
            k(r, 0, 15)
        )
    }),
    // ---- compose (all unseen)
    tpl!(
        "sorted_last",
        Compose,
        [X],
        true,
        "largest via sort",
        |_| " return sorted(x)[-1]".to_string()
    ),
    tpl!(
        "upper_reverse",
        Compose,
        [S],
        true,
        "upper case reversed",
        |_| " return s.upper()[::-1]".to_string()
    ),
    tpl!(
        "tail_sum",
        Compose,
        [X],
        true,
        "sum after the first",
        |_| " return sum(x[1:])".to_string()
    ),
    tpl!(
        "reverse_prefix",
        Compose,
        [S],
        true,
        "prefix of the reverse",
        |r| { format!(" return s[::-1][:{}]", k(r, 1, 3)) }
    ),
    tpl!(
        "max_plus_k",
        Compose,
        [X],
        true,
        "largest plus a constant",
        |r| format!(" return max(x) + {}", k(r, 1, 9))
    ),
    tpl!(
        "sorted_tail",
        Compose,
        [X],
        true,
        "sorted without the smallest",
        |_| " return sorted(x)[1:]".to_string()
    ),
];

/// The templates of one family.
pub fn family_templates(family: Family) -> impl Iterator<Item = &'static Template> {
    TEMPLATES.iter().filter(move |t| t.family == family)
}

/// Look a template up by name.
pub fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}
