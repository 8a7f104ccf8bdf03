//! Task buffers: seeding, deduplication, the newest-keeping cap, uniform reference sampling,
//! solver batches and checkpoint round trips.
//!
//! Run: `cargo test --release -p azr-core --test tasks_buffer`

use azr_core::executor::{Executor, ExecutorConfig, PyValue};
use azr_core::tasks::{
    BufferConfig, BufferError, IoPair, Provenance, SolverTargeting, Task, TaskBuffer, TaskBuffers,
    TaskRegistry, TasksConfig,
};
use azr_core::types::TaskKind;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

fn exec() -> &'static Executor {
    static EX: OnceLock<Executor> = OnceLock::new();
    EX.get_or_init(|| Executor::start(ExecutorConfig::default()).expect("executor starts"))
}

fn task(kind: TaskKind, n: usize, step: u64) -> Task {
    Task::code(
        kind,
        format!("def f(a):\n    return a + {n}"),
        IoPair {
            input: "1".into(),
            output: (n + 1).to_string(),
            value: None,
        },
        Provenance::proposed(step, step),
    )
}

fn constant(t: &Task) -> usize {
    t.program.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn seeded_buffers_hold_the_validated_identity_program() {
    let reg = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
    let b = TaskBuffers::seeded(&reg, &TaskKind::CODE, &BufferConfig::default(), exec()).unwrap();
    let sizes = b.sizes();
    assert_eq!(
        sizes,
        BTreeMap::from([
            (TaskKind::Deduction, 1),
            (TaskKind::Abduction, 1),
            (TaskKind::Induction, 1)
        ])
    );
    let ded = b.get(TaskKind::Deduction).unwrap().iter().next().unwrap();
    assert_eq!(ded.program, "def f(a):\n    return a");
    assert_eq!(ded.pairs[0].input, "\"Hello world\"");
    assert_eq!(ded.pairs[0].output, "'Hello world'");
    assert!(ded.pairs[0]
        .value
        .as_ref()
        .unwrap()
        .same_as(&PyValue::Str("Hello world".into())));
    let ind = b.get(TaskKind::Induction).unwrap().iter().next().unwrap();
    assert_eq!(ind.pairs.len(), 6);
    assert_eq!(ind.visible, 3);
    assert_eq!(ind.pairs[2].output, "{'a': 1, 'b': 2}");
    assert_eq!(ind.pairs[5].output, "1001101100010001");
    assert_eq!(
        ind.message,
        "Write a function that returns whatever you input."
    );
}

#[test]
fn duplicates_are_refused_and_other_kinds_too() {
    let mut b = TaskBuffer::new(TaskKind::Deduction, 10);
    assert!(b.push(task(TaskKind::Deduction, 1, 1)));
    assert!(
        !b.push(task(TaskKind::Deduction, 1, 2)),
        "same program and input"
    );
    assert!(!b.push(task(TaskKind::Abduction, 2, 2)), "wrong kind");
    let mut other_input = task(TaskKind::Deduction, 1, 2);
    other_input.pairs[0].input = "2".into();
    assert!(b.push(other_input));
    assert_eq!(b.len(), 2);
}

#[test]
fn cap_keeps_the_newest_tasks() {
    let mut b = TaskBuffer::new(TaskKind::Deduction, 5);
    for n in 0..12 {
        assert!(b.push(task(TaskKind::Deduction, n, n as u64)));
    }
    assert_eq!(b.len(), 5);
    let kept: Vec<usize> = b.iter().map(constant).collect();
    assert_eq!(kept, vec![7, 8, 9, 10, 11]);
    // An evicted task may come back.
    assert!(b.push(task(TaskKind::Deduction, 0, 12)));
}

#[test]
fn reference_sampling_is_uniform_without_replacement_and_seeded() {
    let mut b = TaskBuffer::new(TaskKind::Deduction, 100);
    for n in 0..10 {
        b.push(task(TaskKind::Deduction, n, 0));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut counts = [0usize; 10];
    for _ in 0..3000 {
        let s = b.sample(6, &mut rng);
        assert_eq!(s.len(), 6);
        let distinct: HashSet<usize> = s.iter().map(constant).collect();
        assert_eq!(distinct.len(), 6, "without replacement");
        for t in &s {
            counts[constant(t)] += 1;
        }
    }
    // Each item is drawn with probability 6/10: 1800 expected, sd ~27.
    for c in counts {
        assert!((1650..=1950).contains(&c), "{counts:?}");
    }
    assert_eq!(b.sample(50, &mut rng).len(), 10, "at most the buffer");
    let a: Vec<usize> = b
        .sample(6, &mut ChaCha8Rng::seed_from_u64(9))
        .iter()
        .map(constant)
        .collect();
    let c: Vec<usize> = b
        .sample(6, &mut ChaCha8Rng::seed_from_u64(9))
        .iter()
        .map(constant)
        .collect();
    assert_eq!(a, c, "same seed, same draw");
}

#[test]
fn solver_batches_take_all_newest_then_fill_uniformly() {
    let mut b = TaskBuffer::new(TaskKind::Deduction, 1000);
    for n in 0..50 {
        b.push(task(TaskKind::Deduction, n, 1)); // old
    }
    for n in 50..54 {
        b.push(task(TaskKind::Deduction, n, 5)); // newest step
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let batch = b.solver_batch(16, 5, 1, &mut rng);
    assert_eq!(batch.len(), 16);
    let newest: Vec<usize> = batch.iter().map(constant).filter(|c| *c >= 50).collect();
    let distinct_newest: HashSet<usize> = newest.iter().copied().collect();
    assert_eq!(
        distinct_newest.len(),
        4,
        "all 4 newest tasks are in the batch"
    );
    // More newest tasks than the batch: only newest, without replacement.
    let small = b.solver_batch(3, 5, 1, &mut rng);
    assert!(small.iter().all(|t| constant(t) >= 50));
    assert_eq!(small.iter().map(constant).collect::<HashSet<_>>().len(), 3);
    // With only the seed the batch repeats it.
    let mut one = TaskBuffer::new(TaskKind::Deduction, 10);
    one.push(task(TaskKind::Deduction, 0, 0));
    assert_eq!(one.solver_batch(8, 4, 1, &mut rng).len(), 8);
    assert!(TaskBuffer::new(TaskKind::Deduction, 10)
        .solver_batch(8, 0, 1, &mut rng)
        .is_empty());
}

#[test]
fn learnable_solver_batches_skip_tasks_solved_always_or_never() {
    let rated = |n: usize, step: u64, p: Option<f32>| {
        let mut t = task(TaskKind::Deduction, n, step);
        t.provenance.solve_rate = p;
        t
    };
    let mut b = TaskBuffer::new(TaskKind::Deduction, 1000);
    // Old tasks: solved by none, by all, half the time, and a seed with no estimate.
    b.push(rated(0, 1, Some(0.0)));
    b.push(rated(1, 1, Some(1.0)));
    b.push(rated(2, 1, Some(0.5)));
    b.push(rated(3, 0, None));
    // Newest step: one always solved, one in between.
    b.push(rated(10, 5, Some(1.0)));
    b.push(rated(11, 5, Some(0.25)));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..50 {
        let batch = b.targeted_solver_batch(SolverTargeting::Learnable, 4, 5, 1, &mut rng);
        assert_eq!(batch.len(), 4);
        let got: Vec<usize> = batch.iter().map(constant).collect();
        assert!(
            got.contains(&11),
            "the newest learnable task comes first: {got:?}"
        );
        assert!(
            got.iter().all(|c| [2, 3, 11].contains(c)),
            "only learnable or unrated tasks: {got:?}"
        );
    }
    // The plain draw still takes every newest task, learnable or not.
    let plain: HashSet<usize> = b
        .solver_batch(4, 5, 1, &mut rng)
        .iter()
        .map(constant)
        .collect();
    assert!(plain.contains(&10) && plain.contains(&11));
    // Nothing learnable: the plain draw.
    let mut solved = TaskBuffer::new(TaskKind::Deduction, 10);
    solved.push(rated(20, 1, Some(1.0)));
    solved.push(rated(21, 1, Some(0.0)));
    assert_eq!(
        solved
            .targeted_solver_batch(SolverTargeting::Learnable, 3, 1, 1, &mut rng)
            .len(),
        3
    );
    // The estimate survives a checkpoint round trip; absent stays absent.
    let json = serde_json::to_string(&b).unwrap();
    assert!(json.contains("\"solve_rate\":0.25"));
    let back: TaskBuffer = serde_json::from_str(&json).unwrap();
    let rates: Vec<Option<f32>> = back.iter().map(|t| t.provenance.solve_rate).collect();
    assert_eq!(
        rates,
        [Some(0.0), Some(1.0), Some(0.5), None, Some(1.0), Some(0.25)]
    );
}

#[test]
fn greedy_miss_draws_take_tasks_missed_greedily_and_solved_in_some_sample() {
    let probed = |n: usize, p: Option<f32>, greedy: Option<bool>| {
        let mut t = task(TaskKind::Deduction, n, 1);
        t.provenance.solve_rate = p;
        t.provenance.greedy_correct = greedy;
        t
    };
    let mut b = TaskBuffer::new(TaskKind::Deduction, 1000);
    b.push(probed(0, Some(0.5), Some(false))); // missed greedily, sampled right: admitted
    b.push(probed(1, Some(0.5), Some(true))); // greedy already right: not admitted
    b.push(probed(2, Some(0.0), Some(false))); // never right: not admitted
    b.push(probed(3, Some(1.0), Some(false))); // every sample right, greedy wrong: admitted
    b.push(probed(4, Some(0.25), None)); // not probed: the learnable test admits it
    b.push(probed(5, Some(1.0), None)); // not probed, always solved: not admitted
    b.push(probed(6, None, None)); // a seed: admitted
    let want = [0, 3, 4, 6];
    for (i, t) in b.iter().enumerate() {
        assert_eq!(
            SolverTargeting::GreedyMiss.admits(t),
            want.contains(&i),
            "task {i}"
        );
        assert!(SolverTargeting::Any.admits(t));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut got = HashSet::new();
    for _ in 0..50 {
        for t in b.targeted_solver_batch(SolverTargeting::GreedyMiss, 4, 9, 1, &mut rng) {
            got.insert(constant(&t));
        }
    }
    assert_eq!(got, want.into_iter().collect::<HashSet<_>>());
    // The switches: greedy-miss wins over learnable.
    let cfg = |learnable, greedy| BufferConfig {
        prefer_learnable: learnable,
        prefer_greedy_miss: greedy,
        ..BufferConfig::default()
    };
    assert_eq!(
        SolverTargeting::of(&cfg(false, false)),
        SolverTargeting::Any
    );
    assert_eq!(
        SolverTargeting::of(&cfg(true, false)),
        SolverTargeting::Learnable
    );
    assert_eq!(
        SolverTargeting::of(&cfg(true, true)),
        SolverTargeting::GreedyMiss
    );
    // The verdict survives a checkpoint round trip; absent stays absent.
    let back: TaskBuffer = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    let verdicts: Vec<Option<bool>> = back.iter().map(|t| t.provenance.greedy_correct).collect();
    assert_eq!(
        verdicts,
        [
            Some(false),
            Some(true),
            Some(false),
            Some(false),
            None,
            None,
            None
        ]
    );
}

#[test]
fn induction_references_come_from_the_code_buffers() {
    let reg = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
    let mut b = TaskBuffers::new(&TaskKind::CODE, &BufferConfig::default());
    b.push(task(TaskKind::Deduction, 1, 0)).unwrap();
    b.push(task(TaskKind::Abduction, 2, 0)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ind = reg.get(TaskKind::Induction).unwrap();
    let mut seen = HashSet::new();
    for _ in 0..50 {
        let r = b.references(ind, &mut rng);
        assert_eq!(r.len(), 1);
        seen.insert(r[0].kind);
    }
    assert_eq!(
        seen,
        HashSet::from([TaskKind::Deduction, TaskKind::Abduction])
    );
    let ded = reg.get(TaskKind::Deduction).unwrap();
    let r = b.references(ded, &mut rng);
    assert_eq!(r.len(), 1, "only the deduction buffer");
    assert_eq!(r[0].kind, TaskKind::Deduction);
}

#[test]
fn buffers_round_trip_through_serde_and_truncate_on_resume() {
    let mut b = TaskBuffers::new(&TaskKind::CODE, &BufferConfig::default());
    for n in 0..6 {
        b.push(task(TaskKind::Deduction, n, n as u64)).unwrap();
    }
    let json = serde_json::to_string(&b).unwrap();
    let mut back: TaskBuffers = serde_json::from_str(&json).unwrap();
    assert_eq!(back.sizes(), b.sizes());
    // The dedup index is rebuilt on load.
    assert!(!back.push(task(TaskKind::Deduction, 3, 9)).unwrap());
    back.truncate_after(2);
    assert_eq!(back.get(TaskKind::Deduction).unwrap().len(), 3);
    assert!(
        back.push(task(TaskKind::Deduction, 3, 3)).unwrap(),
        "dropped tasks may be re-added"
    );
}

#[test]
fn a_kind_without_a_buffer_is_an_error_not_a_silent_drop() {
    let mut b = TaskBuffers::new(&[TaskKind::Deduction], &BufferConfig::default());
    assert_eq!(
        b.push(task(TaskKind::Abduction, 1, 0)),
        Err(BufferError::NoBuffer(TaskKind::Abduction))
    );
    assert_eq!(
        b.check_covers(&[TaskKind::Deduction, TaskKind::Abduction]),
        Err(BufferError::NoBuffer(TaskKind::Abduction))
    );
    let reg = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
    // Solve-only and unknown kinds cannot get a buffer.
    let cfg = BufferConfig::default();
    assert!(matches!(
        b.ensure(&reg, &[TaskKind::Math], &cfg, exec()),
        Err(BufferError::Registry(_))
    ));
    let unknown = TaskKind::new("nosuchkind").unwrap();
    assert!(b.ensure(&reg, &[unknown], &cfg, exec()).is_err());
}

#[test]
fn resuming_an_older_checkpoint_creates_and_seeds_the_missing_buffers() {
    let reg = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
    let cfg = BufferConfig::default();
    // A checkpoint made when only deduction ran, with one proposed task.
    let mut old = TaskBuffers::seeded(&reg, &[TaskKind::Deduction], &cfg, exec()).unwrap();
    old.push(task(TaskKind::Deduction, 7, 3)).unwrap();
    assert_eq!(old.kinds(), vec![TaskKind::Deduction]);
    let json = serde_json::to_string(&old).unwrap();
    let mut back: TaskBuffers = serde_json::from_str(&json).unwrap();
    // Resume with induction added: it draws references from deduction and abduction, so both
    // missing buffers are created and seeded; deduction keeps its tasks.
    let created = back
        .ensure(
            &reg,
            &[TaskKind::Deduction, TaskKind::Induction],
            &cfg,
            exec(),
        )
        .unwrap();
    assert_eq!(created, vec![TaskKind::Induction, TaskKind::Abduction]);
    assert_eq!(back.get(TaskKind::Deduction).unwrap().len(), 2);
    assert_eq!(back.get(TaskKind::Induction).unwrap().len(), 1);
    assert_eq!(back.get(TaskKind::Abduction).unwrap().len(), 1);
    assert!(back
        .check_covers(&[TaskKind::Deduction, TaskKind::Induction])
        .is_ok());
}

#[test]
fn the_shape_memory_marks_novel_tasks_outlives_evictions_and_is_checkpointed() {
    let reg = TaskRegistry::from_config(&TasksConfig::default()).unwrap();
    let cfg = BufferConfig {
        capacity: 2,
        ..BufferConfig::default()
    };
    let mut b = TaskBuffers::seeded(&reg, &[TaskKind::Deduction], &cfg, exec()).unwrap();
    // The seed (the identity program) is remembered: a renamed identity is not novel.
    let identity = Task {
        program: "def f(x):\n    return x".into(),
        ..task(TaskKind::Deduction, 0, 1)
    };
    let seen = b.admit(identity).unwrap();
    assert!(seen.added);
    assert_eq!(
        seen.shape.as_ref().map(|s| (s.shape.as_str(), s.novel)),
        Some(("def v0 ( v1 ) :\n return v1", false))
    );
    // `return a + n` is the corpus template `add_k`: valid, added, never novel.
    let corpus = b.admit(task(TaskKind::Deduction, 4, 1)).unwrap();
    assert!(corpus.added && !corpus.shape.unwrap().novel);
    // A shape of its own is novel once; a renamed copy with other constants is not.
    let new = |p: &str| Task {
        program: p.into(),
        ..task(TaskKind::Deduction, 0, 2)
    };
    let first = b
        .admit(new("def f(a):\n    b = a * a\n    return b - 1"))
        .unwrap();
    assert!(first.shape.unwrap().novel);
    let again = b
        .admit(new("def f(z):\n    w = z * z\n    return w - 9"))
        .unwrap();
    assert!(again.added && !again.shape.unwrap().novel);
    // Capacity 2: the novel task was evicted, its shape is still remembered.
    assert_eq!(b.get(TaskKind::Deduction).unwrap().len(), 2);
    let evicted = b
        .admit(new("def f(a):\n    b = a * a\n    return b - 3"))
        .unwrap();
    assert!(!evicted.shape.unwrap().novel);
    assert_eq!(b.shapes().distinct(TaskKind::Deduction), 3);
    // The memory travels with the buffers through a checkpoint...
    let json = serde_json::to_string(&b).unwrap();
    let back: TaskBuffers = serde_json::from_str(&json).unwrap();
    assert_eq!(back.shapes(), b.shapes());
    // ... and a checkpoint written before it existed gets it rebuilt from the buffered tasks.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut().unwrap().remove("shapes");
    let rebuilt: TaskBuffers = serde_json::from_value(old).unwrap();
    assert_eq!(rebuilt.shapes().distinct(TaskKind::Deduction), 1);
}
