//! Math answer equivalence: MATH-style string normalisation plus numeric / symbolic comparison.
//!
//! [`is_equiv`] decides whether a model's final answer (the contents of its last `\boxed{}`)
//! matches the reference answer:
//! 1. both are normalised ([`normalize`]): LaTeX spacing, `\left`/`\right`, `\dfrac`/`\tfrac`,
//!    `\text{}`/`\mathrm{}` units, degrees (`^\circ`), percent, dollars, thousands separators,
//!    `x =` prefixes, `\frac12`/`\sqrt2` shorthands, leading-dot decimals;
//! 2. equal strings are equivalent;
//! 3. bracketed groups are compared element by element: tuples and intervals in order with the
//!    same brackets (so `(1, 2]` differs from `(1, 2)`), sets `\{...\}` and bare comma lists in any
//!    order, `pmatrix` cell by cell;
//! 4. elements are parsed as arithmetic expressions (`+ - * / ^ !`, implicit products, `\frac`,
//!    `\sqrt`, `\pi`, `\infty`, `\sin`, `\cos`, `\tan`, `\ln`, `\log`, `\exp`) and compared
//!    numerically with a relative tolerance of 1e-6; expressions with variables are compared at
//!    several fixed points (a numeric identity test standing in for a symbolic `simplify`).
//!
//! Everything runs in plain Rust on the parsed expression tree; nothing is executed.

use std::collections::BTreeMap;

/// Relative tolerance of numeric comparisons.
const REL_TOL: f64 = 1e-6;
/// Absolute tolerance near zero.
const ABS_TOL: f64 = 1e-9;

/// Whether `given` and `reference` denote the same answer.
pub fn is_equiv(given: &str, reference: &str) -> bool {
    let g = normalize(given);
    let r = normalize(reference);
    if g.is_empty() || r.is_empty() {
        return false;
    }
    equiv_normalized(&g, &r)
}

fn equiv_normalized(g: &str, r: &str) -> bool {
    if g == r {
        return true;
    }
    if g.contains("\\cup") || r.contains("\\cup") {
        let gu: Vec<String> = g.split("\\cup").map(str::to_string).collect();
        let ru: Vec<String> = r.split("\\cup").map(str::to_string).collect();
        return gu.len() > 1 && gu.len() == ru.len() && unordered_equal(&gu, &ru);
    }
    if let (Some(gm), Some(rm)) = (matrix_cells(g), matrix_cells(r)) {
        return gm.len() == rm.len()
            && gm.iter().zip(&rm).all(|(a, b)| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equiv_normalized(x, y))
            });
    }
    match (group(g), group(r)) {
        (Some((go, gc, ge)), Some((ro, rc, re))) => {
            if ge.len() != re.len() {
                return false;
            }
            if go == '{' && ro == '{' {
                return unordered_equal(&ge, &re);
            }
            go == ro && gc == rc && ge.iter().zip(&re).all(|(a, b)| equiv_normalized(a, b))
        }
        (None, None) => {
            let gl = split_top(g, ',');
            let rl = split_top(r, ',');
            if gl.len() > 1 || rl.len() > 1 {
                return gl.len() == rl.len() && unordered_equal(&gl, &rl);
            }
            expr_equal(g, r)
        }
        _ => false,
    }
}

/// Multiset equality under [`equiv_normalized`].
fn unordered_equal(a: &[String], b: &[String]) -> bool {
    let mut used = vec![false; b.len()];
    a.iter().all(
        |x| match (0..b.len()).find(|&j| !used[j] && equiv_normalized(x, &b[j])) {
            Some(j) => {
                used[j] = true;
                true
            }
            None => false,
        },
    )
}

/// Normalise an answer string (MATH `strip_string` plus the extras listed in the module docs).
pub fn normalize(answer: &str) -> String {
    // Protect LaTeX row breaks (`\\\\`) from the `\ ` spacing rule.
    let mut s = answer.trim().replace("\\\\", "\u{0}");
    // Unicode and dollar/LaTeX noise.
    for (from, to) in [
        ("\u{2212}", "-"),
        ("\u{2013}", "-"),
        ("\\$", ""),
        ("$", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", ""),
        ("~", " "),
        ("\n", " "),
        ("\\left", ""),
        ("\\right", ""),
        ("\\bigl", ""),
        ("\\bigr", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\displaystyle", ""),
        ("\\mbox", "\\text"),
        ("\\textbf", "\\text"),
        ("\\mathbf", "\\text"),
        ("\\mathrm", "\\text"),
        ("\\operatorname", "\\text"),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\circ", ""),
        ("\\degree", ""),
        ("\\%", ""),
        ("%", ""),
        ("{,}", ""),
        ("\\cdot", "*"),
        ("\\times", "*"),
        ("\\div", "/"),
        ("\\le", "<="),
        ("\\ge", ">="),
        ("\\lbrace", "\\{"),
        ("\\rbrace", "\\}"),
    ] {
        s = s.replace(from, to);
    }
    s = s.replace("\\<=q", "<=").replace("\\>=q", ">=");
    s = strip_text_groups(&s);
    for unit in [
        " degrees", " degree", " units", " unit", " dollars", " cents",
    ] {
        if let Some(stripped) = s.strip_suffix(unit) {
            s = stripped.to_string();
        }
    }
    s = s.trim().trim_end_matches('.').trim().to_string();
    // `x = 5` -> `5` when the left side is a short name (as MATH's normaliser).
    if let [lhs, rhs] = s.splitn(2, '=').collect::<Vec<_>>()[..] {
        let l = lhs.trim();
        if !l.is_empty()
            && l.chars().count() <= 2
            && l.chars().all(|c| c.is_alphabetic())
            && !rhs.starts_with('=')
        {
            s = rhs.trim().to_string();
        }
    }
    s = strip_membership(&s);
    s.retain(|c| !c.is_whitespace());
    s = s.replace('\u{0}', "\\\\");
    s = s.replace("\\{", "{").replace("\\}", "}");
    s = fix_shorthand(&s, "\\frac", 2);
    s = fix_shorthand(&s, "\\sqrt", 1);
    s = strip_thousands(&s);
    s = fix_leading_dot(&s);
    if s.starts_with('(')
        && s.ends_with(')')
        && s.len() == 3
        && s.as_bytes()[1].is_ascii_uppercase()
    {
        // Multiple choice `(C)` -> `C`.
        s = s[1..2].to_string();
    }
    s
}

/// `x \in [1, 2]` -> `[1, 2]` (a one-letter variable followed by `\in`, not `\infty`).
fn strip_membership(s: &str) -> String {
    let mut chars = s.chars();
    if let Some(v) = chars.next().filter(char::is_ascii_alphabetic) {
        let rest = s[v.len_utf8()..].trim_start();
        if let Some(after) = rest.strip_prefix("\\in") {
            if !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return after.trim().to_string();
            }
        }
    }
    s.to_string()
}

/// `\text{...}` handling: unwrap when it is the whole answer, otherwise drop it (units).
fn strip_text_groups(s: &str) -> String {
    const KEY: &str = "\\text{";
    let t = s.trim();
    if let Some(inner) = t.strip_prefix(KEY) {
        if let Some(end) = matching_brace(inner) {
            if inner[end + 1..].trim().is_empty() {
                return inner[..end].trim().to_string();
            }
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find(KEY) {
        out.push_str(&rest[..pos]);
        let inner = &rest[pos + KEY.len()..];
        match matching_brace(inner) {
            Some(end) => {
                let content = inner[..end].trim();
                // Keep words that are the answer itself (e.g. `\text{or}` is dropped, but a lone
                // word after nothing numeric is kept).
                if out.trim().is_empty() {
                    out.push_str(content);
                }
                rest = &inner[end + 1..];
            }
            None => {
                out.push_str(&rest[pos..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Index of the `}` closing a group whose `{` was just consumed.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `\frac12` -> `\frac{1}{2}`, `\sqrt2` -> `\sqrt{2}` (single-character arguments).
fn fix_shorthand(s: &str, cmd: &str, args: usize) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find(cmd) {
        out.push_str(&rest[..pos + cmd.len()]);
        let mut tail = &rest[pos + cmd.len()..];
        for _ in 0..args {
            match tail.chars().next() {
                Some('{') => match matching_brace(&tail[1..]) {
                    Some(end) => {
                        out.push_str(&tail[..end + 2]);
                        tail = &tail[end + 2..];
                    }
                    None => break,
                },
                Some('[') if cmd == "\\sqrt" => break,
                Some(c) if c.is_ascii_digit() && cmd == "\\sqrt" => {
                    // `\sqrt51` -> `\sqrt{51}`: the whole digit run.
                    let n = tail.chars().take_while(char::is_ascii_digit).count();
                    out.push('{');
                    out.push_str(&tail[..n]);
                    out.push('}');
                    tail = &tail[n..];
                }
                Some(c) if c.is_ascii_alphanumeric() => {
                    out.push('{');
                    out.push(c);
                    out.push('}');
                    tail = &tail[1..];
                }
                _ => break,
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Remove thousands separators: a comma between a run of 1-3 digits and exactly three digits not
/// followed by another digit (`1,000,000` -> `1000000`). Bracketed answers (tuples, intervals,
/// sets) are left alone, so `(1,234)` stays a pair.
fn strip_thousands(s: &str) -> String {
    if s.starts_with(['(', '[', '{']) {
        return s.to_string();
    }
    let b: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for i in 0..b.len() {
        if b[i] == ',' && i > 0 && b[i - 1].is_ascii_digit() {
            let three = b
                .get(i + 1..i + 4)
                .is_some_and(|d| d.iter().all(|c| c.is_ascii_digit()));
            let then_stop = !b.get(i + 4).is_some_and(|c| c.is_ascii_digit());
            let mut j = i;
            while j > 0 && b[j - 1].is_ascii_digit() {
                j -= 1;
            }
            let left_ok = i - j <= 3 && (j == 0 || b[j - 1] != '.');
            if three && then_stop && left_ok {
                continue;
            }
        }
        out.push(b[i]);
    }
    out
}

/// `.5` -> `0.5` at the start or after an operator / bracket.
fn fix_leading_dot(s: &str) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '.'
            && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
            && prev.is_none_or(|p| !p.is_ascii_digit())
        {
            out.push('0');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// Split on `sep` at bracket depth 0.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// A bracketed group spanning the whole string with a top-level comma (tuple, interval, set):
/// `(open, close, elements)`.
fn group(s: &str) -> Option<(char, char, Vec<String>)> {
    let open = s.chars().next()?;
    let close = s.chars().next_back()?;
    if !matches!(open, '(' | '[' | '{') || !matches!(close, ')' | ']' | '}') || s.len() < 2 {
        return None;
    }
    // The first bracket must close only at the very end.
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && i + c.len_utf8() < s.len() {
            return None;
        }
    }
    let inner = &s[open.len_utf8()..s.len() - close.len_utf8()];
    let elems = split_top(inner, ',');
    // A single bracketed expression like `(2)` or `{5}` is not a group unless it is a set.
    if elems.len() < 2 && open != '{' {
        return None;
    }
    Some((open, close, elems))
}

/// Cells of a `pmatrix`/`bmatrix`, row by row.
fn matrix_cells(s: &str) -> Option<Vec<Vec<String>>> {
    for kind in ["pmatrix", "bmatrix", "matrix"] {
        let open = format!("\\begin{{{kind}}}");
        let close = format!("\\end{{{kind}}}");
        if let Some(inner) = s
            .strip_prefix(open.as_str())
            .and_then(|t| t.strip_suffix(close.as_str()))
        {
            return Some(
                inner
                    .split("\\\\")
                    .filter(|r| !r.is_empty())
                    .map(|r| r.split('&').map(str::to_string).collect())
                    .collect(),
            );
        }
    }
    None
}

/// Numeric / symbolic equality of two single expressions.
fn expr_equal(a: &str, b: &str) -> bool {
    if has_word(a) || has_word(b) {
        // Words (`east`, `Evelyn`) are text, not products of variables.
        return false;
    }
    let (Some(ea), Some(eb)) = (Expr::parse(a), Expr::parse(b)) else {
        return false;
    };
    let mut vars = BTreeMap::new();
    ea.vars(&mut vars);
    eb.vars(&mut vars);
    if vars.len() > 3 {
        return false;
    }
    const POINTS: [f64; 4] = [0.7315, 1.3759, 2.2361, 3.1623];
    let trials = if vars.is_empty() { 1 } else { 4 };
    for t in 0..trials {
        let assign: BTreeMap<char, f64> = vars
            .keys()
            .enumerate()
            .map(|(k, v)| (*v, POINTS[(t + k) % 4] + 0.173 * k as f64))
            .collect();
        let (x, y) = (ea.eval(&assign), eb.eval(&assign));
        if !close(x, y) {
            return false;
        }
    }
    true
}

/// Whether `s` holds a run of three or more letters that is not a `\command` name.
fn has_word(s: &str) -> bool {
    let mut run = 0;
    let mut in_command = false;
    for c in s.chars() {
        if c == '\\' {
            in_command = true;
            run = 0;
        } else if c.is_ascii_alphabetic() {
            if !in_command {
                run += 1;
                if run >= 3 {
                    return true;
                }
            }
        } else {
            in_command = false;
            run = 0;
        }
    }
    false
}

fn close(x: f64, y: f64) -> bool {
    if x.is_nan() || y.is_nan() {
        return false;
    }
    if x.is_infinite() || y.is_infinite() {
        return x == y;
    }
    (x - y).abs() <= ABS_TOL.max(REL_TOL * x.abs().max(y.abs()))
}

/// An arithmetic expression tree.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Var(char),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Call(Func, Box<Expr>),
    Fact(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Sqrt,
    Sin,
    Cos,
    Tan,
    Ln,
    Log,
    Exp,
}

impl Expr {
    fn parse(s: &str) -> Option<Expr> {
        let mut p = Parser {
            chars: s.chars().collect(),
            pos: 0,
        };
        let e = p.sum()?;
        (p.pos == p.chars.len()).then_some(e)
    }

    fn vars(&self, out: &mut BTreeMap<char, ()>) {
        match self {
            Expr::Var(c) => {
                out.insert(*c, ());
            }
            Expr::Num(_) => {}
            Expr::Neg(e) | Expr::Call(_, e) | Expr::Fact(e) => e.vars(out),
            Expr::Bin(_, a, b) => {
                a.vars(out);
                b.vars(out);
            }
        }
    }

    fn eval(&self, vars: &BTreeMap<char, f64>) -> f64 {
        match self {
            Expr::Num(v) => *v,
            Expr::Var(c) => vars.get(c).copied().unwrap_or(f64::NAN),
            Expr::Neg(e) => -e.eval(vars),
            Expr::Bin(op, a, b) => {
                let (x, y) = (a.eval(vars), b.eval(vars));
                match op {
                    '+' => x + y,
                    '-' => x - y,
                    '*' => x * y,
                    '/' => x / y,
                    _ => x.powf(y),
                }
            }
            Expr::Call(f, e) => {
                let x = e.eval(vars);
                match f {
                    Func::Sqrt => x.sqrt(),
                    Func::Sin => x.sin(),
                    Func::Cos => x.cos(),
                    Func::Tan => x.tan(),
                    Func::Ln => x.ln(),
                    Func::Log => x.log10(),
                    Func::Exp => x.exp(),
                }
            }
            Expr::Fact(e) => {
                let x = e.eval(vars);
                if x < 0.0 || x.fract() != 0.0 || x > 170.0 {
                    f64::NAN
                } else {
                    (1..=x as u64).map(|k| k as f64).product()
                }
            }
        }
    }
}

/// Recursive-descent parser: sum -> product -> unary -> power -> postfix -> atom.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Option<Expr> {
        let mut e = self.product()?;
        loop {
            if self.eat('+') {
                e = Expr::Bin('+', Box::new(e), Box::new(self.product()?));
            } else if self.eat('-') {
                e = Expr::Bin('-', Box::new(e), Box::new(self.product()?));
            } else {
                return Some(e);
            }
        }
    }

    fn product(&mut self) -> Option<Expr> {
        let mut e = self.unary()?;
        loop {
            if self.eat('*') {
                e = Expr::Bin('*', Box::new(e), Box::new(self.unary()?));
            } else if self.eat('/') {
                e = Expr::Bin('/', Box::new(e), Box::new(self.unary()?));
            } else if self.starts_atom() {
                // Implicit product: `2x`, `3\sqrt{2}`, `2(1+x)`.
                e = Expr::Bin('*', Box::new(e), Box::new(self.power()?));
            } else {
                return Some(e);
            }
        }
    }

    fn starts_atom(&self) -> bool {
        match self.peek() {
            Some(c) => c.is_ascii_alphanumeric() || matches!(c, '(' | '{' | '\\' | '.'),
            None => false,
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        if self.eat('-') {
            return Some(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.eat('+') {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Option<Expr> {
        let base = self.postfix()?;
        if self.eat('^') {
            // Right associative; the exponent may carry a sign.
            let exp = self.unary_power()?;
            return Some(Expr::Bin('^', Box::new(base), Box::new(exp)));
        }
        Some(base)
    }

    fn unary_power(&mut self) -> Option<Expr> {
        if self.eat('-') {
            return Some(Expr::Neg(Box::new(self.unary_power()?)));
        }
        self.power()
    }

    fn postfix(&mut self) -> Option<Expr> {
        let mut e = self.atom()?;
        while self.eat('!') {
            e = Expr::Fact(Box::new(e));
        }
        Some(e)
    }

    fn group(&mut self, open: char, close: char) -> Option<Expr> {
        if !self.eat(open) {
            return None;
        }
        let e = self.sum()?;
        self.eat(close).then_some(e)
    }

    fn atom(&mut self) -> Option<Expr> {
        let c = self.peek()?;
        if c.is_ascii_digit() || c == '.' {
            let start = self.pos;
            while self.peek().is_some_and(|d| d.is_ascii_digit() || d == '.') {
                self.pos += 1;
            }
            let text: String = self.chars[start..self.pos].iter().collect();
            return text.parse::<f64>().ok().map(Expr::Num);
        }
        if c.is_ascii_alphabetic() {
            self.pos += 1;
            return Some(Expr::Var(c));
        }
        match c {
            '(' => self.group('(', ')'),
            '{' => self.group('{', '}'),
            '[' => self.group('[', ']'),
            '\\' => self.command(),
            _ => None,
        }
    }

    fn command(&mut self) -> Option<Expr> {
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        const KNOWN: [&str; 10] = [
            "frac", "sqrt", "pi", "infty", "sin", "cos", "tan", "ln", "log", "exp",
        ];
        // Spaces were removed, so `\sinx` must be read as `\sin x`: take the longest known prefix.
        let name = KNOWN
            .iter()
            .filter(|k| word.starts_with(**k))
            .max_by_key(|k| k.len())?;
        self.pos = start + name.len();
        match *name {
            "frac" => {
                let a = self.group('{', '}')?;
                let b = self.group('{', '}')?;
                Some(Expr::Bin('/', Box::new(a), Box::new(b)))
            }
            "sqrt" => {
                if self.peek() == Some('[') {
                    let n = self.group('[', ']')?;
                    let x = self.group('{', '}')?;
                    let inv = Expr::Bin('/', Box::new(Expr::Num(1.0)), Box::new(n));
                    return Some(Expr::Bin('^', Box::new(x), Box::new(inv)));
                }
                let x = self.group('{', '}')?;
                Some(Expr::Call(Func::Sqrt, Box::new(x)))
            }
            "pi" => Some(Expr::Num(std::f64::consts::PI)),
            "infty" => Some(Expr::Num(f64::INFINITY)),
            f => {
                let func = match f {
                    "sin" => Func::Sin,
                    "cos" => Func::Cos,
                    "tan" => Func::Tan,
                    "ln" => Func::Ln,
                    "log" => Func::Log,
                    _ => Func::Exp,
                };
                let arg = self.power()?;
                Some(Expr::Call(func, Box::new(arg)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_examples() {
        assert_eq!(normalize("\\dfrac{1}{2}"), "\\frac{1}{2}");
        assert_eq!(normalize("\\frac12"), "\\frac{1}{2}");
        assert_eq!(
            normalize("\\left( 3, \\frac{\\pi}{2} \\right)"),
            "(3,\\frac{\\pi}{2})"
        );
        assert_eq!(normalize("10 \\text{ cm}"), "10");
        assert_eq!(normalize("\\text{Evelyn}"), "Evelyn");
        assert_eq!(normalize("x = 5"), "5");
        assert_eq!(normalize("1,000,000"), "1000000");
        assert_eq!(normalize(".35625"), "0.35625");
        assert_eq!(normalize("30^\\circ"), "30");
        assert_eq!(normalize("\\$18.90"), "18.90");
    }

    #[test]
    fn expression_parser_evaluates() {
        let e = Expr::parse("2\\sqrt{2}+\\frac{1}{2}").unwrap();
        assert!((e.eval(&BTreeMap::new()) - (2.0 * 2f64.sqrt() + 0.5)).abs() < 1e-12);
        let e = Expr::parse("2^-1").unwrap();
        assert_eq!(e.eval(&BTreeMap::new()), 0.5);
        let e = Expr::parse("5!").unwrap();
        assert_eq!(e.eval(&BTreeMap::new()), 120.0);
        assert!(Expr::parse("(1").is_none());
    }
}
