//! `azr node`: a worker process on another machine, and the cluster flags of `azr run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cluster::head::HeadOptions;
use crate::cluster::node::{self, NodeOptions};
use crate::cluster::wire::NodeRole;
use crate::cluster::{read_cookie, ClusterError};

/// `azr node`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The head's cluster address (`azr run --cluster-listen`), HOST:PORT.
    #[arg(long)]
    pub join: String,
    /// File holding the cluster's magic cookie (the same as the head's).
    #[arg(long)]
    pub cookie_file: PathBuf,
    /// Roles to host, comma separated: executor (validates proposals), rollout (a rollout
    /// engine generating for the head; weights arrive from the head after every update),
    /// evaluator (scores the head's due evaluations on the pinned weight version, sent by the
    /// head, with its own engine and executor).
    #[arg(long, default_value = "executor", value_delimiter = ',')]
    pub roles: Vec<String>,
    /// This node's name, unique in the cluster (default: the host name). A node restarted with
    /// the same name rejoins as the same node.
    #[arg(long)]
    pub name: Option<String>,
    /// Executions run at once (default: the number of CPUs).
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Prometheus listen address of this node, e.g. 0.0.0.0:9465.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Speak TLS to the head, trusting the certificates in this PEM file.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// The name the head's certificate must carry (default: the host of --join).
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// Simulated I/O per execution in milliseconds (scaling measurements; 0 = none).
    #[arg(long, default_value_t = 0)]
    pub simulate_exec_ms: u64,
    /// Simulated extra time per generation in milliseconds, before the reply (tests of a node
    /// lost with a generation in flight; 0 = none).
    #[arg(long, default_value_t = 0, hide = true)]
    pub simulate_gen_ms: u64,
    /// Simulated extra time per evaluation in milliseconds, before the reply (tests of a node
    /// lost with an evaluation in flight; 0 = none).
    #[arg(long, default_value_t = 0, hide = true)]
    pub simulate_eval_ms: u64,
    /// Give up after the head has been unreachable this many seconds (0 = never).
    #[arg(long, default_value_t = 60)]
    pub retry_for: u64,
}

/// The cluster flags of `azr run` (the head).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Accept worker nodes (`azr node --join`) on HOST:PORT.
    #[arg(long, requires = "cookie_file")]
    pub cluster_listen: Option<String>,
    /// File holding the cluster's magic cookie (nodes must use the same).
    #[arg(long, requires = "cluster_listen")]
    pub cookie_file: Option<PathBuf>,
    /// Serve TLS to nodes with this certificate chain (PEM).
    #[arg(long, requires_all = ["tls_key", "cluster_listen"])]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Wait for this many nodes to join before training starts.
    #[arg(long, default_value_t = 0, requires = "cluster_listen")]
    pub cluster_min_nodes: usize,
    /// Run no executor on the head: all executor work goes to nodes.
    #[arg(long, requires = "cluster_listen")]
    pub cluster_no_local_executor: bool,
}

impl ClusterArgs {
    /// The head's options and whether it runs an executor itself, when `--cluster-listen` is
    /// given; `timeout` bounds one job attempt and the wait for `--cluster-min-nodes`.
    pub fn head_options(&self, timeout: Duration) -> Result<Option<(HeadOptions, bool)>> {
        let Some(listen) = &self.cluster_listen else {
            return Ok(None);
        };
        let cookie_file = self
            .cookie_file
            .as_ref()
            .context("--cluster-listen needs --cookie-file")?;
        let opts = HeadOptions {
            listen: listen.clone(),
            cookie: read_cookie(cookie_file)?,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            min_nodes: self.cluster_min_nodes,
            min_nodes_timeout: timeout,
            timeout,
        };
        Ok(Some((opts, !self.cluster_no_local_executor)))
    }
}

/// This machine's host name (`node` when unknown).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

/// `azr node`.
pub async fn node(args: NodeArgs) -> Result<()> {
    let roles = args
        .roles
        .iter()
        .map(|r| {
            NodeRole::parse(r).with_context(|| {
                format!("--roles: unknown role `{r}` (executor, rollout, evaluator)")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(addr) = &args.metrics_addr {
        let a = addr
            .parse()
            .with_context(|| format!("--metrics-addr `{addr}`"))?;
        crate::observe::install_metrics(a)?;
    }
    let capacity = args.capacity.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let name = args.name.clone().unwrap_or_else(host_name);
    let opts = NodeOptions {
        join: args.join.clone(),
        cookie: read_cookie(&args.cookie_file)?,
        name: name.clone(),
        roles,
        capacity,
        metrics_addr: args.metrics_addr.clone(),
        tls_ca: args.tls_ca.clone(),
        tls_server_name: args.tls_server_name.clone(),
        simulate: Duration::from_millis(args.simulate_exec_ms),
        simulate_gen: Duration::from_millis(args.simulate_gen_ms),
        simulate_eval: Duration::from_millis(args.simulate_eval_ms),
        retry_for: Duration::from_secs(args.retry_for),
    };
    tracing::info!(node = %name, head = %args.join, capacity, "node starting");
    let stop = super::run::stop_signal();
    match node::run(opts, stop).await {
        Ok(s) => {
            tracing::info!(node = %name, joins = s.joins, "node stopped");
            Ok(())
        }
        Err(e @ (ClusterError::Auth(_) | ClusterError::Refused(_))) => {
            tracing::error!(node = %name, error = %e, "not admitted");
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
