//! The parts of the pretraining module that run programs in the sandboxed executor: labelling,
//! the training stream, the held-out set, answer scoring and a 20-step pretraining smoke run.
//! Run with `RAYON_NUM_THREADS=1 cargo test --release -p azr-core --test pretrain_executor`.

use azr_core::executor::{Executor, ExecutorConfig, ExecutorError};
use azr_core::pretrain::chains::{is_unseen_shape, ChainSplit};
use azr_core::pretrain::eval::score;
use azr_core::pretrain::generator::{is_heldout_pair, label};
use azr_core::pretrain::{
    chain_set, heldout_set, pretrain, replay_pool, CorpusConfig, Family, HeldoutConfig, HeldoutSet,
    HeldoutTask, IoPair, PretrainConfig, ProgramGenerator, ProgramSpec, Replay, ReplaySpec,
    SampleStream, Split, TinyModelConfig, TinyTokenizer, TrainConfig, TEMPLATES,
};
use azr_core::tasks::novelty::program_shape;
use azr_core::tasks::Source;
use azr_core::types::TaskKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};

/// The executor with full isolation when this machine offers it, otherwise without (these
/// tests are about the corpus, not the sandbox, which has its own tests).
fn executor_config() -> ExecutorConfig {
    match Executor::start(ExecutorConfig::default()) {
        Ok(_) => ExecutorConfig::default(),
        Err(ExecutorError::SandboxUnavailable { .. }) => ExecutorConfig {
            require_sandbox: false,
            ..ExecutorConfig::default()
        },
        Err(e) => panic!("executor: {e}"),
    }
}

fn executor() -> Executor {
    Executor::start(executor_config()).expect("executor starts")
}

fn spec(code: &str, inputs: &[&str]) -> ProgramSpec {
    ProgramSpec {
        family: Family::Arith1,
        template: "hand".into(),
        unseen_template: false,
        message: "hand-written".into(),
        code: code.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn labels_are_the_executors_reprs_and_failures_are_dropped() {
    let ex = executor();
    let specs = vec![
        spec("def f(a):\n return a + 3", &["4", "10"]),
        spec("def f(s):\n return s[::-1].upper()", &["'abc'"]),
        spec("def f(x):\n return x[5]", &["[1, 2]"]), // IndexError: dropped
        spec("def f(d):\n d['b'] = 2\n return d", &["{'a': 1}"]),
        spec("def f(s):\n return s * 30", &["'abcd'"]), // repr longer than 40: dropped
    ];
    let labeled = label(&ex, &specs, 40);
    assert_eq!(labeled.len(), 3);
    let pairs = |i: usize| -> Vec<(String, String)> {
        labeled[i]
            .pairs
            .iter()
            .map(|p| (p.input.clone(), p.output.clone()))
            .collect()
    };
    assert_eq!(
        pairs(0),
        vec![("4".into(), "7".into()), ("10".into(), "13".into())]
    );
    assert_eq!(pairs(1), vec![("'abc'".into(), "'CBA'".into())]);
    assert_eq!(
        pairs(2),
        vec![("{'a': 1}".into(), "{'a': 1, 'b': 2}".into())]
    );
}

#[test]
fn almost_every_template_program_runs() {
    let ex = executor();
    let mut per_template: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, t) in TEMPLATES.iter().enumerate() {
        let mut g = ProgramGenerator::with_families(i as u64, Split::Heldout, &[t.family]);
        let specs: Vec<ProgramSpec> = (0..6).filter_map(|_| g.next_of_template(t, 3)).collect();
        let total: usize = specs.iter().map(|s| s.inputs.len()).sum();
        let ok: usize = label(&ex, &specs, 1000).iter().map(|p| p.pairs.len()).sum();
        per_template.insert(t.name, (ok, total));
    }
    for (name, (ok, total)) in &per_template {
        assert!(
            *ok as f64 >= 0.9 * *total as f64,
            "{name}: only {ok}/{total} executions succeeded"
        );
    }
}

#[test]
fn chain_programs_run_and_a_chain_stream_only_shows_seen_chains() {
    let ex = executor();
    // Chains of every start type run in the sandbox (an empty list under `max` or `[0]`
    // fails and is dropped, as in the templates).
    let mut g = ProgramGenerator::new(21, Split::Train).with_chains(0.99);
    let specs: Vec<ProgramSpec> = (0..400).map(|_| g.next_program(3).unwrap()).collect();
    let chains: Vec<&ProgramSpec> = specs.iter().filter(|s| s.family == Family::Chain).collect();
    assert!(chains.len() > 380, "{} chains", chains.len());
    assert!(chains
        .iter()
        .all(|s| !s.unseen_template && s.template.starts_with("chain:")));
    let total: usize = specs.iter().map(|s| s.inputs.len()).sum();
    let labeled = label(&ex, &specs, 40);
    let ok: usize = labeled.iter().map(|p| p.pairs.len()).sum();
    assert!(
        ok * 10 >= total * 7,
        "only {ok}/{total} chain executions succeeded"
    );
    let starts: HashSet<&str> = labeled
        .iter()
        .filter_map(|p| p.code.lines().next())
        .collect();
    for head in ["def f(a):", "def f(s):", "def f(x):", "def f(d):"] {
        assert!(
            starts.contains(head),
            "no labelled chain starts with {head}"
        );
    }
    // The corpus with `chain = 0.3` holds chains in about that share of programs, and every
    // sample still tokenizes.
    let tok = TinyTokenizer::build().unwrap();
    let cfg = CorpusConfig {
        chunk_programs: 300,
        chain: 0.3,
        ..CorpusConfig::default()
    };
    let samples = SampleStream::new(12, cfg).unwrap().next_chunk(&ex).unwrap();
    let with_chain = samples.iter().filter(|s| s.text.contains(" y = ")).count();
    assert!(
        with_chain * 10 > samples.len(),
        "{with_chain} of {}",
        samples.len()
    );
    for s in &samples {
        tok.encode(&s.text).expect("no unknown characters");
    }
    // `chain = 0` is the template stream itself, draw for draw.
    let mut plain = ProgramGenerator::new(7, Split::Train);
    let mut zero = ProgramGenerator::new(7, Split::Train).with_chains(0.0);
    for _ in 0..200 {
        assert_eq!(plain.next_program(3), zero.next_program(3));
    }
}

#[test]
fn every_training_sample_tokenizes_and_round_trips() {
    let ex = executor();
    let tok = TinyTokenizer::build().unwrap();
    let cfg = CorpusConfig {
        chunk_programs: 300,
        ..CorpusConfig::default()
    };
    let mut stream = SampleStream::new(11, cfg.clone()).unwrap();
    let mut kinds = HashMap::new();
    let mut max_len = 0;
    for _ in 0..2 {
        for s in stream.next_chunk(&ex).unwrap() {
            let ids = tok.encode(&s.text).expect("no unknown characters");
            assert_eq!(tok.decode(&ids).unwrap(), s.text);
            assert_eq!(ids.last(), Some(&tok.end_id));
            max_len = max_len.max(ids.len());
            *kinds.entry(s.kind).or_insert(0usize) += 1;
        }
    }
    assert!(max_len <= 400, "longest sample {max_len} tokens");
    // The mix follows the weights (0.5 / 0.25 / 0.25) within sampling noise. Proposals use
    // 2-3 programs, so about 600 / 1.22 samples come out.
    let n: usize = kinds.values().sum();
    assert!(n >= 420, "{n} samples from 600 programs");
    let frac = |k| kinds.get(&k).copied().unwrap_or(0) as f64 / n as f64;
    assert!((frac(TaskKind::Deduction) - 0.5).abs() < 0.08, "{kinds:?}");
    assert!(frac(TaskKind::Abduction) > 0.15 && frac(TaskKind::Induction) > 0.15);
    // Same seed, same stream (the executor is deterministic on these programs).
    let mut a = SampleStream::new(11, cfg.clone()).unwrap();
    let mut b = SampleStream::new(11, cfg).unwrap();
    assert_eq!(a.next_chunk(&ex).unwrap(), b.next_chunk(&ex).unwrap());
}

/// Every (program, input) pair of a set.
fn pairs_of(set: &HeldoutSet) -> HashSet<(String, String)> {
    set.tasks
        .iter()
        .flat_map(|t| t.pairs.iter().map(|p| (t.code.clone(), p.input.clone())))
        .collect()
}

#[test]
fn heldout_set_is_disjoint_deduplicated_and_serialisable() {
    let ex = executor();
    let cfg = HeldoutConfig {
        per_family: 6,
        ..HeldoutConfig::default()
    };
    let set = heldout_set(&ex, &cfg).unwrap();
    for kind in [
        TaskKind::Deduction,
        TaskKind::Abduction,
        TaskKind::Induction,
    ] {
        let tasks: Vec<&HeldoutTask> = set.of_kind(kind).collect();
        // Every family contributes, and most reach the asked count.
        let fams: HashSet<Family> = tasks.iter().map(|t| t.family).collect();
        assert_eq!(fams.len(), Family::ALL.len(), "{kind}");
        assert!(
            tasks.len() >= 6 * Family::ALL.len() - 6,
            "{kind}: {}",
            tasks.len()
        );
        assert!(tasks.iter().any(|t| t.unseen_template));
        let keys: HashSet<(String, Vec<IoPair>)> = tasks
            .iter()
            .map(|t| (t.code.clone(), t.pairs.clone()))
            .collect();
        assert_eq!(keys.len(), tasks.len(), "{kind}: no duplicates");
        for t in &tasks {
            let want = if kind == TaskKind::Induction { 5 } else { 1 };
            assert_eq!(t.pairs.len(), want);
            assert!(t.pairs.iter().all(|p| is_heldout_pair(&t.code, &p.input)));
        }
    }
    // Replay a training stream: none of its (program, input) pairs is in the held-out set.
    let held = pairs_of(&set);
    let mut g = ProgramGenerator::new(0, Split::Train);
    for _ in 0..20_000 {
        let s = g.next_program(3).unwrap();
        for i in s.inputs {
            assert!(!held.contains(&(s.code.clone(), i)));
        }
    }
    // JSONL round trip.
    let mut buf = Vec::new();
    set.write_jsonl(&mut buf).unwrap();
    assert_eq!(
        String::from_utf8(buf.clone()).unwrap().lines().count(),
        set.tasks.len()
    );
    assert_eq!(HeldoutSet::read_jsonl(&buf[..]).unwrap(), set);
    // Deterministic from its seed.
    assert_eq!(heldout_set(&ex, &cfg).unwrap(), set);
}

#[test]
fn chain_set_holds_both_sides_of_the_shape_split_and_no_training_pair() {
    let ex = executor();
    let cfg = HeldoutConfig::default();
    let set = chain_set(&ex, &cfg, 8).unwrap();
    for kind in [
        TaskKind::Deduction,
        TaskKind::Abduction,
        TaskKind::Induction,
    ] {
        let tasks: Vec<&HeldoutTask> = set.of_kind(kind).collect();
        let unseen = tasks.iter().filter(|t| t.unseen_template).count();
        assert_eq!((unseen, tasks.len() - unseen), (8, 8), "{kind}");
        for t in &tasks {
            assert_eq!(t.family, Family::Chain);
            assert!(t.code.contains(" y = "), "{}", t.code);
            // The flag is the program's own side of the shape split.
            assert_eq!(t.unseen_template, is_unseen_shape(&program_shape(&t.code)));
            let want = if kind == TaskKind::Induction { 5 } else { 1 };
            assert_eq!(t.pairs.len(), want);
            assert!(t.pairs.iter().all(|p| is_heldout_pair(&t.code, &p.input)));
        }
    }
    // A chain-rich training stream never shows an unseen shape nor any pair of the set.
    let held = pairs_of(&set);
    let mut g = ProgramGenerator::new(3, Split::Train).with_chains(0.9);
    for _ in 0..5_000 {
        let s = g.next_program(3).unwrap();
        if s.family == Family::Chain {
            assert!(!is_unseen_shape(&program_shape(&s.code)), "{}", s.code);
        }
        for i in s.inputs {
            assert!(!held.contains(&(s.code.clone(), i)));
        }
    }
    // A base that holds out half the chain shapes is shown none of them, and its chains' flags
    // follow its split.
    let half = ChainSplit::from_share(0.5).unwrap();
    let mut g = ProgramGenerator::new(4, Split::Train)
        .with_chains(0.9)
        .with_chain_split(half);
    let mut chains = 0;
    for _ in 0..2_000 {
        let s = g.next_program(1).unwrap();
        if s.family == Family::Chain {
            chains += 1;
            assert!(!half.is_unseen(&program_shape(&s.code)), "{}", s.code);
            assert!(!s.unseen_template);
        }
    }
    assert!(chains > 1_500, "{chains}");
    assert_eq!(chain_set(&ex, &cfg, 8).unwrap(), set, "deterministic");
    // The chain set of a base that held out half: its sides follow that split.
    let half_cfg = HeldoutConfig {
        chain_unseen: 0.5,
        ..cfg.clone()
    };
    let half_set = chain_set(&ex, &half_cfg, 4).unwrap();
    assert_eq!(half_set.tasks.len(), 24);
    for t in &half_set.tasks {
        assert_eq!(t.unseen_template, half.is_unseen(&program_shape(&t.code)));
    }
}

#[test]
fn replay_pools_are_training_side_tasks_disjoint_from_the_shipped_eval_sets() {
    let ex = executor();
    let spec = ReplaySpec {
        per_kind: 40,
        seed: 9,
        induction_inputs: 4,
        induction_visible: 3,
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tiny-base");
    let mut eval: HashSet<(String, String)> = HashSet::new();
    for file in ["heldout.jsonl", "validation.jsonl"] {
        eval.extend(pairs_of(&HeldoutSet::load(&root.join(file)).unwrap()));
    }
    for kind in TaskKind::CODE {
        let pool = replay_pool(&ex, kind, &spec);
        assert_eq!(pool.len(), 40, "{kind}");
        let (inputs, visible) = if kind == TaskKind::Induction {
            (4, 3)
        } else {
            (1, 1)
        };
        let mut keys = HashSet::new();
        for t in &pool {
            assert_eq!(t.kind, kind);
            assert_eq!((t.pairs.len(), t.visible), (inputs, visible), "{kind}");
            assert_eq!(t.provenance.source, Source::Replay);
            assert_eq!(t.message.is_empty(), kind != TaskKind::Induction);
            assert!(keys.insert(t.dedup_key()), "{kind}: duplicate replay task");
            for p in &t.pairs {
                assert!(
                    !is_heldout_pair(&t.program, &p.input),
                    "{kind}: held-out side pair"
                );
                assert!(!eval.contains(&(t.program.clone(), p.input.clone())));
            }
        }
        // Deterministic from its seed; another seed gives another pool.
        let keys =
            |p: &[azr_core::tasks::Task]| p.iter().map(|t| t.dedup_key()).collect::<Vec<_>>();
        assert_eq!(keys(&replay_pool(&ex, kind, &spec)), keys(&pool));
        let other = replay_pool(&ex, kind, &ReplaySpec { seed: 10, ..spec });
        assert_ne!(keys(&other), keys(&pool));
    }
    assert!(replay_pool(&ex, TaskKind::Math, &spec).is_empty());

    // Replay takes about `fraction` of the draws, and none (without touching the RNG) when off.
    let kinds = [TaskKind::Deduction];
    let replay = Replay::draw(
        &ex,
        &kinds,
        0.25,
        &ReplaySpec {
            per_kind: 8,
            ..spec
        },
    );
    assert_eq!(replay.pool_len(TaskKind::Deduction), 8);
    assert_eq!(replay.pool_len(TaskKind::Abduction), 0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let hits = (0..4000)
        .filter(|_| replay.pick(TaskKind::Deduction, &mut rng).is_some())
        .count();
    assert!(
        (850..1150).contains(&hits),
        "{hits} of 4000 draws replayed at 0.25"
    );
    assert!(replay.pick(TaskKind::Abduction, &mut rng).is_none());
    let off = Replay::draw(&ex, &kinds, 0.0, &spec);
    let (mut a, b) = (ChaCha8Rng::seed_from_u64(2), ChaCha8Rng::seed_from_u64(2));
    assert!(off.pick(TaskKind::Deduction, &mut a).is_none());
    assert_eq!(a, b, "no replay draws nothing from the RNG");
}

fn task(kind: TaskKind, code: &str, pairs: &[(&str, &str)], visible: usize) -> HeldoutTask {
    HeldoutTask {
        kind,
        family: Family::Arith1,
        template: "hand".into(),
        unseen_template: false,
        message: "hand-written".into(),
        code: code.into(),
        pairs: pairs
            .iter()
            .map(|(i, o)| IoPair {
                input: i.to_string(),
                output: o.to_string(),
            })
            .collect(),
        visible,
    }
}

#[test]
fn answers_are_scored_by_kind() {
    let ex = executor();
    let add = "def f(a):\n return a % 5";
    let d = task(TaskKind::Deduction, add, &[("7", "2")], 1);
    let ans = |xs: &[Option<&str>]| -> Vec<Option<String>> {
        xs.iter().map(|a| a.map(str::to_string)).collect()
    };
    assert_eq!(
        score(
            TaskKind::Deduction,
            &[&d, &d, &d],
            &ans(&[Some("2"), Some("3"), None]),
            &ex
        ),
        vec![true, false, false]
    );
    // Abduction accepts any input giving the output (12 % 5 == 2), not only the gold one.
    let a = task(TaskKind::Abduction, add, &[("7", "2")], 1);
    assert_eq!(
        score(
            TaskKind::Abduction,
            &[&a, &a, &a, &a],
            &ans(&[Some("7"), Some("12"), Some("8"), Some("'x'")]),
            &ex
        ),
        vec![true, true, false, false]
    );
    // Induction needs the hidden pairs too.
    let i = task(
        TaskKind::Induction,
        "def f(a):\n return a * 2",
        &[("1", "2"), ("3", "6"), ("0", "0"), ("5", "10")],
        2,
    );
    assert_eq!(
        score(
            TaskKind::Induction,
            &[&i, &i, &i],
            &ans(&[
                Some("def f(a):\n return a + a\n"),
                Some("def f(a):\n return a * 2 if a < 4 else 0\n"),
                Some("not python"),
            ]),
            &ex
        ),
        vec![true, false, false]
    );
}

#[test]
fn twenty_step_pretraining_smoke_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PretrainConfig {
        out_dir: dir.path().to_path_buf(),
        model: TinyModelConfig {
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            max_position_embeddings: 256,
            ..TinyModelConfig::default()
        },
        train: TrainConfig {
            seq_len: 128,
            batch_size: 4,
            lr: 3e-3,
            warmup_steps: 2,
            max_steps: 20,
            log_every: 5,
            checkpoint_every: 10,
            ..TrainConfig::default()
        },
        corpus: CorpusConfig {
            chunk_programs: 64,
            ..CorpusConfig::default()
        },
        eval: azr_core::pretrain::EvalConfig {
            per_family: 1,
            max_answer_tokens: 8,
            max_program_tokens: 16,
            ..Default::default()
        },
        executor: executor_config(),
        ..PretrainConfig::default()
    };
    let mut seen = Vec::new();
    let out = pretrain(&cfg, |p| seen.push(p)).unwrap();
    assert_eq!(out.steps, 20);
    assert_eq!(seen.len(), 20);
    assert_eq!(seen.last().map(|p| p.fraction), Some(1.0));
    let first = seen[..3].iter().map(|p| p.loss).sum::<f32>() / 3.0;
    let last = seen[17..].iter().map(|p| p.loss).sum::<f32>() / 3.0;
    assert!(last < first - 0.5, "loss {first} -> {last}");
    // Loss curve: header + one row per 5 steps.
    let csv = std::fs::read_to_string(dir.path().join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4);
    // HF checkpoints, the held-out set and its scores.
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(dir.path().join("final").join(f).is_file(), "{f}");
        assert!(dir.path().join("checkpoints/step-000010").join(f).is_file());
    }
    let eval = out.eval.expect("evaluated at the end");
    assert_eq!(eval.kinds.len(), 3);
    assert!(eval.kinds.values().all(|k| k.all.total > 0));
    let set = HeldoutSet::load(&dir.path().join("heldout.jsonl")).unwrap();
    assert_eq!(
        set.tasks.len(),
        eval.kinds.values().map(|k| k.all.total).sum::<usize>()
    );
    assert!(dir.path().join("eval.json").is_file());
    // The checkpoint loads back as a model.
    let m = azr_core::model::Model::load_hf_dir(
        &dir.path().join("final"),
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    assert_eq!(m.num_params(), out.params);
}
