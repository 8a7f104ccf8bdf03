//! Generator, split, tokenizer, packing, schedule and config of the pretraining module; none of
//! these tests needs the executor.

use azr_core::pretrain::corpus::{
    pack, render_abduction, render_deduction, render_induction, render_induction_proposal,
    RowPacker,
};
use azr_core::pretrain::generator::{is_heldout_pair, stable_hash};
use azr_core::pretrain::templates::family_templates;
use azr_core::pretrain::tokenizer::SPECIALS;
use azr_core::pretrain::{
    Family, IoPair, PretrainConfig, PretrainError, ProgramGenerator, ProgramSpec, Split,
    TinyTokenizer, TrainConfig, TEMPLATES,
};
use std::collections::{BTreeSet, HashSet};

fn draw(seed: u64, split: Split, n: usize, inputs: usize) -> Vec<ProgramSpec> {
    let mut g = ProgramGenerator::new(seed, split);
    (0..n)
        .map(|_| g.next_program(inputs).expect("families available"))
        .collect()
}

#[test]
fn generator_is_deterministic_per_seed() {
    let a = draw(7, Split::Train, 300, 3);
    let b = draw(7, Split::Train, 300, 3);
    let c = draw(8, Split::Train, 300, 3);
    assert_eq!(a, b, "same seed, same stream");
    assert_ne!(a, c, "another seed, another stream");
    let h1 = draw(7, Split::Heldout, 100, 1);
    let h2 = draw(7, Split::Heldout, 100, 1);
    assert_eq!(h1, h2);
}

#[test]
fn fnv_hash_matches_reference_values() {
    // FNV-1a 64 reference vectors.
    assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn training_stream_excludes_unseen_templates_and_heldout_pairs() {
    let train = draw(0, Split::Train, 3000, 3);
    let families: BTreeSet<Family> = train.iter().map(|s| s.family).collect();
    assert!(!families.contains(&Family::Compose));
    assert_eq!(
        families.len(),
        Family::ALL.len() - 1,
        "every seen family is drawn"
    );
    let unseen: HashSet<&str> = TEMPLATES
        .iter()
        .filter(|t| t.unseen)
        .map(|t| t.name)
        .collect();
    let mut templates = HashSet::new();
    for s in &train {
        assert!(!s.unseen_template && !unseen.contains(s.template.as_str()));
        assert!(!s.inputs.is_empty());
        for i in &s.inputs {
            assert!(!is_heldout_pair(&s.code, i), "{} / {i}", s.code);
        }
        templates.insert(s.template.clone());
    }
    assert_eq!(templates.len(), TEMPLATES.len() - unseen.len());

    // The held-out side: only held-out pairs, seen and unseen templates, every family.
    let held = draw(99, Split::Heldout, 2000, 1);
    assert!(held.iter().any(|s| s.unseen_template));
    assert!(held.iter().any(|s| !s.unseen_template));
    let hf: BTreeSet<Family> = held.iter().map(|s| s.family).collect();
    assert_eq!(hf.len(), Family::ALL.len());
    let held_pairs: HashSet<(String, String)> = held
        .iter()
        .flat_map(|s| s.inputs.iter().map(|i| (s.code.clone(), i.clone())))
        .collect();
    for s in &held {
        assert!(s.inputs.iter().all(|i| is_heldout_pair(&s.code, i)));
    }
    // And therefore disjoint from any training stream, whatever its seed or length.
    for s in &train {
        for i in &s.inputs {
            assert!(!held_pairs.contains(&(s.code.clone(), i.clone())));
        }
    }
    // A family-restricted held-out generator still finds programs: the bucket is 1/8 of
    // the pairs, not a vanishing fraction.
    let mut g = ProgramGenerator::with_families(3, Split::Heldout, &[Family::ListTx]);
    let specs: Vec<_> = (0..200).filter_map(|_| g.next_program(2)).collect();
    assert_eq!(specs.len(), 200);
    assert!(specs.iter().all(|s| s.family == Family::ListTx));
}

#[test]
fn programs_have_the_expected_shape() {
    for (seed, t) in (0u64..).zip(TEMPLATES) {
        let mut g = ProgramGenerator::with_families(seed, Split::Heldout, &[t.family]);
        let spec = g.next_of_template(t, 4).expect("template yields programs");
        let args: Vec<&str> = t.args.iter().map(|(n, _)| *n).collect();
        let header = format!("def f({}):\n", args.join(", "));
        assert!(spec.code.starts_with(&header), "{}", spec.code);
        let body: Vec<&str> = spec.code[header.len()..].lines().collect();
        assert!(
            (1..=6).contains(&body.len()),
            "{}: {} lines",
            t.name,
            body.len()
        );
        assert!(body
            .iter()
            .all(|l| l.starts_with(' ') && !l.trim().is_empty()));
        assert!(body
            .last()
            .is_some_and(|l| l.trim_start().starts_with("return ")));
        assert!(!spec.code.ends_with('\n'));
        assert!(spec
            .code
            .bytes()
            .all(|b| b == b'\n' || (32..127).contains(&b)));
        assert!(!spec.inputs.is_empty());
    }
    // Every family has seen templates except compose, which is entirely unseen.
    for f in Family::ALL {
        let ts: Vec<_> = family_templates(f).collect();
        assert!(ts.len() >= 5, "{f} has {} templates", ts.len());
        let seen = ts.iter().filter(|t| !t.unseen).count();
        if f == Family::Compose {
            assert_eq!(seen, 0);
        } else {
            assert!(
                seen >= 5 && seen < ts.len(),
                "{f}: some held out, most seen"
            );
        }
    }
    let names: HashSet<&str> = TEMPLATES.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TEMPLATES.len(), "template names are unique");
}

#[test]
fn tokenizer_has_char_vocab_and_round_trips_every_rendered_sample() {
    let tok = TinyTokenizer::build().unwrap();
    assert_eq!(tok.vocab_size(), SPECIALS.len() + 1 + 95);
    assert_eq!(tok.pad_id, 0);
    // Specials are single ids.
    assert_eq!(
        tok.encode("<prog><in><out><msg><end>").unwrap(),
        vec![tok.prog_id, tok.in_id, tok.out_id, tok.msg_id, tok.end_id]
    );
    // One id per character otherwise.
    let text = "def f(a):\n return a + 1";
    assert_eq!(tok.encode(text).unwrap().len(), text.chars().count());
    // Every rendered sample of a long stream round-trips (outputs stand in for reprs here:
    // the executor tests cover real outputs).
    for s in draw(1, Split::Train, 2000, 3)
        .into_iter()
        .chain(draw(2, Split::Heldout, 500, 3))
    {
        let pairs: Vec<IoPair> = s
            .inputs
            .iter()
            .map(|i| IoPair {
                input: i.clone(),
                output: format!("({i})"),
            })
            .collect();
        for text in [
            render_deduction(&s.code, &pairs[0]),
            render_abduction(&s.code, &pairs[0]),
            render_induction(&s.code, &pairs, &s.message),
            render_induction_proposal(&s.code, &s.inputs, &s.message),
        ] {
            let ids = tok.encode(&text).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), text);
        }
    }
    // Characters outside the vocabulary are an error, not silently dropped.
    assert!(matches!(
        tok.encode("return 'é'"),
        Err(PretrainError::UnknownChars(c)) if c == "é"
    ));
    assert!(tok.encode("tab\there").is_err());
}

#[test]
fn tokenizer_json_is_real_hf_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    let tok = TinyTokenizer::build().unwrap();
    tok.save(&path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["model"]["type"], "BPE");
    assert_eq!(json["model"]["merges"].as_array().unwrap().len(), 0);
    assert_eq!(json["decoder"]["type"], "Fuse");
    assert_eq!(
        json["added_tokens"].as_array().unwrap().len(),
        SPECIALS.len()
    );
    let hf = tokenizers::Tokenizer::from_file(&path).unwrap();
    let text = "<prog>def f(s):\n return s[::-1]\n<in>'abc'<out>'cba'<end>";
    let ids = hf.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(ids, tok.encode(text).unwrap());
    let reloaded = TinyTokenizer::load(&path).unwrap();
    assert_eq!(reloaded.end_id, tok.end_id);
    assert_eq!(reloaded.decode(&ids).unwrap(), text);
}

#[test]
fn packing_never_splits_a_sample() {
    let pad = 0;
    // Samples of varied lengths with distinct non-zero ids, so rows can be decomposed.
    let samples: Vec<Vec<u32>> = (0..200u32)
        .map(|i| {
            let len = 5 + (i as usize * 37) % 90;
            (0..len).map(|j| 1 + i * 1000 + j as u32).collect()
        })
        .collect();
    let rows = pack(&samples, 256, pad).unwrap();
    assert!(rows.iter().all(|r| r.len() == 256));
    let mut next = 0usize;
    for row in &rows {
        let real: Vec<u32> = row.iter().copied().take_while(|&t| t != pad).collect();
        assert!(
            row[real.len()..].iter().all(|&t| t == pad),
            "pads only at the tail"
        );
        let mut rest = &real[..];
        let mut in_row = 0;
        while !rest.is_empty() {
            let s = &samples[next];
            assert!(rest.starts_with(s), "row holds whole samples in order");
            rest = &rest[s.len()..];
            next += 1;
            in_row += 1;
        }
        assert!(in_row >= 1);
        // Greedy: the next sample would not have fitted.
        if next < samples.len() {
            assert!(real.len() + samples[next].len() > 256);
        }
    }
    assert_eq!(next, samples.len(), "every sample packed exactly once");

    let mut p = RowPacker::new(8, pad);
    assert!(matches!(
        p.push(&[1; 9]),
        Err(PretrainError::SampleTooLong { len: 9, row: 8 })
    ));
    assert_eq!(p.push(&[1, 2, 3, 4, 5]).unwrap(), None);
    assert_eq!(p.push(&[6, 7, 8]).unwrap(), None);
    assert_eq!(p.push(&[9]).unwrap(), Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(p.finish(), Some(vec![9, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(p.finish(), None);
}

#[test]
fn lr_schedule_warms_up_then_decays() {
    let t = TrainConfig {
        lr: 1e-3,
        warmup_steps: 100,
        max_steps: 1000,
        decay_fraction: 0.2,
        min_lr_ratio: 0.1,
        ..TrainConfig::default()
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(t.lr_at(0), 1e-5));
    assert!(close(t.lr_at(49), 5e-4));
    assert!(close(t.lr_at(99), 1e-3));
    assert!(close(t.lr_at(500), 1e-3));
    assert!(close(t.lr_at(800), 1e-3));
    assert!(close(t.lr_at(900), 1e-3 * (1.0 - 0.5 * 0.9)));
    assert!(close(t.lr_at(999), 1e-3 * (1.0 - 199.0 / 200.0 * 0.9)));
}

#[test]
fn config_file_loads_and_unknown_keys_are_rejected() {
    let cfg = PretrainConfig::load(std::path::Path::new("config/tiny-pretrain.toml")).unwrap();
    assert_eq!(
        cfg,
        PretrainConfig::default(),
        "the shipped file spells out the defaults"
    );
    assert_eq!(cfg.model.hidden_size, 192);
    assert_eq!(cfg.train.batch_size * cfg.train.seq_len, 4096);
    // The compositional base's recipe differs from the default in its corpus and output only.
    let chain = PretrainConfig::load(std::path::Path::new("config/chain-pretrain.toml")).unwrap();
    assert_eq!(chain.corpus.chain, 0.25);
    let mut same = chain.clone();
    same.corpus.chain = 0.0;
    same.out_dir = cfg.out_dir.clone();
    assert_eq!(same, cfg);
    // The half-held-out base's recipe: half chains, half the chain shapes held out.
    let half =
        PretrainConfig::load(std::path::Path::new("config/chain-half-pretrain.toml")).unwrap();
    assert_eq!((half.corpus.chain, half.corpus.chain_unseen), (0.5, 0.5));
    let mut same = half.clone();
    same.corpus.chain = 0.0;
    same.corpus.chain_unseen = 0.25;
    same.out_dir = cfg.out_dir.clone();
    assert_eq!(same, cfg);
    for bad in ["0.3", "1.0", "0.0"] {
        let err =
            PretrainConfig::from_toml_str(&format!("[corpus]\nchain_unseen = {bad}\n"), "<t>")
                .unwrap_err();
        assert!(
            err.to_string().contains("corpus.chain_unseen"),
            "{bad}: {err}"
        );
    }
    for bad in ["1.0", "-0.1", "nan"] {
        let err = PretrainConfig::from_toml_str(&format!("[corpus]\nchain = {bad}\n"), "<t>")
            .unwrap_err();
        assert!(err.to_string().contains("corpus.chain"), "{bad}: {err}");
    }
    let empty = PretrainConfig::from_toml_str("", "<empty>").unwrap();
    assert_eq!(empty, PretrainConfig::default());
    let err = PretrainConfig::from_toml_str("[train]\nlearning_rate = 1.0\n", "<t>").unwrap_err();
    assert!(err.to_string().contains("learning_rate"), "{err}");
    let err = PretrainConfig::from_toml_str("seed = 5\n[eval]\nseed = 5\n", "<t>").unwrap_err();
    assert!(err.to_string().contains("eval.seed"), "{err}");
    let err =
        PretrainConfig::from_toml_str("[model]\nnum_attention_heads = 5\n", "<t>").unwrap_err();
    assert!(
        err.to_string().contains("model.num_attention_heads"),
        "{err}"
    );
}

fn labeled(
    code: &str,
    pairs: &[(&str, &str)],
    message: &str,
) -> azr_core::pretrain::LabeledProgram {
    azr_core::pretrain::LabeledProgram {
        family: Family::Arith2,
        template: "hand".into(),
        unseen_template: false,
        message: message.into(),
        code: code.into(),
        pairs: pairs
            .iter()
            .map(|(i, o)| IoPair {
                input: i.to_string(),
                output: o.to_string(),
            })
            .collect(),
    }
}

/// The corpus speaks exactly the `tasks` module's compact templates: its prompts are the task
/// types' prompts, and the rest of each sample parses as the expected answer or proposal.
#[test]
fn samples_match_the_tasks_compact_templates() {
    use azr_core::pretrain::corpus::{
        abduction_prompt, deduction_prompt, induction_prompt, induction_proposal_prompt,
        render_proposal,
    };
    use azr_core::tasks::{InductionConfig, TaskRegistry, TasksConfig};
    use azr_core::types::TaskKind;
    let cfg = TasksConfig {
        templates: "compact".into(),
        induction: InductionConfig {
            num_inputs: 3,
            num_visible: 2,
        },
        ..TasksConfig::default()
    };
    let reg = TaskRegistry::from_config(&cfg).unwrap();
    let code = "def f(a, b):\n return a * 4 - b";
    let p = labeled(
        code,
        &[("9, 3", "33"), ("1, 1", "3"), ("0, 2", "-2")],
        "scale a then subtract b",
    );
    let held = |kind, pairs: usize, visible| azr_core::pretrain::HeldoutTask {
        kind,
        family: p.family,
        template: p.template.clone(),
        unseen_template: false,
        message: p.message.clone(),
        code: p.code.clone(),
        pairs: p.pairs[..pairs].to_vec(),
        visible,
    };

    let ded = reg.get(TaskKind::Deduction).unwrap();
    let task = held(TaskKind::Deduction, 1, 1).to_task(0);
    let prompt = ded.solver_prompt(&task).unwrap();
    assert_eq!(prompt, deduction_prompt(code, "9, 3"));
    let sample = render_deduction(code, &p.pairs[0]);
    assert_eq!(
        ded.parse_answer(&sample[prompt.len()..]).unwrap().text,
        "33"
    );

    let abd = reg.get(TaskKind::Abduction).unwrap();
    let task = held(TaskKind::Abduction, 1, 1).to_task(0);
    let prompt = abd.solver_prompt(&task).unwrap();
    assert_eq!(prompt, abduction_prompt(code, "33"));
    let sample = render_abduction(code, &p.pairs[0]);
    assert_eq!(
        abd.parse_answer(&sample[prompt.len()..]).unwrap().text,
        "9, 3"
    );

    let ind = reg.get(TaskKind::Induction).unwrap();
    let task = held(TaskKind::Induction, 3, 2).to_task(0);
    let prompt = ind.solver_prompt(&task).unwrap();
    assert_eq!(prompt, induction_prompt(&p.pairs[..2], &p.message));
    let sample = render_induction(code, &p.pairs[..2], &p.message);
    assert_eq!(
        ind.parse_answer(&sample[prompt.len()..]).unwrap().text,
        code
    );

    // Proposals: references then a new item; the new item parses as program + input.
    let new = labeled(
        "def f(s):\n return s[::-1]",
        &[("'abc'", "'cba'")],
        "reverse",
    );
    for kind in [TaskKind::Deduction, TaskKind::Abduction] {
        let tt = reg.proposer(kind).unwrap();
        let reference = held(kind, 1, 1).to_task(0);
        let prompt = tt.proposer_prompt(&[reference]).unwrap();
        let sample = render_proposal(kind, &[&p], &new).unwrap();
        assert!(
            sample.starts_with(&prompt.text),
            "{kind}: {sample:?} vs {:?}",
            prompt.text
        );
        let proposal = tt
            .parse_proposal(&prompt, &sample[prompt.text.len()..])
            .unwrap();
        assert_eq!(proposal.program, new.code);
        assert_eq!(proposal.inputs, vec!["'abc'".to_string()]);
    }
    let reference = held(TaskKind::Induction, 3, 2).to_task(0);
    let ind_p = reg.proposer(TaskKind::Induction).unwrap();
    let prompt = ind_p.proposer_prompt(&[reference]).unwrap();
    assert_eq!(prompt.text, induction_proposal_prompt(code));
    let inputs: Vec<String> = p.pairs.iter().map(|x| x.input.clone()).collect();
    let sample = render_induction_proposal(code, &inputs, &p.message);
    let proposal = ind_p
        .parse_proposal(&prompt, &sample[prompt.text.len()..])
        .unwrap();
    assert_eq!(proposal.inputs, inputs);
    assert_eq!(proposal.message, p.message);
}

/// The corpus renders through the task types ([`render_sample`]) and stays byte-identical to the
/// hand-written formats the shipped tiny model was trained on, for every sample kind.
#[test]
fn samples_rendered_through_the_task_types_are_byte_identical() {
    use azr_core::pretrain::corpus::{compact_registry, render_proposal, render_sample};
    use azr_core::pretrain::LabeledProgram;
    use azr_core::types::{Role, TaskKind};
    let reg = compact_registry().unwrap();
    let programs: Vec<LabeledProgram> = draw(3, Split::Train, 600, 6)
        .into_iter()
        .map(|s| LabeledProgram {
            family: s.family,
            template: s.template.clone(),
            unseen_template: false,
            message: s.message.clone(),
            code: s.code.clone(),
            pairs: s
                .inputs
                .iter()
                .map(|i| IoPair {
                    input: i.clone(),
                    output: format!("({i})"),
                })
                .collect(),
        })
        .collect();
    let mut checked = 0;
    for w in programs.windows(3) {
        let (refs, new) = (&w[..2], &w[2]);
        let first = &new.pairs[0];
        let one = LabeledProgram {
            pairs: vec![first.clone()],
            ..new.clone()
        };
        let one_refs: Vec<LabeledProgram> = refs
            .iter()
            .map(|r| LabeledProgram {
                pairs: r.pairs[..1].to_vec(),
                ..r.clone()
            })
            .collect();
        let inputs: Vec<String> = new.pairs.iter().map(|p| p.input.clone()).collect();
        let cases = [
            (
                TaskKind::Deduction,
                Role::Solve,
                &one,
                vec![],
                render_deduction(&new.code, first),
            ),
            (
                TaskKind::Abduction,
                Role::Solve,
                &one,
                vec![],
                render_abduction(&new.code, first),
            ),
            (
                TaskKind::Induction,
                Role::Solve,
                new,
                vec![],
                render_induction(&new.code, &new.pairs, &new.message),
            ),
            (
                TaskKind::Induction,
                Role::Propose,
                new,
                vec![],
                render_induction_proposal(&new.code, &inputs, &new.message),
            ),
            (
                TaskKind::Deduction,
                Role::Propose,
                &one,
                one_refs.clone(),
                render_proposal(
                    TaskKind::Deduction,
                    &one_refs.iter().collect::<Vec<_>>(),
                    &one,
                )
                .unwrap(),
            ),
            (
                TaskKind::Abduction,
                Role::Propose,
                &one,
                one_refs.clone(),
                render_proposal(
                    TaskKind::Abduction,
                    &one_refs.iter().collect::<Vec<_>>(),
                    &one,
                )
                .unwrap(),
            ),
        ];
        for (kind, role, program, refs, want) in cases {
            let got = render_sample(&reg, kind, role, program, &refs);
            assert_eq!(got.as_deref(), Some(want.as_str()), "{kind} {role}");
            checked += 1;
        }
    }
    assert!(checked > 3000);
    // Kinds without examples render nothing.
    assert!(render_sample(&reg, TaskKind::Math, Role::Solve, &programs[0], &[]).is_none());
}
