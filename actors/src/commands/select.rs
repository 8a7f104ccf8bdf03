//! `azr select`: rank the examples of an accuracy history by historical variance (1-shot
//! RLVR data selection) and print the top of the ranking.

use anyhow::{Context, Result};
use azr_core::oneshot::dataset::load_jsonl;
use azr_core::oneshot::history::AccuracyHistory;
use azr_core::oneshot::select::{rank, render_table, SelectionMethod};

use crate::cli::{SelectArgs, SelectMethod};

/// Characters of each problem shown with `--dataset`.
const PREVIEW_CHARS: usize = 60;

/// The table `azr select` prints.
pub fn table(args: &SelectArgs) -> Result<String> {
    let history = AccuracyHistory::load(&args.history)
        .with_context(|| format!("reading the history {}", args.history.display()))?;
    let method = match args.method {
        SelectMethod::Var => SelectionMethod::Var,
        SelectMethod::Std => SelectionMethod::Std,
    };
    let ranked = rank(&history, method);
    let dataset = match &args.dataset {
        Some(p) => {
            Some(load_jsonl(p).with_context(|| format!("reading the dataset {}", p.display()))?)
        }
        None => None,
    };
    Ok(render_table(
        &ranked,
        args.top,
        dataset.as_deref(),
        PREVIEW_CHARS,
    ))
}

/// `azr select --history FILE --top N [--method var|std] [--dataset FILE]`.
pub async fn select(args: SelectArgs) -> Result<()> {
    print!("{}", table(&args)?);
    Ok(())
}
