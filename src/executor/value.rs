//! Canonical Python values: the verdict equality [`PyValue::same_as`], JSON helpers for floats,
//! and a Python-literal renderer.
//!
//! # Equality used by every verdict
//!
//! [`PyValue::same_as`] is Python's `==` restricted to the literal types, with one deliberate
//! change (NaN):
//!
//! * **Numbers** compare by exact mathematical value across `bool`, `int` and `float`, as
//!   CPython does: `1 == 1.0 == True`, `0 == -0.0 == False`, `2**53 + 1 != 2.0**53` (ints are
//!   compared to floats exactly, never by rounding the int). `inf == inf`, `inf != -inf`.
//! * **NaN equals NaN** (Python says `nan != nan`). A gold output containing NaN would otherwise
//!   be unsolvable, and NaN cannot be produced by a "match anything" trick: it only equals NaN.
//! * `str != bytes`; `list != tuple` (even with equal items); `set` and `frozenset` are one kind
//!   and compare as sets; `dict` compares as a mapping (insertion order ignored), `set` ignores
//!   order; lists and tuples compare item by item in order.
//!
//! Why this is safe against reward hacking: the comparison runs in Rust on plain data that was
//! canonicalised *inside the sandbox* from exact builtin types only, so no user-defined
//! `__eq__`, `__hash__` or `__repr__` can take part (an always-equal object is
//! `unsupported_type` before it reaches this code). The only cross-type equalities are the
//! numeric ones of Python itself, which a program under test also sees, so they cannot be used
//! to match several different golds with one answer. Stricter checks (same type, same `repr`)
//! remain available to callers through [`PyValue`]'s variants and `Outcome::repr`.
//!
//! The implementation maps each value to a [`Key`] such that `a == b` (in the sense above)
//! exactly when `key(a) == key(b)`, which makes dict/set comparison `O(n log n)`.

use super::PyValue;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

/// Normal form of a number: every int-valued number (bool, int, integral float) becomes
/// `Int`, so that equal values have equal keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum NumKey {
    /// An integer: sign and decimal digits without leading zeros (`0` is never negative).
    Int(bool, String),
    /// A finite non-integral float, by its bit pattern (positive zero is an `Int`).
    Frac(u64),
    /// `inf` (`true`) or `-inf` (`false`).
    Inf(bool),
    /// Any NaN.
    Nan,
}

/// A comparison key: equal keys exactly when [`PyValue::same_as`] holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    None,
    Num(NumKey),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Key>),
    Tuple(Vec<Key>),
    /// Sorted (key, value) pairs.
    Dict(Vec<(Key, Key)>),
    /// Sorted elements.
    Set(Vec<Key>),
}

/// Normalise a decimal integer text (optional sign, digits) into `(negative, digits)`.
fn int_key(text: &str) -> NumKey {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        NumKey::Int(false, "0".to_string())
    } else {
        NumKey::Int(neg, digits.to_string())
    }
}

fn float_key(x: f64) -> NumKey {
    if x.is_nan() {
        NumKey::Nan
    } else if x.is_infinite() {
        NumKey::Inf(x > 0.0)
    } else if x.fract() == 0.0 {
        // Rust prints the exact decimal expansion of an integral double with `{:.0}`.
        int_key(&format!("{x:.0}"))
    } else {
        NumKey::Frac(x.to_bits())
    }
}

fn key(v: &PyValue) -> Key {
    match v {
        PyValue::None => Key::None,
        PyValue::Bool(b) => Key::Num(NumKey::Int(false, if *b { "1" } else { "0" }.to_string())),
        PyValue::Int(s) => Key::Num(int_key(s)),
        PyValue::Float(x) => Key::Num(float_key(*x)),
        PyValue::Str(s) => Key::Str(s.clone()),
        PyValue::Bytes(b) => Key::Bytes(b.clone()),
        PyValue::List(items) => Key::List(items.iter().map(key).collect()),
        PyValue::Tuple(items) => Key::Tuple(items.iter().map(key).collect()),
        PyValue::Dict(pairs) => {
            let mut ks: Vec<(Key, Key)> = pairs.iter().map(|(k, v)| (key(k), key(v))).collect();
            ks.sort();
            Key::Dict(ks)
        }
        PyValue::Set(items) => {
            let mut ks: Vec<Key> = items.iter().map(key).collect();
            ks.sort();
            ks.dedup();
            Key::Set(ks)
        }
    }
}

/// Verdict equality; see the module documentation for the exact rules.
pub(crate) fn same_as(a: &PyValue, b: &PyValue) -> bool {
    // Cheap structural pass first: most comparisons are between identical trees.
    match structural(a, b) {
        Some(answer) => answer,
        None => key(a) == key(b),
    }
}

/// `Some(answer)` when the answer is clear without normalising, `None` to fall back to keys.
fn structural(a: &PyValue, b: &PyValue) -> Option<bool> {
    use PyValue as P;
    match (a, b) {
        (P::None, P::None) => Some(true),
        (P::Str(x), P::Str(y)) => Some(x == y),
        (P::Bytes(x), P::Bytes(y)) => Some(x == y),
        (P::Str(_), _) | (_, P::Str(_)) | (P::Bytes(_), _) | (_, P::Bytes(_)) => Some(false),
        (P::None, _) | (_, P::None) => Some(false),
        (P::List(x), P::List(y)) | (P::Tuple(x), P::Tuple(y)) => {
            if x.len() != y.len() {
                return Some(false);
            }
            for (i, j) in x.iter().zip(y) {
                match structural(i, j) {
                    Some(true) => {}
                    Some(false) => return Some(false),
                    None => {
                        if key(i) != key(j) {
                            return Some(false);
                        }
                    }
                }
            }
            Some(true)
        }
        (P::List(_), _) | (_, P::List(_)) | (P::Tuple(_), _) | (_, P::Tuple(_)) => Some(false),
        (P::Dict(x), P::Dict(y)) if x.len() != y.len() => Some(false),
        (P::Set(x), P::Set(y)) if x.len() != y.len() => Some(false),
        _ => None,
    }
}

/// Total order used to print sets deterministically.
pub(crate) fn canonical_cmp(a: &PyValue, b: &PyValue) -> Ordering {
    key(a).cmp(&key(b))
}

/// Serde helpers for `PyValue::Float`: finite floats are JSON numbers, non-finite ones are the
/// strings `"inf"`, `"-inf"` and `"nan"`; a string holding a Python float repr is also accepted
/// (the sandbox sends every float as its exact `repr`, which Rust parses with correct rounding).
pub(crate) mod float_text {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Serialize a float (see the module docs).
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_nan() {
            s.serialize_str("nan")
        } else if x.is_infinite() {
            s.serialize_str(if *x > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(*x)
        }
    }

    /// Parse a Python float repr (`1.5`, `1e+16`, `-0.0`, `inf`, `-inf`, `nan`).
    pub fn parse(text: &str) -> Option<f64> {
        match text.trim() {
            "inf" | "+inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            "nan" | "-nan" => Some(f64::NAN),
            t => t.parse::<f64>().ok().filter(|x| x.is_finite()),
        }
    }

    struct FloatVisitor;

    impl Visitor<'_> for FloatVisitor {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a float or a float repr string")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            parse(v).ok_or_else(|| E::custom(format!("bad float text {v:?}")))
        }
    }

    /// Deserialize a float (number or repr string).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(FloatVisitor)
    }
}

fn write_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("float('nan')");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 {
            "float('inf')"
        } else {
            "float('-inf')"
        });
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        let _ = write!(out, "{x:.1}");
    } else {
        let _ = write!(out, "{x:?}");
    }
}

fn write_str_literal(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Render a value as Python source that `ast.literal_eval` reads back to an equal value
/// (non-finite floats are written as `float('inf')` / `float('nan')`, which are *not*
/// literals: such values have no literal spelling). Sets print in canonical order.
pub(crate) fn write_literal(out: &mut String, v: &PyValue) {
    match v {
        PyValue::None => out.push_str("None"),
        PyValue::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        PyValue::Int(s) => out.push_str(s),
        PyValue::Float(x) => write_float(out, *x),
        PyValue::Str(s) => write_str_literal(out, s),
        PyValue::Bytes(b) => {
            out.push_str("b'");
            for &byte in b {
                match byte {
                    b'\\' => out.push_str("\\\\"),
                    b'\'' => out.push_str("\\'"),
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    b'\t' => out.push_str("\\t"),
                    0x20..=0x7e => out.push(byte as char),
                    _ => {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
            }
            out.push('\'');
        }
        PyValue::List(items) => write_seq(out, "[", "]", items, false),
        PyValue::Tuple(items) => write_seq(out, "(", ")", items, items.len() == 1),
        PyValue::Set(items) => {
            if items.is_empty() {
                out.push_str("set()");
            } else {
                let mut sorted: Vec<&PyValue> = items.iter().collect();
                sorted.sort_by(|a, b| canonical_cmp(a, b));
                out.push('{');
                for (i, item) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_literal(out, item);
                }
                out.push('}');
            }
        }
        PyValue::Dict(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, k);
                out.push_str(": ");
                write_literal(out, v);
            }
            out.push('}');
        }
    }
}

fn write_seq(out: &mut String, open: &str, close: &str, items: &[PyValue], trailing_comma: bool) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_literal(out, item);
    }
    if trailing_comma {
        out.push(',');
    }
    out.push_str(close);
}

impl fmt::Display for PyValue {
    /// Python-literal rendering (see [`PyValue::to_literal`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        write_literal(&mut s, self);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PyValue as P;

    fn int(s: &str) -> PyValue {
        P::Int(s.to_string())
    }

    #[test]
    fn numeric_tower_follows_python() {
        assert!(same_as(&int("1"), &P::Float(1.0)));
        assert!(same_as(&int("1"), &P::Bool(true)));
        assert!(same_as(&P::Bool(false), &P::Float(-0.0)));
        assert!(same_as(&int("-0"), &int("0")));
        assert!(!same_as(&int("1"), &P::Float(1.5)));
        // 2**53 + 1 is not exactly representable: Python compares exactly and says unequal.
        assert!(!same_as(
            &int("9007199254740993"),
            &P::Float(9007199254740992.0)
        ));
        assert!(same_as(
            &int("9007199254740992"),
            &P::Float(9007199254740992.0)
        ));
        assert!(same_as(&int("100000000000000000000"), &P::Float(1e20)));
        assert!(same_as(&P::Float(f64::NAN), &P::Float(f64::NAN)));
        assert!(!same_as(
            &P::Float(f64::INFINITY),
            &P::Float(f64::NEG_INFINITY)
        ));
        assert!(!same_as(&P::Float(f64::NAN), &int("0")));
    }

    #[test]
    fn containers_follow_python() {
        let l = P::List(vec![int("1"), int("2")]);
        let t = P::Tuple(vec![int("1"), int("2")]);
        assert!(!same_as(&l, &t));
        assert!(!same_as(&l, &P::List(vec![P::Float(1.0), P::Bool(false)])));
        assert!(same_as(&l, &P::List(vec![P::Bool(true), P::Float(2.0)])));
        let s1 = P::Set(vec![int("1"), P::Str("a".into())]);
        let s2 = P::Set(vec![P::Str("a".into()), P::Float(1.0)]);
        assert!(same_as(&s1, &s2));
        let d1 = P::Dict(vec![
            (int("1"), P::Str("x".into())),
            (P::Str("k".into()), P::None),
        ]);
        let d2 = P::Dict(vec![
            (P::Str("k".into()), P::None),
            (P::Bool(true), P::Str("x".into())),
        ]);
        assert!(same_as(&d1, &d2));
        let d3 = P::Dict(vec![
            (P::Str("k".into()), P::None),
            (int("2"), P::Str("x".into())),
        ]);
        assert!(!same_as(&d1, &d3));
        assert!(!same_as(&P::Str("a".into()), &P::Bytes(b"a".to_vec())));
        assert!(!same_as(&P::List(vec![]), &P::Dict(vec![])));
    }

    #[test]
    fn literal_rendering() {
        let v = P::Tuple(vec![
            P::Str("it's".into()),
            P::Float(2.0),
            P::Set(vec![]),
            P::Bytes(vec![0, 65]),
        ]);
        assert_eq!(v.to_string(), "(\"it's\", 2.0, set(), b'\\x00A')");
        assert_eq!(P::Tuple(vec![int("1")]).to_string(), "(1,)");
        assert_eq!(P::Float(f64::INFINITY).to_string(), "float('inf')");
    }

    #[test]
    fn float_json_roundtrip() {
        for x in [0.1, -0.0, 1e300, 5e-324, f64::INFINITY, f64::NEG_INFINITY] {
            let v = P::Float(x);
            let text = serde_json::to_string(&v).unwrap();
            let back: PyValue = serde_json::from_str(&text).unwrap();
            match back {
                P::Float(y) => assert_eq!(x.to_bits(), y.to_bits(), "{text}"),
                other => panic!("{other:?}"),
            }
        }
        let nan: PyValue = serde_json::from_str(r#"{"t":"float","v":"nan"}"#).unwrap();
        assert!(matches!(nan, P::Float(x) if x.is_nan()));
        let none: PyValue = serde_json::from_str(r#"{"t":"none"}"#).unwrap();
        assert!(matches!(none, P::None));
    }
}
