//! Executor throughput benchmark (prints the report; asserts every execution succeeded).
//!
//! Slow and machine-dependent, so ignored by default. Run:
//! `cargo test --release -p azr-core --test executor_bench -- --ignored --nocapture`
//! (`AZR_BENCH_N` sets the executions per program, default 2000).

use azr_core::executor::{bench, ExecutorConfig};

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn executor_throughput() {
    let n = std::env::var("AZR_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let report = bench::run(&ExecutorConfig::default(), n).expect("executor starts");
    println!("{report}");
    assert_eq!(report.failures, 0);
    assert!(report.trivial_per_s > 0.0 && report.spawn_trivial_per_s > 0.0);
}
