//! `azr select`: rank training examples by the variance of their accuracy history
//! (1-shot RLVR data selection, `azr_core::oneshot`).

use std::collections::HashMap;

use anyhow::{Context, Result};
use azr_core::oneshot::dataset::load_jsonl;
use azr_core::oneshot::history::AccuracyHistory;
use azr_core::oneshot::select::{rank, SelectionMethod};

use crate::cli::{SelectArgs, SelectMethod};

/// Characters of a problem statement printed per row.
const PROBLEM_CHARS: usize = 72;

/// `azr select --history FILE --top N`.
pub async fn select(args: SelectArgs) -> Result<()> {
    let history = AccuracyHistory::load(&args.history)
        .with_context(|| format!("reading {}", args.history.display()))?;
    let method = match args.method {
        SelectMethod::Var => SelectionMethod::Var,
        SelectMethod::Std => SelectionMethod::Std,
    };
    let rows = match &args.dataset {
        Some(p) => load_jsonl(p)
            .with_context(|| format!("reading {}", p.display()))?
            .into_iter()
            .map(|r| (r.index.clone(), r))
            .collect(),
        None => HashMap::new(),
    };
    println!("rank\tindex\tscore");
    for r in rank(&history, method).into_iter().take(args.top) {
        let mut line = format!("{}\t{}\t{:.6}", r.rank, r.index, r.score);
        if let Some(row) = rows.get(&r.index) {
            let problem: String = row
                .prompt
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(PROBLEM_CHARS)
                .collect();
            line.push_str(&format!("\t{problem}\t{}", row.answer));
        }
        println!("{line}");
    }
    Ok(())
}
