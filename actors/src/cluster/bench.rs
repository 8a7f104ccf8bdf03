//! `azr bench cluster`: executions per second of a simulated I/O-bound executor workload with
//! one node, then two, on this machine.
//!
//! Each variant starts a head in this process (no executor of its own), starts `nodes`
//! `azr node` processes on loopback with `--simulate-exec-ms` (every execution holds one unit
//! of a node's capacity for a fixed sleep, as a call to a remote sandbox would), waits for them
//! to join, and pushes `n` jobs through the head's dispatcher as fast as capacity allows. The
//! jobs carry an unparsable proposal, so a node spends no CPU on Python: the sleep is the
//! workload, and the measurement is of the distribution alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::head::{ClusterHead, HeadOptions};
use super::wire::ExecJob;
use super::ClusterError;

/// One variant.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterVariant {
    /// Nodes.
    pub nodes: usize,
    /// Jobs run.
    pub executions: usize,
    /// Wall seconds for all of them.
    pub seconds: f64,
    /// Executions per second.
    pub executions_per_second: f64,
    /// Jobs each node answered.
    pub per_node: Vec<(String, u64)>,
}

/// The result of `azr bench cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBench {
    /// Simulated I/O per execution (ms).
    pub sleep_ms: u64,
    /// Executions a node runs at once.
    pub capacity: usize,
    /// Executions per second with one node, then two.
    pub variants: Vec<ClusterVariant>,
    /// Two nodes over one.
    pub speedup: f64,
}

/// Node processes started by the bench (killed and reaped on drop).
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16, ClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ClusterError::Address("127.0.0.1:0".into(), e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ClusterError::Address("127.0.0.1:0".into(), e.to_string()))
}

async fn variant(
    nodes: usize,
    n: usize,
    sleep_ms: u64,
    capacity: usize,
    config_toml: &str,
    cookie_file: &Path,
    cookie: &str,
) -> Result<ClusterVariant, ClusterError> {
    let listen = format!("127.0.0.1:{}", free_port()?);
    let head = ClusterHead::start(
        HeadOptions {
            listen: listen.clone(),
            cookie: cookie.to_string(),
            tls: None,
            min_nodes: 0,
            min_nodes_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        },
        config_toml.to_string(),
        None,
    )
    .await?;
    let exe = std::env::current_exe().map_err(|e| ClusterError::Spawn(e.to_string()))?;
    let mut children = Nodes(Vec::new());
    for i in 0..nodes {
        let child = Command::new(&exe)
            .args(["node", "--join", &listen, "--cookie-file"])
            .arg(cookie_file)
            .args(["--name", &format!("bench-{i}")])
            .args(["--capacity", &capacity.to_string()])
            .args(["--simulate-exec-ms", &sleep_ms.to_string()])
            .args(["--retry-for", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ClusterError::Spawn(format!("azr node: {e}")))?;
        children.0.push(child);
    }
    head.wait_for_nodes(nodes, Duration::from_secs(60)).await?;
    // Process groups are mirrored just after Hello: give them a moment so the first jobs see
    // every node.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let jobs = (0..n as u64).map(|id| ExecJob {
        id,
        parsed: Err("simulated workload".into()),
        batch: 0,
        first_version: 0,
    });
    head.execute_all(jobs)
        .await
        .map_err(ClusterError::Protocol)?;
    let seconds = t0.elapsed().as_secs_f64();
    let report = head.report();
    head.stop();
    drop(children);
    Ok(ClusterVariant {
        nodes,
        executions: n,
        seconds,
        executions_per_second: n as f64 / seconds,
        per_node: report
            .nodes
            .iter()
            .map(|(k, v)| (k.clone(), v.completed))
            .collect(),
    })
}

/// Measure one node, then two.
pub async fn bench(
    config_toml: &str,
    n: usize,
    sleep_ms: u64,
    capacity: usize,
) -> Result<ClusterBench, ClusterError> {
    let dir = tempfile::tempdir().map_err(|e| ClusterError::Spawn(e.to_string()))?;
    let cookie = format!("bench-{}", std::process::id());
    let cookie_file = dir.path().join("cookie");
    std::fs::write(&cookie_file, &cookie).map_err(|e| ClusterError::Cookie {
        path: cookie_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut variants = Vec::new();
    for nodes in [1, 2] {
        let v = variant(
            nodes,
            n,
            sleep_ms,
            capacity,
            config_toml,
            &cookie_file,
            &cookie,
        )
        .await?;
        tracing::info!(
            nodes,
            executions_per_second = v.executions_per_second,
            "cluster variant measured"
        );
        variants.push(v);
    }
    let speedup = variants[1].executions_per_second / variants[0].executions_per_second;
    Ok(ClusterBench {
        sleep_ms,
        capacity,
        variants,
        speedup,
    })
}
