//! Process-wide observability: `tracing` logs and the Prometheus exporter.

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Install the `tracing` subscriber (level from `RUST_LOG`, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Default histogram buckets for `_seconds` metrics (1 ms .. ~17 min).
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
];
/// Buckets for token counts.
const TOKEN_BUCKETS: [f64; 10] = [1.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 8192.0];

/// Install the global Prometheus recorder with an HTTP listener on `addr` (must run inside the
/// tokio runtime). Every histogram gets explicit buckets, so none renders as a summary.
pub fn install_metrics(addr: SocketAddr) -> Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &SECONDS_BUCKETS)
        .context("histogram buckets")?
        .set_buckets_for_metric(Matcher::Suffix("tokens".into()), &TOKEN_BUCKETS)
        .context("histogram buckets")?
        .install()
        .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(())
}
