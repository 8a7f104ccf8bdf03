//! Trusted decoding of what a job reports: the record a job process writes is plain data
//! (tagged JSON), which Rust checks strictly, turns into [`PyValue`]s and renders as Python's
//! `repr` itself. A program that tampers with the reporting code in its own process can
//! therefore at most report a value it could have returned: ints are canonical decimal text
//! within the digit limit, floats are float reprs, dict keys and set elements are hashable and
//! distinct, nesting is bounded, and the `repr` always matches the value.
//!
//! Wire format (one node): `{"t": "none"}`, `{"t": "bool", "v": true}`, `{"t": "int", "v":
//! "-12"}`, `{"t": "float", "v": "1e+300"}`, `{"t": "str", "v": "..."}`, `{"t": "bytes", "v":
//! [0, 255]}`, `{"t": "list"|"tuple"|"set"|"fset", "v": [node, ...]}` (sets in iteration order),
//! `{"t": "dict", "v": [[key, value], ...]}` (insertion order).

use super::value::{canonical_cmp, float_text};
use super::PyValue;
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt::Write as _;

/// Deepest nesting accepted (the job refuses deeper values itself).
pub(crate) const MAX_DEPTH: usize = 100;

/// A decoded value, with the distinctions the `repr` needs (`frozenset`, set order).
#[derive(Debug, Clone)]
pub(crate) enum Wire {
    None,
    Bool(bool),
    Int(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Wire>),
    Tuple(Vec<Wire>),
    Dict(Vec<(Wire, Wire)>),
    Set(Vec<Wire>),
    FrozenSet(Vec<Wire>),
}

/// Why a reported value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Not something a Python function can return (bad ints, unhashable keys, duplicates...).
    #[error("corrupt result record: {0}")]
    Corrupt(String),
    /// Over a size limit (e.g. an int with more digits than inputs may have).
    #[error("{0}")]
    TooLarge(String),
}

fn corrupt(why: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt(why.into())
}

/// Decode one wire node.
pub(crate) fn decode(v: &Value, max_int_digits: usize) -> Result<Wire, DecodeError> {
    decode_at(v, max_int_digits, 0)
}

fn items(v: Option<&Value>) -> Result<&Vec<Value>, DecodeError> {
    v.and_then(Value::as_array)
        .ok_or_else(|| corrupt("container without items"))
}

fn decode_at(v: &Value, digits: usize, depth: usize) -> Result<Wire, DecodeError> {
    let obj = v
        .as_object()
        .ok_or_else(|| corrupt("node is not an object"))?;
    let tag = obj
        .get("t")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("node without a type"))?;
    let val = obj.get("v");
    let inner = |x: &Value| decode_at(x, digits, depth + 1);
    if depth > MAX_DEPTH && !matches!(tag, "none" | "bool" | "int" | "float" | "str" | "bytes") {
        return Err(corrupt(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(match tag {
        "none" => Wire::None,
        "bool" => Wire::Bool(
            val.and_then(Value::as_bool)
                .ok_or_else(|| corrupt("bad bool"))?,
        ),
        "int" => {
            let s = val
                .and_then(Value::as_str)
                .ok_or_else(|| corrupt("int without text"))?;
            let body = s.strip_prefix('-').unwrap_or(s);
            let canonical = !body.is_empty()
                && body.bytes().all(|b| b.is_ascii_digit())
                && (body == "0" || !body.starts_with('0'))
                && s != "-0";
            if !canonical {
                return Err(corrupt(format!("bad int text {:?}", truncate(s, 40))));
            }
            if body.len() > digits {
                return Err(DecodeError::TooLarge(format!(
                    "int with {} digits exceeds the {digits}-digit limit (the limit on inputs and answers)",
                    body.len()
                )));
            }
            Wire::Int(s.to_string())
        }
        "float" => {
            let s = val
                .and_then(Value::as_str)
                .ok_or_else(|| corrupt("float without text"))?;
            Wire::Float(
                float_text::parse(s)
                    .ok_or_else(|| corrupt(format!("bad float text {:?}", truncate(s, 40))))?,
            )
        }
        "str" => Wire::Str(
            val.and_then(Value::as_str)
                .ok_or_else(|| corrupt("bad str"))?
                .to_string(),
        ),
        "bytes" => {
            let mut out = Vec::new();
            for b in items(val)? {
                let b = b
                    .as_u64()
                    .filter(|b| *b < 256)
                    .ok_or_else(|| corrupt("bad byte"))?;
                out.push(b as u8);
            }
            Wire::Bytes(out)
        }
        "list" => Wire::List(items(val)?.iter().map(inner).collect::<Result<_, _>>()?),
        "tuple" => Wire::Tuple(items(val)?.iter().map(inner).collect::<Result<_, _>>()?),
        "set" | "fset" => {
            let elems: Vec<Wire> = items(val)?.iter().map(inner).collect::<Result<_, _>>()?;
            if !elems.iter().all(hashable) {
                return Err(corrupt("unhashable set element"));
            }
            distinct(elems.iter().map(to_py).collect(), "set element")?;
            if tag == "set" {
                Wire::Set(elems)
            } else {
                Wire::FrozenSet(elems)
            }
        }
        "dict" => {
            let mut pairs = Vec::new();
            for pair in items(val)? {
                match pair.as_array().map(Vec::as_slice) {
                    Some([k, v]) => pairs.push((inner(k)?, inner(v)?)),
                    _ => return Err(corrupt("bad dict item")),
                }
            }
            if !pairs.iter().all(|(k, _)| hashable(k)) {
                return Err(corrupt("unhashable dict key"));
            }
            distinct(pairs.iter().map(|(k, _)| to_py(k)).collect(), "dict key")?;
            Wire::Dict(pairs)
        }
        other => return Err(corrupt(format!("unknown type {:?}", truncate(other, 20)))),
    })
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Whether Python could use the value as a dict key or set element.
fn hashable(w: &Wire) -> bool {
    match w {
        Wire::List(_) | Wire::Dict(_) | Wire::Set(_) => false,
        Wire::Tuple(items) => items.iter().all(hashable),
        _ => true,
    }
}

/// Refuse equal elements (a real dict or set cannot hold two equal keys).
fn distinct(mut keys: Vec<PyValue>, what: &str) -> Result<(), DecodeError> {
    keys.sort_by(canonical_cmp);
    if keys
        .windows(2)
        .any(|w| canonical_cmp(&w[0], &w[1]) == Ordering::Equal)
    {
        return Err(corrupt(format!("duplicate {what}")));
    }
    Ok(())
}

/// The public value (sets in canonical order, frozenset merged into set).
pub(crate) fn to_py(w: &Wire) -> PyValue {
    match w {
        Wire::None => PyValue::None,
        Wire::Bool(b) => PyValue::Bool(*b),
        Wire::Int(s) => PyValue::Int(s.clone()),
        Wire::Float(x) => PyValue::Float(*x),
        Wire::Str(s) => PyValue::Str(s.clone()),
        Wire::Bytes(b) => PyValue::Bytes(b.clone()),
        Wire::List(v) => PyValue::List(v.iter().map(to_py).collect()),
        Wire::Tuple(v) => PyValue::Tuple(v.iter().map(to_py).collect()),
        Wire::Dict(v) => PyValue::Dict(v.iter().map(|(k, x)| (to_py(k), to_py(x))).collect()),
        Wire::Set(v) | Wire::FrozenSet(v) => {
            let mut items: Vec<PyValue> = v.iter().map(to_py).collect();
            items.sort_by(canonical_cmp);
            PyValue::Set(items)
        }
    }
}

/// Python's `repr` of the value (CPython 3.11 rules; sets in the reported iteration order).
pub(crate) fn repr(w: &Wire) -> String {
    let mut out = String::new();
    write_repr(&mut out, w);
    out
}

fn write_repr(out: &mut String, w: &Wire) {
    match w {
        Wire::None => out.push_str("None"),
        Wire::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Wire::Int(s) => out.push_str(s),
        Wire::Float(x) => out.push_str(&float_repr(*x)),
        Wire::Str(s) => str_repr(out, s),
        Wire::Bytes(b) => bytes_repr(out, b),
        Wire::List(v) => seq(out, "[", "]", v, false),
        Wire::Tuple(v) => seq(out, "(", ")", v, v.len() == 1),
        Wire::Set(v) if v.is_empty() => out.push_str("set()"),
        Wire::Set(v) => seq(out, "{", "}", v, false),
        Wire::FrozenSet(v) if v.is_empty() => out.push_str("frozenset()"),
        Wire::FrozenSet(v) => {
            out.push_str("frozenset(");
            seq(out, "{", "}", v, false);
            out.push(')');
        }
        Wire::Dict(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
    }
}

fn seq(out: &mut String, open: &str, close: &str, items: &[Wire], trailing_comma: bool) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(out, item);
    }
    if trailing_comma {
        out.push(',');
    }
    out.push_str(close);
}

/// `repr(float)`: the shortest digits that round-trip, in fixed notation when the decimal
/// exponent is in [-4, 16), else in scientific notation with a signed two-digit exponent.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` prints the shortest round-tripping digits: "-1.2345e-7", "0e0".
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // value = 0.<digits> * 10^decpt
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let d = decpt as usize;
        if digits.len() <= d {
            out.push_str(&digits);
            for _ in digits.len()..d {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..d]);
            out.push('.');
            out.push_str(&digits[d..]);
        }
    }
    out
}

/// Whether CPython's `str.isprintable` holds for `c` (not in categories Cc, Cf, Cs, Co, Cn,
/// Zl, Zp, Zs, except the space). Rust's `escape_debug` uses the same definition; inside a str
/// (not first) only that test decides whether it escapes a char.
fn printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let mut buf = [0u8; 8];
    buf[0] = b'a';
    let n = c.encode_utf8(&mut buf[1..]).len();
    let s = std::str::from_utf8(&buf[..1 + n]).unwrap_or("a");
    s.escape_debug().count() == s.chars().count()
}

fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn str_repr(out: &mut String, s: &str) {
    let q = quote_for(s.contains('\''), s.contains('"'));
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(q);
}

fn bytes_repr(out: &mut String, b: &[u8]) {
    let q = quote_for(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(q);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            x if x as char == q => {
                out.push('\\');
                out.push(q);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(q);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rep(v: Value) -> Result<String, DecodeError> {
        decode(&v, 4300).map(|w| repr(&w))
    }

    #[test]
    fn float_reprs_match_python() {
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (2.0f64.powi(60), "1.152921504606847e+18"),
        ] {
            assert_eq!(float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn reprs_match_python() {
        let s = |x: &str| json!({"t": "str", "v": x});
        assert_eq!(rep(s("it's")).unwrap(), "\"it's\"");
        assert_eq!(rep(s("a'\"b")).unwrap(), "'a\\'\"b'");
        assert_eq!(
            rep(s("\0é😀\n\u{7f}\u{a0}\u{200b}")).unwrap(),
            "'\\x00é😀\\n\\x7f\\xa0\\u200b'"
        );
        assert_eq!(
            rep(json!({"t": "bytes", "v": [0, 39, 65, 255]})).unwrap(),
            "b\"\\x00'A\\xff\""
        );
        let one = json!({"t": "int", "v": "1"});
        assert_eq!(rep(json!({"t": "tuple", "v": [one]})).unwrap(), "(1,)");
        assert_eq!(rep(json!({"t": "set", "v": []})).unwrap(), "set()");
        assert_eq!(
            rep(json!({"t": "fset", "v": [one]})).unwrap(),
            "frozenset({1})"
        );
        assert_eq!(
            rep(json!({"t": "dict", "v": [[s("k"), {"t": "set", "v": [{"t": "int", "v": "2"}, one]}]]}))
                .unwrap(),
            "{'k': {2, 1}}"
        );
    }

    #[test]
    fn impossible_values_are_refused() {
        let one = json!({"t": "int", "v": "1"});
        let list = json!({"t": "list", "v": []});
        for bad in [
            json!({"t": "int", "v": "01"}),
            json!({"t": "int", "v": "-0"}),
            json!({"t": "int", "v": "1e5"}),
            json!({"t": "float", "v": "abc"}),
            json!({"t": "bytes", "v": [256]}),
            json!({"t": "dict", "v": [[list, one]]}),
            json!({"t": "dict", "v": [[one, one], [{"t": "bool", "v": true}, one]]}),
            json!({"t": "set", "v": [one, {"t": "float", "v": "1.0"}]}),
            json!({"t": "set", "v": [{"t": "tuple", "v": [list]}]}),
            json!({"t": "object"}),
            json!({"t": "list"}),
        ] {
            assert!(
                matches!(decode(&bad, 4300), Err(DecodeError::Corrupt(_))),
                "{bad}"
            );
        }
        let big = json!({"t": "int", "v": "9".repeat(4301)});
        assert!(matches!(decode(&big, 4300), Err(DecodeError::TooLarge(_))));
        assert!(decode(&json!({"t": "int", "v": "9".repeat(4300)}), 4300).is_ok());
        let mut deep = json!({"t": "none"});
        for _ in 0..(MAX_DEPTH + 5) {
            deep = json!({"t": "list", "v": [deep]});
        }
        assert!(decode(&deep, 4300).is_err());
    }
}
