//! `azr exec`: run Python through the sandboxed executor.

use std::io::{BufRead, Write};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use azr_core::executor::{ExecJob, Executor};

use crate::cli::ExecArgs;

/// `azr exec --code FILE --input TEXT` or `azr exec --batch FILE.jsonl`.
pub async fn exec(args: ExecArgs) -> Result<()> {
    let cfg = super::load_config(args.config.as_deref())?;
    let exec_cfg = cfg.raw.executor.clone();
    let executor = Arc::new(
        tokio::task::spawn_blocking(move || Executor::start(exec_cfg))
            .await?
            .context("starting the executor")?,
    );
    let validate = args.validate;
    let outcomes = if let Some(code_path) = &args.code {
        let code = std::fs::read_to_string(code_path)
            .with_context(|| format!("reading {}", code_path.display()))?;
        let input = args.input.clone().unwrap_or_default();
        let ex = executor.clone();
        vec![
            tokio::task::spawn_blocking(move || {
                if validate {
                    ex.validate(&code, &input)
                } else {
                    ex.run(&code, &input)
                }
            })
            .await?,
        ]
    } else if let Some(batch) = &args.batch {
        let file =
            std::fs::File::open(batch).with_context(|| format!("opening {}", batch.display()))?;
        let mut jobs = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let job: ExecJob = serde_json::from_str(&line).with_context(|| {
                format!(
                    "{} line {}: expected {{\"code\", \"input\"}}",
                    batch.display(),
                    i + 1
                )
            })?;
            jobs.push(job);
        }
        let ex = executor.clone();
        tokio::task::spawn_blocking(move || {
            if validate {
                jobs.iter()
                    .map(|j| ex.validate(&j.code, &j.input))
                    .collect()
            } else {
                ex.run_many(&jobs)
            }
        })
        .await?
    } else {
        bail!("give --code FILE --input TEXT or --batch FILE.jsonl");
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for o in outcomes {
        serde_json::to_writer(&mut out, &o)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
