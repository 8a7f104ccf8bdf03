//! Several machines on loopback: a head (`azr run --cluster-listen`) and worker nodes
//! (`azr node --join`) as separate processes.
//!
//! * Two nodes do the executor work and, with the head's own engine, the rollout work of a run
//!   (weights sent to them after every update); one is SIGKILLed mid-run with a generation
//!   request in flight; the run completes with every proposal trained once, that request
//!   re-issued, no rollout staler than `run.staleness`, and the cluster's counts reconciled.
//! * A node with the wrong cookie is refused, with a clear error on both sides; so is a node
//!   that speaks another cluster protocol version.
//! * A node with the evaluator role scores every due evaluation of a run (the pinned version's
//!   snapshot sent to it, the items in the request): the head records its scores tagged with the
//!   node, and each equals, digest of the answers included, `azr eval` of the same version on
//!   the head's machine. An evaluator node killed mid-evaluation has that evaluation re-issued
//!   to another one and recorded once.
//! * Scaling: with a simulated I/O-bound executor (a fixed sleep per execution), two nodes run
//!   about twice the executions per second of one (`azr bench cluster`).

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{azr, Fixture};

/// A free loopback port.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A child process whose stderr is collected line by line.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn azr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr");
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l.lock().expect("log").push(line);
            }
        });
        Self { child, log }
    }

    fn text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Wait until `needle` was logged `n` times (panics after `within`).
    fn wait_for(&self, needle: &str, n: usize, within: Duration) {
        let t0 = Instant::now();
        while self.count(needle) < n {
            assert!(
                t0.elapsed() < within,
                "`{needle}` x{n} not seen in {within:?}; log:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for exit (panics after `within`, killing it).
    fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            if t0.elapsed() > within {
                let _ = self.child.kill();
                panic!("did not exit within {within:?}; log:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cookie(dir: &Path, name: &str, value: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, value).expect("cookie");
    p
}

fn node(addr: &str, cookie: &Path, name: &str, extra: &[&str]) -> Command {
    let mut c = azr();
    c.args(["node", "--join", addr, "--cookie-file"])
        .arg(cookie)
        .args(["--name", name, "--capacity", "2", "--retry-for", "20"])
        .args(extra)
        .env(
            "RUST_LOG",
            "info,azr::cluster::worker=debug,azr::cluster::rollout=debug",
        );
    c
}

/// `azr run --config CONFIG --cluster-listen ADDR --cookie-file COOKIE`, to which the caller
/// adds its own flags.
fn head_command(config: &Path, addr: &str, cookie: &Path) -> Command {
    let mut c = azr();
    c.args(["run", "--config"])
        .arg(config)
        .args(["--cluster-listen", addr, "--cookie-file"])
        .arg(cookie);
    c
}

// Long enough that node b still gets generations after its first executed jobs, on a loaded
// 2-core machine too (at 8 steps the run could end before one was in flight there).
const STEPS: u64 = 16;

#[test]
fn two_nodes_share_the_executor_and_rollout_work_and_survive_a_sigkill() {
    let f = Fixture::new("");
    let text = std::fs::read_to_string(f.config())
        .expect("config")
        .replace("max_steps = 3", &format!("max_steps = {STEPS}"));
    std::fs::write(f.config(), text).expect("config");
    let c = cookie(f.dir.path(), "cookie", "loopback-secret\n");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut head_cmd = head_command(&f.config(), &addr, &c);
    head_cmd.args(["--cluster-min-nodes", "2", "--cluster-no-local-executor"]);
    let mut head = Proc::spawn(head_cmd);
    // Each execution holds a node for 250 ms, so jobs are in flight when one node dies; node
    // b holds each generation 1 s longer (a slow engine), so one is in flight when it dies.
    // Training starts once both nodes are ready (rollout weights installed).
    let roles = ["--roles", "executor,rollout", "--simulate-exec-ms", "250"];
    let a = Proc::spawn(node(&addr, &c, "a", &roles));
    let slow: Vec<&str> = roles
        .iter()
        .copied()
        .chain(["--simulate-gen-ms", "1000"])
        .collect();
    let mut b = Proc::spawn(node(&addr, &c, "b", &slow));
    head.wait_for("node joined", 2, Duration::from_secs(60));
    // SIGKILL node b once it has installed weights, generated, executed some jobs, and has a
    // generation in flight.
    b.wait_for("weights installed", 1, Duration::from_secs(120));
    b.wait_for("generated", 1, Duration::from_secs(120));
    b.wait_for("executed job", 3, Duration::from_secs(120));
    let t0 = Instant::now();
    while b.count("generation started") <= b.count("generated") {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no generation in flight on b; log:\n{}",
            b.text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    b.child.kill().expect("SIGKILL node b");
    head.wait_for("node lost", 1, Duration::from_secs(30));
    // Node b comes back under its name and rejoins.
    let b2 = Proc::spawn(node(&addr, &c, "b", &roles));
    let status = head.wait(Duration::from_secs(300));
    assert!(status.success(), "head failed; log:\n{}", head.text());

    // Every step trained its full quota of proposals (3 kinds x propose_batch 2): none lost,
    // none twice.
    let state = f.latest_state();
    assert_eq!(state["step"].as_u64(), Some(STEPS));
    assert_eq!(state["counters"]["proposals"].as_u64(), Some(STEPS * 3 * 2));
    // Whichever engine generated them, no trained rollout was staler than run.staleness = 1.
    let train = std::fs::read_to_string(f.run_dir().join("train.jsonl")).expect("train.jsonl");
    let rows: Vec<serde_json::Value> = train
        .lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect();
    assert_eq!(rows.len() as u64, STEPS);
    for r in &rows {
        assert!(
            r["staleness_max"].as_u64().expect("staleness_max") <= 1,
            "{r}"
        );
    }

    // The cluster's counts reconcile.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.run_dir().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json");
    eprintln!("cluster.json: {report}");
    let nodes = report["nodes"].as_object().expect("nodes");
    let n = |node: &str, key: &str| nodes[node][key].as_u64().expect(key);
    assert_eq!(n("head", "issued"), 0, "the head ran no executor: {report}");
    assert!(
        n("a", "completed") > 0 && n("b", "completed") > 0,
        "{report}"
    );
    // Rollout work on both nodes (and on the head's own engine), with weights sent after
    // updates: more than the first snapshot reached node a.
    assert!(
        n("a", "gen_completed") > 0
            && n("b", "gen_completed") > 0
            && n("head", "gen_completed") > 0,
        "{report}"
    );
    assert!(n("a", "weight_syncs") >= 2, "{report}");
    assert!(n("a", "weights_version") >= 1, "{report}");
    assert!(n("a", "weights_bytes") > 0, "{report}");
    assert_eq!(n("b", "disconnects"), 1, "{report}");
    assert_eq!(n("a", "disconnects"), 0, "{report}");
    // Killed once, back once (unless the run ended before the new process joined).
    let rejoined = head.text().contains("rejoined=true");
    assert_eq!(n("b", "joins"), if rejoined { 2 } else { 1 }, "{report}");
    assert_eq!(nodes["b"]["up"], rejoined, "{report}");
    assert_eq!(nodes["a"]["up"], true);
    let sum = |key: &str| {
        nodes
            .values()
            .map(|v| v[key].as_u64().expect(key))
            .sum::<u64>()
    };
    // Every attempt ended one way: answered, lost (and re-issued), or still in flight when the
    // run ended (cancelled with it: slots admitted ahead that the run never trains).
    let g = |key: &str| report[key].as_u64().expect(key);
    assert_eq!(
        sum("issued"),
        sum("completed") + sum("lost") + sum("in_flight"),
        "{report}"
    );
    assert_eq!(g("reissued"), sum("lost"), "{report}");
    assert_eq!(g("jobs"), g("delivered") + g("cancelled"), "{report}");
    assert_eq!(g("cancelled"), sum("in_flight"), "{report}");
    // The same for generation requests: each attempt completed, lost, refused or in flight;
    // each request delivered once, failed by the head's engine (cut off at shutdown) or still
    // in flight; every lost or refused attempt on a node was issued again.
    assert_eq!(
        sum("gen_issued"),
        sum("gen_completed") + sum("gen_lost") + sum("gen_refused") + sum("gen_in_flight"),
        "{report}"
    );
    assert_eq!(
        g("generations"),
        g("gen_delivered") + g("gen_failed") + sum("gen_in_flight"),
        "{report}"
    );
    assert_eq!(
        g("gen_reissued") + g("gen_failed"),
        sum("gen_lost") + sum("gen_refused"),
        "{report}"
    );
    // The generation in flight on b when it died was lost there and issued again.
    assert!(n("b", "gen_lost") >= 1, "{report}");
    assert!(g("gen_reissued") >= 1, "{report}");
    // Nothing dangles on the dead node: each of its attempts was answered or lost.
    assert_eq!(n("b", "in_flight"), 0, "{report}");
    assert_eq!(
        n("b", "issued"),
        n("b", "completed") + n("b", "lost"),
        "{report}"
    );
    assert!(
        report["delivered"].as_u64().expect("delivered") >= STEPS * 3 * 2,
        "{report}"
    );
    // Node b's lost jobs are exactly the ones re-issued.
    assert_eq!(n("a", "lost"), 0, "{report}");
    drop((a, b2));
}

#[test]
fn a_wrong_cookie_is_refused_on_both_sides() {
    let f = Fixture::new("");
    let good = cookie(f.dir.path(), "good", "right-cookie");
    let bad = cookie(f.dir.path(), "bad", "wrong-cookie");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut head_cmd = head_command(&f.config(), &addr, &good);
    head_cmd.args(["--cluster-min-nodes", "1"]);
    let head = Proc::spawn(head_cmd);
    let mut intruder = Proc::spawn(node(&addr, &bad, "intruder", &[]));
    let status = intruder.wait(Duration::from_secs(60));
    assert!(!status.success(), "a node with the wrong cookie must fail");
    assert!(
        intruder.text().contains("cookies differ"),
        "node side: {}",
        intruder.text()
    );
    head.wait_for("refused a node", 1, Duration::from_secs(30));
    assert!(
        head.text().contains("wrong cookie"),
        "head side: {}",
        head.text()
    );
    assert_eq!(head.count("node joined"), 0);
}

#[test]
fn a_node_of_another_protocol_version_is_refused_on_both_sides() {
    let f = Fixture::new("");
    let c = cookie(f.dir.path(), "cookie", "same-cookie");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut head_cmd = head_command(&f.config(), &addr, &c);
    head_cmd.args(["--cluster-min-nodes", "1"]);
    let head = Proc::spawn(head_cmd);
    // The hidden override makes the node announce protocol 1 (what azr before the rollout
    // role spoke).
    let mut cmd = node(&addr, &c, "old", &["--roles", "rollout"]);
    cmd.env("AZR_CLUSTER_PROTOCOL_OVERRIDE", "1");
    let mut old = Proc::spawn(cmd);
    let status = old.wait(Duration::from_secs(60));
    assert!(!status.success(), "a node of another protocol must fail");
    let node_side = old.text();
    assert!(
        node_side.contains("the head refused this node")
            && node_side.contains("incompatible cluster protocol: node speaks 1"),
        "node side: {node_side}"
    );
    head.wait_for("refused a node", 1, Duration::from_secs(30));
    assert!(
        head.text().contains("incompatible cluster protocol"),
        "head side: {}",
        head.text()
    );
    assert_eq!(head.count("node joined"), 0);
}

#[test]
fn two_nodes_run_about_twice_the_executions_per_second_of_one() {
    // Every execution is a fixed 200 ms sleep holding one of a node's 4 units of capacity:
    // 20 executions/s per node at best.
    let out = azr()
        .args([
            "bench",
            "cluster",
            "--n",
            "80",
            "--sleep-ms",
            "200",
            "--capacity",
            "4",
        ])
        .output()
        .expect("azr bench cluster");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let variants = v["variants"].as_array().expect("variants");
    assert_eq!(variants.len(), 2);
    for (var, nodes) in variants.iter().zip([1u64, 2]) {
        assert_eq!(var["nodes"].as_u64(), Some(nodes));
        let per_node = var["per_node"].as_array().expect("per_node");
        assert_eq!(per_node.len() as u64, nodes, "{var}");
        // Work spread over every node, all of it answered.
        let total: u64 = per_node.iter().map(|p| p[1].as_u64().expect("count")).sum();
        assert_eq!(total, 80, "{var}");
        assert!(per_node.iter().all(|p| p[1].as_u64() > Some(0)), "{var}");
        // Never faster than the sleep allows.
        let rate = var["executions_per_second"].as_f64().expect("rate");
        assert!(rate <= 20.0 * nodes as f64 * 1.05, "{var}");
    }
    let speedup = v["speedup"].as_f64().expect("speedup");
    assert!(speedup > 1.5, "2 nodes over 1: {speedup}");
}

#[test]
fn nodes_speak_tls_to_a_tls_head_and_plain_nodes_are_refused() {
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/cluster-tls");
    let f = Fixture::new("");
    let c = cookie(f.dir.path(), "cookie", "tls-secret");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut head_cmd = head_command(&f.config(), &addr, &c);
    head_cmd
        .arg("--tls-cert")
        .arg(tls.join("head.pem"))
        .arg("--tls-key")
        .arg(tls.join("head.key"))
        .args(["--cluster-min-nodes", "1", "--cluster-no-local-executor"]);
    let mut head = Proc::spawn(head_cmd);
    // A node without TLS cannot join a TLS head.
    let mut plain = Proc::spawn(node(&addr, &c, "plain", &[]));
    assert!(!plain.wait(Duration::from_secs(60)).success());
    assert!(
        plain.text().contains("only one side uses TLS"),
        "{}",
        plain.text()
    );
    // One that trusts the head's CA does, and does all the executor work.
    let ca = tls.join("ca.pem");
    let secure = Proc::spawn(node(
        &addr,
        &c,
        "secure",
        &["--tls-ca", ca.to_str().expect("utf-8 path")],
    ));
    let status = head.wait(Duration::from_secs(300));
    assert!(status.success(), "head failed; log:\n{}", head.text());
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.run_dir().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json");
    assert!(
        report["nodes"]["secure"]["completed"].as_u64() > Some(0),
        "{report}"
    );
    assert!(report["nodes"].get("plain").is_none(), "{report}");
    drop(secure);
}

/// The shipped tiny model (pretrained: its greedy held-out accuracy is not zero).
fn tiny_base() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/tiny-base")
}

/// A 4-step self-play run of the tiny model that evaluates 8 held-out deduction items greedily
/// at the start and every 2 steps (versions 0, 2 and 4), checkpointing every 2 steps.
fn eval_fixture() -> Fixture {
    let f = Fixture::new("");
    let text = support::config_text(&tiny_base(), &f.run_dir(), "")
        .replace("max_steps = 3", "max_steps = 4")
        .replace(
            "[evaluator]\nevery = 0",
            "[evaluator]\nbenchmarks = [\"heldout-deduction\"]\nlimit = 8\nevery = 2\n\
             at_start = true\nmax_new_tokens = 48",
        );
    assert!(text.contains("at_start = true"), "{text}");
    std::fs::write(f.config(), text).expect("config");
    f
}

/// The rows of the run's `eval.jsonl`.
fn eval_rows(f: &Fixture) -> Vec<serde_json::Value> {
    std::fs::read_to_string(f.run_dir().join("eval.jsonl"))
        .expect("eval.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect()
}

fn cluster_report(f: &Fixture) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(f.run_dir().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json")
}

/// The policy versions of the recorded evaluation rows, sorted.
fn recorded_versions(rows: &[serde_json::Value]) -> Vec<u64> {
    let mut versions: Vec<u64> = rows
        .iter()
        .map(|r| r["policy_version"].as_u64().expect("policy_version"))
        .collect();
    versions.sort_unstable();
    versions
}

#[test]
fn an_evaluator_node_scores_each_evaluation_as_the_head_would() {
    let f = eval_fixture();
    let c = cookie(f.dir.path(), "cookie", "eval-secret");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut head_cmd = head_command(&f.config(), &addr, &c);
    head_cmd.args(["--cluster-min-nodes", "1"]);
    let mut head = Proc::spawn(head_cmd);
    let e = Proc::spawn(node(&addr, &c, "e", &["--roles", "evaluator"]));
    let status = head.wait(Duration::from_secs(300));
    assert!(status.success(), "head failed; log:\n{}", head.text());

    // Each due version scored once, on the node, and recorded with its name.
    let rows = eval_rows(&f);
    assert_eq!(recorded_versions(&rows), vec![0, 2, 4], "{rows:?}");
    for r in &rows {
        assert_eq!(r["node"], "e", "{r}");
        assert_eq!(r["benchmark"], "heldout-deduction", "{r}");
        assert_eq!(r["items"], 8, "{r}");
    }
    assert_eq!(e.count("evaluated"), 3, "node log:\n{}", e.text());
    let report = cluster_report(&f);
    let n = |node: &str, key: &str| report["nodes"][node][key].as_u64().expect(key);
    assert_eq!(
        (
            n("e", "eval_issued"),
            n("e", "eval_completed"),
            n("e", "eval_lost")
        ),
        (3, 3, 0),
        "{report}"
    );
    assert_eq!(
        n("e", "weight_syncs"),
        3,
        "one pinned snapshot per evaluation: {report}"
    );
    assert_eq!(n("head", "eval_issued"), 0, "{report}");
    assert_eq!(report["evaluations"], 3, "{report}");
    assert_eq!(report["eval_delivered"], 3, "{report}");

    // Greedy decoding does not depend on the engine's batch composition, the snapshot crosses
    // the wire bit for bit, and the items, prompts and grading are the head's: so every score
    // equals `azr eval` of the same version on this machine, the digest of the generated
    // token ids included (and the digests of the versions differ, so it tells them apart).
    let checkpoints = f.run_dir().join("checkpoints");
    let mut digests = Vec::new();
    for r in &rows {
        let version = r["policy_version"].as_u64().expect("version");
        let mut cmd = azr();
        cmd.args([
            "eval",
            "--benchmark",
            "heldout-deduction",
            "--limit",
            "8",
            "--json",
            "--config",
        ])
        .arg(f.config());
        if version > 0 {
            let dir = std::fs::read_dir(&checkpoints)
                .expect("checkpoints")
                .map(|e| e.expect("entry").path())
                .find(|p| {
                    std::fs::read_to_string(p.join("state.json")).is_ok_and(|t| {
                        serde_json::from_str::<serde_json::Value>(&t).expect("state")["version"]
                            == version
                    })
                })
                .unwrap_or_else(|| panic!("no checkpoint of version {version}"));
            cmd.arg("--checkpoint").arg(dir);
        }
        let out = cmd.output().expect("azr eval");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        support::ok(out);
        let local: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json row");
        for key in [
            "benchmark",
            "accuracy",
            "items",
            "samples",
            "temperature",
            "policy_version",
            "answers_digest",
        ] {
            assert_eq!(r[key], local[key], "{key}: node {r} vs local {local}");
        }
        digests.push(
            local["answers_digest"]
                .as_str()
                .expect("digest")
                .to_string(),
        );
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3, "{rows:?}");
    assert!(
        rows.iter().any(|r| r["accuracy"].as_f64() > Some(0.0)),
        "the tiny model answers some items: {rows:?}"
    );
    drop(e);
}

#[test]
fn an_evaluation_lost_with_its_node_is_reissued_and_recorded_once() {
    let f = eval_fixture();
    let c = cookie(f.dir.path(), "cookie", "eval-secret");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut head_cmd = head_command(&f.config(), &addr, &c);
    head_cmd.args(["--cluster-min-nodes", "2"]);
    let mut head = Proc::spawn(head_cmd);
    // Both nodes are free and unused when the first evaluation (version 0) is due: it goes to
    // `a` (ties go by name), which holds its reply 30 s and is SIGKILLed meanwhile.
    let mut a = Proc::spawn(node(
        &addr,
        &c,
        "a",
        &["--roles", "evaluator", "--simulate-eval-ms", "30000"],
    ));
    let b = Proc::spawn(node(&addr, &c, "b", &["--roles", "evaluator"]));
    a.wait_for("evaluation started", 1, Duration::from_secs(120));
    a.child.kill().expect("SIGKILL node a");
    let status = head.wait(Duration::from_secs(300));
    assert!(status.success(), "head failed; log:\n{}", head.text());

    // Every due version recorded once, all by `b`: version 0 was issued again there (an
    // evaluation waits while `b` is busy with another).
    let rows = eval_rows(&f);
    assert_eq!(recorded_versions(&rows), vec![0, 2, 4], "{rows:?}");
    for r in &rows {
        assert_eq!(r["node"], "b", "{r}");
    }
    let report = cluster_report(&f);
    let n = |node: &str, key: &str| {
        report["nodes"][node]
            .get(key)
            .map_or(0, |v| v.as_u64().expect(key))
    };
    assert_eq!(
        (
            n("a", "eval_issued"),
            n("a", "eval_lost"),
            n("a", "eval_in_flight")
        ),
        (1, 1, 0),
        "{report}"
    );
    assert_eq!(
        (n("b", "eval_issued"), n("b", "eval_completed")),
        (3, 3),
        "{report}"
    );
    assert_eq!(n("head", "eval_issued"), 0, "{report}");
    let g = |key: &str| report[key].as_u64().expect(key);
    assert_eq!(
        (
            g("evaluations"),
            g("eval_delivered"),
            g("eval_reissued"),
            g("eval_failed")
        ),
        (3, 3, 1, 0),
        "{report}"
    );
    // Every attempt ended one way (or is still in flight); every lost or refused node attempt
    // was issued again.
    let sum = |key: &str| {
        report["nodes"]
            .as_object()
            .expect("nodes")
            .values()
            .map(|v| v[key].as_u64().expect(key))
            .sum::<u64>()
    };
    assert_eq!(
        sum("eval_issued"),
        sum("eval_completed") + sum("eval_lost") + sum("eval_refused") + sum("eval_in_flight"),
        "{report}"
    );
    assert_eq!(
        g("eval_reissued") + g("eval_failed"),
        sum("eval_lost") + sum("eval_refused"),
        "{report}"
    );
    assert!(
        head.text()
            .contains("evaluation not scored by the node; re-issuing"),
        "{}",
        head.text()
    );
    drop(b);
}
