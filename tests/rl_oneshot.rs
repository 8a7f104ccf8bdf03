//! 1-shot RLVR selection: the paper's pi_1 and pi_13 come out at ranks 1 and 13 on the shipped
//! accuracy history; scores, ties and the history format by hand.
//!
//! Run: `cargo test --release -p azr-core --test rl_oneshot`

use azr_core::oneshot::dataset::{load_jsonl, parse_row};
use azr_core::oneshot::history::{AccuracyHistory, EpochTally};
use azr_core::oneshot::select::{rank, render_table, score, SelectionMethod};

const DIR: &str = "../shared/data/one-shot-rlvr";

#[test]
fn pi1_and_pi13_rank_first_and_thirteenth() {
    let history = AccuracyHistory::load(format!("{DIR}/acc_step_500.json")).unwrap();
    assert_eq!(history.len(), 1209);
    let dataset = load_jsonl(format!("{DIR}/dsr_sub.jsonl")).unwrap();
    assert_eq!(dataset.len(), 1209);
    let pi1 = load_jsonl(format!("{DIR}/pi1.jsonl")).unwrap().remove(0);
    let pi13 = load_jsonl(format!("{DIR}/pi13.jsonl")).unwrap().remove(0);
    assert_eq!(pi1.answer, "12.8");
    // Each shipped example is the dataset row with the same extra_info.index.
    for pi in [&pi1, &pi13] {
        let row = dataset.iter().find(|r| r.index == pi.index).unwrap();
        assert_eq!(row, pi);
    }
    for method in [SelectionMethod::Var, SelectionMethod::Std] {
        let ranked = rank(&history, method);
        assert_eq!(ranked.len(), 1209);
        let pos = |index: &str| ranked.iter().find(|r| r.index == index).unwrap().rank;
        assert_eq!(pos(&pi1.index), 1, "{method:?}");
        assert_eq!(pos(&pi13.index), 13, "{method:?}");
        assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // pi_1 = index 124 with population std 0.4068 (reference notes: sigma ~ 0.407).
    let top = &rank(&history, SelectionMethod::Std)[0];
    assert_eq!(top.index, "124");
    assert!((top.score - 0.40676).abs() < 1e-4, "{}", top.score);
}

#[test]
fn scores_and_ties_by_hand() {
    // [0, 0.5, 1, 0.5]: mean 0.5, population var (0.25 + 0 + 0.25 + 0) / 4 = 0.125,
    // std 0.3535534.
    let v = [0.0, 0.5, 1.0, 0.5];
    assert!((score(&v, SelectionMethod::Var) - 0.125).abs() < 1e-12);
    assert!((score(&v, SelectionMethod::Std) - 0.125f64.sqrt()).abs() < 1e-12);
    assert_eq!(score(&[], SelectionMethod::Var), 0.0);
    // "b" and "c" tie (var 0.25 each) and keep file order; "a" (var 0) is last.
    let h = AccuracyHistory::from_json_str(r#"{"a": [1, 1], "b": [0, 1], "c": [1, 0]}"#).unwrap();
    let r = rank(&h, SelectionMethod::Var);
    let order: Vec<&str> = r.iter().map(|x| x.index.as_str()).collect();
    assert_eq!(order, ["b", "c", "a"]);
    assert_eq!(r.iter().map(|x| x.rank).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!("std".parse::<SelectionMethod>(), Ok(SelectionMethod::Std));
    assert!("lim".parse::<SelectionMethod>().is_err());
}

#[test]
fn history_records_epochs_and_round_trips_in_the_paper_format() {
    let mut h = AccuracyHistory::new();
    // Epoch 1: example "7" 3 of 4 correct, example "2" 0 of 2.
    let mut t = EpochTally::new();
    for c in [true, true, false, true] {
        t.add("7", c);
    }
    t.add("2", false);
    t.add("2", false);
    assert_eq!(t.get("7"), Some((3, 4)));
    h.close_epoch(t).unwrap();
    // Epoch 2: "7" 1 of 1, "2" 1 of 2.
    let mut t = EpochTally::new();
    t.add("7", true);
    t.add("2", true);
    t.add("2", false);
    h.close_epoch(t).unwrap();
    assert_eq!(h.get("7"), Some(&[0.75, 1.0][..]));
    assert_eq!(h.get("2"), Some(&[0.0, 0.5][..]));
    assert!(h.record("9", 1.5).is_err());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acc.json");
    h.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"7": [0.75, 1.0], "2": [0.0, 0.5]})
    );
    assert!(
        text.find("\"7\"").unwrap() < text.find("\"2\"").unwrap(),
        "order kept"
    );
    let back = AccuracyHistory::load(&path).unwrap();
    assert_eq!(back, h);
    assert!(AccuracyHistory::from_json_str(r#"{"1": [0.5], "1": [1.0]}"#).is_err());
}

#[test]
fn dataset_rows_parse_integer_and_string_indices() {
    let row = parse_row(
        r#"{"prompt": [{"content": "Q?", "role": "user"}], "reward_model": {"ground_truth": "\\frac{3}{7}"}, "extra_info": {"index": 0}}"#,
    )
    .unwrap();
    assert_eq!(
        (row.index.as_str(), row.prompt.as_str(), row.answer.as_str()),
        ("0", "Q?", "\\frac{3}{7}")
    );
    let row = parse_row(
        r#"{"prompt": [{"content": "Q"}], "reward_model": {"ground_truth": 4}, "extra_info": {"index": "x1"}}"#,
    )
    .unwrap();
    assert_eq!((row.index.as_str(), row.answer.as_str()), ("x1", "4"));
}

#[test]
fn table_and_batch_filling() {
    let h = AccuracyHistory::from_json_str(r#"{"a": [1, 1], "b": [0, 1]}"#).unwrap();
    let ranked = rank(&h, SelectionMethod::Var);
    let rows = vec![parse_row(
        r#"{"prompt": [{"content": "What is\n2+2?", "role": "user"}], "reward_model": {"ground_truth": "4"}, "extra_info": {"index": "b"}}"#,
    )
    .unwrap()];
    // "b": var 0.25 at rank 1; "a" is not in the dataset. Preview of 9 chars, newline flattened.
    let table = render_table(&ranked, 2, Some(&rows), 9);
    assert_eq!(
        table,
        "rank\tindex\tscore\tanswer\tproblem\n1\tb\t0.250000\t4\tWhat is 2...\n2\ta\t0.000000\t-\t(not in dataset)\n"
    );
    assert_eq!(
        render_table(&ranked, 1, None, 10),
        "rank\tindex\tscore\n1\tb\t0.250000\n"
    );
}
