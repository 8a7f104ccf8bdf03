//! Runs the model benchmark (`cargo run --release --example model_bench [small|medium|all]`);
//! the `azr bench model` command runs the same library function. `NO_CACHE=0` skips the slow
//! no-cache sampling runs.

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let mut cfg = azr_core::model::bench::BenchConfig::default();
    match which.as_str() {
        "small" => cfg.models.truncate(1),
        "medium" => {
            cfg.models.remove(0);
        }
        _ => {}
    }
    if std::env::var("NO_CACHE").as_deref() == Ok("0") {
        cfg.no_cache = false;
    }
    match azr_core::model::bench::run(&cfg) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
