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

/// Install the global Prometheus recorder with an HTTP listener on `addr` (must run inside the
/// tokio runtime), with the explicit buckets of every histogram defined in
/// `azr_core::metrics` (none renders as a summary), then describe and register every metric so
/// dashboards show zeros from the first scrape.
pub fn install_metrics(addr: SocketAddr) -> Result<()> {
    // One recorder per process: a second run in the same process (a library user's) keeps it.
    static INSTALLED: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
    if let Some(first) = INSTALLED.get() {
        tracing::warn!(%first, requested = %addr, "metrics exporter already running; kept");
        return Ok(());
    }
    let mut builder = PrometheusBuilder::new().with_http_listener(addr);
    for (name, buckets) in azr_core::metrics::buckets() {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
            .with_context(|| format!("histogram buckets of {name}"))?;
    }
    builder
        .install()
        .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    let _ = INSTALLED.set(addr);
    azr_core::metrics::describe_all();
    azr_core::metrics::register_all();
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(())
}
