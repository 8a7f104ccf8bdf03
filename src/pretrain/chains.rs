//! Compositional programs: chains of two or three typed primitive operations.
//!
//! The template corpus ([`super::templates`]) has 51 program shapes on its training side, and a
//! model pretrained on it writes those shapes and nothing else, whatever the proposer's reward.
//! A **chain** is built instead from [`OPS`], small typed operations (`sorted(_)`, `_[1:]`,
//! `sum(_)`, `_ + K`, ...), applied one after another to the argument, each result bound to a
//! new variable:
//!
//! ```text
//! def f(x):
//!  y = sorted(x)
//!  z = y[1:]
//!  return sum(z)
//! ```
//!
//! The op sequences form a combinatorial space (see [`all_chains`]) from which the training
//! stream sees only a part: a chain is **unseen** when a stable hash of its normalised program
//! shape ([`program_shape`]) falls in one of the first buckets of [`SPLIT_BUCKETS`]
//! ([`ChainSplit::is_unseen`]; one bucket, a quarter of the shapes, by default, and `[corpus]
//! chain_unseen` holds out a half or three quarters).
//! The split is by shape, not by op names, because different ops can read alike once names
//! and constants are normalised (`len(s)` and `len(x)`): no seen chain shares a shape with an
//! unseen one. Unseen chains never reach the pretraining corpus, so a proposer that writes one
//! has written a program shape it was not shown, by recombining operations it was
//! ([`crate::tasks::novelty`] counts it as novel).
//!
//! Chains enter the corpus only when `[corpus] chain` is above 0 (default 0), so the shipped
//! base model's corpus is unchanged.

use super::generator::stable_hash;
use super::templates::{k, key, letter, sample_arg, word, ArgKind};
use crate::tasks::novelty::program_shape;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The value type flowing between two operations of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    /// An int.
    Int,
    /// A string.
    Str,
    /// A list of ints.
    List,
    /// A dict from one-letter strings to ints.
    Dict,
}

impl Ty {
    /// The types a chain can start from, with the argument name and kind of each (the names
    /// the templates use: `a`, `s`, `x`, `d`).
    pub const STARTS: [(Ty, &'static str, ArgKind); 4] = [
        (Ty::Int, "a", ArgKind::Int),
        (Ty::Str, "s", ArgKind::Str),
        (Ty::List, "x", ArgKind::IntList),
        (Ty::Dict, "d", ArgKind::Dict),
    ];
}

/// One typed primitive operation: an expression over the previous step's variable.
pub struct Op {
    /// Unique name (chains are named by their op names).
    pub name: &'static str,
    /// The type it consumes.
    pub from: Ty,
    /// The type it produces.
    pub to: Ty,
    /// A short description; a chain's induction message joins them.
    pub message: &'static str,
    /// Builds the expression over the variable `v`, drawing constants from the RNG.
    expr: fn(&str, &mut ChaCha8Rng) -> String,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("name", &self.name)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

macro_rules! op {
    ($name:literal, $from:ident -> $to:ident, $msg:literal, $expr:expr) => {
        Op {
            name: $name,
            from: Ty::$from,
            to: Ty::$to,
            message: $msg,
            expr: $expr,
        }
    };
}

/// Every operation. Order is part of the generator's determinism: append, never reorder.
pub static OPS: &[Op] = &[
    // int -> int
    op!("add", Int -> Int, "add", |v, r| format!("{v} + {}", k(r, 1, 9))),
    op!("sub", Int -> Int, "subtract", |v, r| format!("{v} - {}", k(r, 1, 9))),
    op!("mul", Int -> Int, "multiply", |v, r| format!("{v} * {}", k(r, 2, 4))),
    op!("floordiv", Int -> Int, "divide", |v, r| format!("{v} // {}", k(r, 2, 4))),
    op!("mod", Int -> Int, "take a remainder", |v, r| format!("{v} % {}", k(r, 2, 5))),
    // int -> other
    op!("to_str", Int -> Str, "write as text", |v, _| format!("str({v})")),
    op!("range", Int -> List, "count up", |v, r| format!("list(range({v} % {}))", k(r, 3, 6))),
    // str -> str
    op!("reverse", Str -> Str, "reverse", |v, _| format!("{v}[::-1]")),
    op!("upper", Str -> Str, "upper case", |v, _| format!("{v}.upper()")),
    op!("concat", Str -> Str, "append letters", |v, r| format!("{v} + '{}'", word(r, 1, 2))),
    op!("drop_first", Str -> Str, "drop the first letter", |v, _| format!("{v}[1:]")),
    op!("repeat", Str -> Str, "repeat", |v, _| format!("{v} * 2")),
    op!("prefix", Str -> Str, "keep a prefix", |v, r| format!("{v}[:{}]", k(r, 1, 4))),
    op!("replace", Str -> Str, "replace a letter", |v, r| {
        format!("{v}.replace('{}', '{}')", letter(r), letter(r))
    }),
    op!("sort_letters", Str -> Str, "sort the letters", |v, _| format!("''.join(sorted({v}))")),
    // str -> int
    op!("len_str", Str -> Int, "length", |v, _| format!("len({v})")),
    op!("count_char", Str -> Int, "count a letter", |v, r| format!("{v}.count('{}')", letter(r))),
    // list -> list
    op!("sorted", List -> List, "sort", |v, _| format!("sorted({v})")),
    op!("tail", List -> List, "drop the first item", |v, _| format!("{v}[1:]")),
    op!("reverse_list", List -> List, "reverse", |v, _| format!("{v}[::-1]")),
    op!("append", List -> List, "append a value", |v, r| format!("{v} + [{}]", k(r, 0, 9))),
    op!("add_each", List -> List, "add to each item", |v, r| {
        format!("[w + {} for w in {v}]", k(r, 1, 5))
    }),
    op!("mul_each", List -> List, "scale each item", |v, r| {
        format!("[w * {} for w in {v}]", k(r, 2, 3))
    }),
    op!("filter_gt", List -> List, "keep large items", |v, r| {
        format!("[w for w in {v} if w > {}]", k(r, 0, 12))
    }),
    op!("take", List -> List, "keep the first items", |v, r| format!("{v}[:{}]", k(r, 1, 3))),
    op!("sorted_desc", List -> List, "sort descending", |v, _| {
        format!("sorted({v}, reverse=True)")
    }),
    // list -> int
    op!("len", List -> Int, "length", |v, _| format!("len({v})")),
    op!("sum", List -> Int, "sum", |v, _| format!("sum({v})")),
    op!("max", List -> Int, "largest item", |v, _| format!("max({v})")),
    op!("min", List -> Int, "smallest item", |v, _| format!("min({v})")),
    op!("first", List -> Int, "first item", |v, _| format!("{v}[0]")),
    op!("last", List -> Int, "last item", |v, _| format!("{v}[-1]")),
    op!("count", List -> Int, "count a value", |v, r| format!("{v}.count({})", k(r, 0, 9))),
    // dict -> int / list
    op!("len_dict", Dict -> Int, "number of keys", |v, _| format!("len({v})")),
    op!("sum_values", Dict -> Int, "sum of values", |v, _| format!("sum({v}.values())")),
    op!("max_value", Dict -> Int, "largest value", |v, _| format!("max({v}.values())")),
    op!("get", Dict -> Int, "look up a key", |v, r| {
        format!("{v}.get('{}', {})", key(r), k(r, 0, 9))
    }),
    op!("sorted_keys", Dict -> List, "sorted keys", |v, _| format!("sorted({v})")),
    op!("values", Dict -> List, "the values", |v, _| format!("list({v}.values())")),
];

/// The chain shapes are split into this many buckets by a stable hash of the shape; a
/// [`ChainSplit`] holds the first one to three of them out of the training stream.
pub const SPLIT_BUCKETS: u64 = 4;

/// Fewest and most operations in a chain.
pub const CHAIN_LENGTHS: std::ops::RangeInclusive<usize> = 2..=3;

/// Variables bound by the steps before the last one, in order.
const STEP_VARS: [&str; 2] = ["y", "z"];

/// Which chain shapes never reach the training stream: those whose stable shape hash falls in
/// the first `unseen` of [`SPLIT_BUCKETS`] buckets. The default holds out one bucket (a quarter
/// of the shapes, the split of `assets/chain-base`); a larger split keeps every shape the
/// smaller one holds out, so the unseen sets are nested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainSplit {
    unseen: u64,
}

impl Default for ChainSplit {
    fn default() -> Self {
        Self { unseen: 1 }
    }
}

impl ChainSplit {
    /// The shares a split can hold out: a quarter, a half or three quarters.
    pub const SHARES: [f64; 3] = [0.25, 0.5, 0.75];

    /// The split that holds out `share` of the chain shapes, if it is one of [`Self::SHARES`].
    pub fn from_share(share: f64) -> Option<Self> {
        Self::SHARES.iter().position(|&s| s == share).map(|i| Self {
            unseen: i as u64 + 1,
        })
    }

    /// The split's position in [`Self::SHARES`] (0 for the default quarter).
    pub fn index(&self) -> usize {
        // `unseen` is 1..=SHARES.len(): only `from_share` and `default` build a split.
        (self.unseen - 1) as usize
    }

    /// The share of the chain shapes held out (the nominal share: hashing makes the measured
    /// share of the 4,668 op sequences close to it, not equal).
    pub fn share(&self) -> f64 {
        self.unseen as f64 / SPLIT_BUCKETS as f64
    }

    /// Whether chains of program shape `shape` ([`program_shape`]) are held out of the training
    /// stream.
    pub fn is_unseen(&self, shape: &str) -> bool {
        stable_hash(shape.as_bytes()) % SPLIT_BUCKETS < self.unseen
    }
}

/// Whether `shape` is held out by the default split ([`ChainSplit::default`], a quarter).
pub fn is_unseen_shape(shape: &str) -> bool {
    ChainSplit::default().is_unseen(shape)
}

/// A chain: a start type (the argument) and the operations applied to it, in order.
#[derive(Debug, Clone)]
pub struct Chain {
    start: usize,
    ops: Vec<&'static Op>,
}

impl Chain {
    /// The op names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.ops.iter().map(|o| o.name).collect()
    }

    /// The chain's name in reports and JSONL: `chain:sorted>tail>sum`.
    pub fn name(&self) -> String {
        format!("chain:{}", self.names().join(">"))
    }

    /// The chain's normalised program shape (constants never change it).
    pub fn shape(&self) -> String {
        program_shape(&self.program(&mut ChaCha8Rng::seed_from_u64(0)))
    }

    /// Whether this chain is held out of the training stream by `split`.
    pub fn unseen(&self, split: ChainSplit) -> bool {
        split.is_unseen(&self.shape())
    }

    /// The argument's name and kind.
    pub fn arg(&self) -> (&'static str, ArgKind) {
        let (_, name, kind) = Ty::STARTS[self.start];
        (name, kind)
    }

    /// The induction message: the op descriptions joined by `, then `.
    pub fn message(&self) -> String {
        let parts: Vec<&str> = self.ops.iter().map(|o| o.message).collect();
        parts.join(", then ")
    }

    /// Draw one program: every step but the last binds a new variable, the last is returned.
    pub fn program(&self, rng: &mut ChaCha8Rng) -> String {
        let (arg, _) = self.arg();
        let mut var = arg.to_string();
        let mut out = format!("def f({arg}):");
        let last = self.ops.len() - 1;
        for (i, op) in self.ops.iter().enumerate() {
            let expr = (op.expr)(&var, rng);
            if i == last {
                out.push_str(&format!("\n return {expr}"));
            } else {
                let next = STEP_VARS[i];
                out.push_str(&format!("\n {next} = {expr}"));
                var = next.to_string();
            }
        }
        out
    }

    /// Draw one argument list (one argument of the start type), as Python argument text.
    pub fn input(&self, rng: &mut ChaCha8Rng) -> String {
        sample_arg(self.arg().1, rng)
    }
}

/// The operations that consume `ty`.
fn ops_from(ty: Ty) -> impl Iterator<Item = &'static Op> {
    OPS.iter().filter(move |o| o.from == ty)
}

/// Draws before [`draw_chain`] gives up matching the wanted side (a quarter to three quarters of
/// sequences are unseen, so a draw of either side succeeds within a few attempts).
const DRAW_ATTEMPTS: usize = 64;

/// Draw a chain: a start type uniformly, a length uniformly from [`CHAIN_LENGTHS`], then each
/// operation uniformly among those consuming the current type; redrawn until its
/// [`Chain::unseen`] flag under `split` is `unseen`. `None` only if [`DRAW_ATTEMPTS`] draws all
/// missed.
pub fn draw_chain(rng: &mut ChaCha8Rng, split: ChainSplit, unseen: bool) -> Option<Chain> {
    for _ in 0..DRAW_ATTEMPTS {
        let start = rng.random_range(0..Ty::STARTS.len());
        let len = rng.random_range(CHAIN_LENGTHS);
        let mut ty = Ty::STARTS[start].0;
        let mut ops = Vec::with_capacity(len);
        for _ in 0..len {
            let choices: Vec<&'static Op> = ops_from(ty).collect();
            let op = choices[rng.random_range(0..choices.len())];
            ty = op.to;
            ops.push(op);
        }
        let chain = Chain { start, ops };
        if chain.unseen(split) == unseen {
            return Some(chain);
        }
    }
    None
}

/// Every chain of every start type and length, in a fixed order.
pub fn all_chains() -> Vec<Chain> {
    let mut out = Vec::new();
    for start in 0..Ty::STARTS.len() {
        let mut frontier: Vec<Vec<&'static Op>> = vec![Vec::new()];
        for len in 1..=*CHAIN_LENGTHS.end() {
            let mut next = Vec::new();
            for prefix in &frontier {
                let ty = prefix.last().map_or(Ty::STARTS[start].0, |o| o.to);
                for op in ops_from(ty) {
                    let mut ops = prefix.clone();
                    ops.push(op);
                    next.push(ops);
                }
            }
            if CHAIN_LENGTHS.contains(&len) {
                out.extend(next.iter().map(|ops| Chain {
                    start,
                    ops: ops.clone(),
                }));
            }
            frontier = next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_are_unique_and_every_type_has_ops() {
        let mut names: Vec<&str> = OPS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPS.len());
        for (ty, _, _) in Ty::STARTS {
            assert!(ops_from(ty).count() >= 2, "{ty:?}");
        }
    }

    #[test]
    fn programs_render_as_statement_chains() {
        let sorted = OPS.iter().find(|o| o.name == "sorted").unwrap();
        let tail = OPS.iter().find(|o| o.name == "tail").unwrap();
        let sum = OPS.iter().find(|o| o.name == "sum").unwrap();
        let chain = Chain {
            start: 2,
            ops: vec![sorted, tail, sum],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(
            chain.program(&mut rng),
            "def f(x):\n y = sorted(x)\n z = y[1:]\n return sum(z)"
        );
        assert_eq!(chain.name(), "chain:sorted>tail>sum");
        assert_eq!(chain.message(), "sort, then drop the first item, then sum");
        assert!(chain.input(&mut rng).starts_with('['));
    }

    #[test]
    fn the_space_is_combinatorial_and_about_a_quarter_unseen() {
        let all = all_chains();
        assert!(all.len() > 1000, "{} chains", all.len());
        let q = ChainSplit::default();
        let unseen = all.iter().filter(|c| c.unseen(q)).count();
        let share = unseen as f64 / all.len() as f64;
        assert!((0.18..0.32).contains(&share), "unseen share {share}");
        // Types line up along every chain, and constants never change a chain's shape.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for c in &all {
            for _ in 0..4 {
                assert_eq!(
                    program_shape(&c.program(&mut rng)),
                    c.shape(),
                    "{}",
                    c.name()
                );
            }
            let mut ty = Ty::STARTS[c.start].0;
            for op in &c.ops {
                assert_eq!(op.from, ty, "{}", c.name());
                ty = op.to;
            }
        }
    }

    #[test]
    fn draws_respect_the_side_and_are_deterministic() {
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let q = ChainSplit::default();
            let ca = draw_chain(&mut a, q, false).unwrap();
            let cb = draw_chain(&mut b, q, false).unwrap();
            assert!(!ca.unseen(q));
            assert_eq!(ca.name(), cb.name());
            assert!(CHAIN_LENGTHS.contains(&ca.ops.len()));
        }
        let mut r = ChaCha8Rng::seed_from_u64(4);
        let half = ChainSplit::from_share(0.5).unwrap();
        for _ in 0..50 {
            assert!(draw_chain(&mut r, ChainSplit::default(), true)
                .unwrap()
                .unseen(ChainSplit::default()));
            assert!(!draw_chain(&mut r, half, false).unwrap().unseen(half));
        }
    }

    #[test]
    fn larger_splits_hold_out_more_and_keep_what_smaller_ones_held_out() {
        assert_eq!(ChainSplit::from_share(0.25), Some(ChainSplit::default()));
        assert_eq!(ChainSplit::from_share(0.3), None);
        assert_eq!(ChainSplit::from_share(1.0), None);
        let shapes: Vec<String> = all_chains().iter().map(Chain::shape).collect();
        let mut last = 0;
        for share in ChainSplit::SHARES {
            let split = ChainSplit::from_share(share).unwrap();
            assert_eq!(split.share(), share);
            assert_eq!(ChainSplit::SHARES[split.index()], share);
            let unseen: Vec<&String> = shapes.iter().filter(|s| split.is_unseen(s)).collect();
            let measured = unseen.len() as f64 / shapes.len() as f64;
            assert!((measured - share).abs() < 0.07, "{share}: {measured}");
            assert!(unseen.len() > last);
            last = unseen.len();
            // Nested: a shape the default split holds out is held out by every split.
            for s in &shapes {
                if ChainSplit::default().is_unseen(s) {
                    assert!(split.is_unseen(s), "{s}");
                }
            }
        }
    }
}
