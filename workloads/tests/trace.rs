//! Trace replay against the committed sample traces (`workloads/traces/`): each format parses,
//! arrival offsets follow the timestamps (scaled exactly by the speed), prompts and output caps
//! have the rows' lengths, and rows sharing leading hash ids share exactly those prompt tokens.

use std::path::PathBuf;

use charter_backends::Prompt;
use charter_workloads::{
    PromptSource, SessionPlan, SessionSource, ThinkTime, Trace, TraceFormat, TraceOptions,
};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("traces")
        .join(name)
}

fn load(name: &str, opts: TraceOptions) -> Trace {
    Trace::load(&sample(name), opts).unwrap_or_else(|e| panic!("{e}"))
}

/// The timestamp (s) of each JSONL row, read independently of the parser under test.
fn jsonl_times(name: &str, unit_s: f64) -> Vec<f64> {
    std::fs::read_to_string(sample(name))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["timestamp"].as_f64().unwrap() * unit_s
        })
        .collect()
}

#[test]
fn every_sample_format_is_detected_and_read_whole() {
    for (name, format, rows) in [
        ("mooncake-sample.jsonl", TraceFormat::Mooncake, 40),
        ("bailian-sample.jsonl", TraceFormat::Bailian, 22),
        ("azure-sample.csv", TraceFormat::Azure, 30),
        ("burstgpt-sample.csv", TraceFormat::Burstgpt, 30),
    ] {
        let t = load(name, TraceOptions::default());
        assert_eq!(t.format, format, "{name}");
        assert_eq!(
            (t.rows.len(), t.rows_in_file),
            (rows, rows as u64),
            "{name}"
        );
        assert_eq!(t.sha256.len(), 64);
        assert_eq!(t.offsets()[0], 0.0);
        assert!(t.offsets().windows(2).all(|w| w[0] <= w[1]), "{name}");
    }
    let b = load("bailian-sample.jsonl", TraceOptions::default());
    assert_eq!(b.block_tokens, 16);
    assert!(b.rows.iter().any(|r| r.chat.is_some_and(|c| c.turn > 1)));
    assert_eq!(
        load("mooncake-sample.jsonl", TraceOptions::default()).block_tokens,
        512
    );
}

#[test]
fn offsets_are_the_timestamps_and_scale_exactly_with_speed() {
    let times = jsonl_times("mooncake-sample.jsonl", 1e-3);
    let t1 = load("mooncake-sample.jsonl", TraceOptions::default());
    for (o, t) in t1.offsets().iter().zip(&times) {
        assert!((o - (t - times[0])).abs() < 1e-9, "{o} vs {t}");
    }
    for speed in [2.0, 100.0, 0.5] {
        let ts = load(
            "mooncake-sample.jsonl",
            TraceOptions {
                speed,
                ..Default::default()
            },
        );
        for (a, b) in ts.offsets().iter().zip(t1.offsets()) {
            assert_eq!(*a, b / speed);
        }
    }
    let bt = jsonl_times("bailian-sample.jsonl", 1.0);
    let b = load("bailian-sample.jsonl", TraceOptions::default());
    assert!((b.replay_span_s() - (bt[bt.len() - 1] - bt[0])).abs() < 1e-9);
}

#[test]
fn a_window_takes_its_rows_and_starts_at_its_first() {
    let times = jsonl_times("mooncake-sample.jsonl", 1e-3);
    let (a, b) = (0.5, 1.2);
    let w = load(
        "mooncake-sample.jsonl",
        TraceOptions {
            window: Some("0.5..1.2".parse().unwrap()),
            ..Default::default()
        },
    );
    let inside: Vec<f64> = times
        .iter()
        .map(|t| t - times[0])
        .filter(|t| (a..b).contains(t))
        .collect();
    assert!(
        inside.len() >= 5 && inside.len() < times.len(),
        "{}",
        inside.len()
    );
    assert_eq!(w.rows.len(), inside.len());
    for (o, t) in w.offsets().iter().zip(&inside) {
        assert!((o - (t - inside[0])).abs() < 1e-9);
    }
    let e = Trace::load(
        &sample("mooncake-sample.jsonl"),
        TraceOptions {
            window: Some("1000s..".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("no row falls in the window"), "{e}");
}

#[test]
fn prompts_and_output_caps_have_the_rows_lengths() {
    let vocab: Vec<u32> = (100..32_000).collect();
    for name in [
        "mooncake-sample.jsonl",
        "bailian-sample.jsonl",
        "azure-sample.csv",
        "burstgpt-sample.csv",
    ] {
        let t = std::sync::Arc::new(load(name, TraceOptions::default()));
        let src = PromptSource::Trace(t.clone());
        for (i, row) in t.rows.iter().enumerate() {
            let (prompt, cap) = src.prompt(i as u64, 3, &vocab);
            let Prompt::Tokens(ids) = prompt else {
                panic!("token prompt")
            };
            assert_eq!(ids.len(), row.input_tokens as usize, "{name} row {i}");
            assert_eq!(cap, Some(row.output_tokens));
        }
    }
}

/// Rows sharing k leading hash ids share exactly their first k blocks of prompt tokens, and
/// their next blocks differ; rows without a common first hash id differ from the first token.
#[test]
fn shared_hash_ids_share_exactly_the_prompt_prefix() {
    let vocab: Vec<u32> = (100..32_000).collect();
    for name in ["mooncake-sample.jsonl", "bailian-sample.jsonl"] {
        let t = load(name, TraceOptions::default());
        let bt = t.block_tokens as usize;
        let prompts: Vec<Vec<u32>> = (0..t.rows.len() as u64)
            .map(|i| t.prompt_ids(i, 9, &vocab))
            .collect();
        let (mut sharing, mut disjoint) = (0, 0);
        for i in 0..t.rows.len() {
            for j in i + 1..t.rows.len() {
                let (a, b) = (&t.rows[i].hash_ids, &t.rows[j].hash_ids);
                let k = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                let (pa, pb) = (&prompts[i], &prompts[j]);
                let shared = (k * bt).min(pa.len()).min(pb.len());
                assert_eq!(
                    pa[..shared],
                    pb[..shared],
                    "{name} rows {i},{j}: {k} blocks"
                );
                let (ra, rb) = (&pa[shared..], &pb[shared..]);
                let n = ra.len().min(rb.len()).min(bt);
                if n > 0 {
                    assert_ne!(
                        ra[..n],
                        rb[..n],
                        "{name} rows {i},{j} diverge after {k} blocks"
                    );
                }
                if k > 0 {
                    sharing += 1;
                } else {
                    disjoint += 1;
                }
            }
        }
        assert!(
            sharing > 10 && disjoint > 10,
            "{name}: {sharing} {disjoint}"
        );
    }
    // The same row gives the same prompt, whatever the window.
    let all = load("mooncake-sample.jsonl", TraceOptions::default());
    let w = load(
        "mooncake-sample.jsonl",
        TraceOptions {
            window: Some("0.5..".parse().unwrap()),
            ..Default::default()
        },
    );
    let k = all.rows.len() - w.rows.len();
    assert_eq!(
        all.prompt_ids(k as u64, 9, &vocab),
        w.prompt_ids(0, 9, &vocab)
    );
}

#[test]
fn ideal_prefix_hit_rate_of_a_trace_counts_leading_blocks_seen_before() {
    let t = std::sync::Arc::new(load("mooncake-sample.jsonl", TraceOptions::default()));
    // Computed here from the rows: a row's leading hash ids already sent, in 512-token blocks
    // (its last block holding what is left of its input).
    let mut seen = std::collections::HashSet::new();
    let (mut hit, mut total) = (0u64, 0u64);
    for r in &t.rows {
        total += u64::from(r.input_tokens);
        let mut left = r.input_tokens;
        let mut leading = true;
        for h in &r.hash_ids {
            let n = left.min(512);
            left -= n;
            leading &= seen.contains(h);
            if leading {
                hit += u64::from(n);
            }
        }
        seen.extend(r.hash_ids.iter().copied());
    }
    assert!(hit > 0);
    let got = PromptSource::Trace(t.clone()).ideal_prefix_hit_rate(t.rows.len() as u64, 0);
    assert_eq!(got, Some(hit as f64 / total as f64));
}

#[test]
fn bad_files_name_the_line_and_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    // The error of loading `text` as `name`, in `format` (None: detected).
    let error = |name: &str, text: &str, format: Option<TraceFormat>| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        let opts = TraceOptions {
            format,
            ..Default::default()
        };
        Trace::load(&p, opts).unwrap_err().to_string()
    };
    let e = error(
        "m.jsonl",
        "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2, \"hash_ids\": [1]}\n{\"timestamp\": 9, \"input_length\": \"five\", \"output_length\": 2}\n",
        None,
    );
    let m = tmp.path().join("m.jsonl");
    assert!(e.starts_with(&format!("{}:2: ", m.display())), "{e}");
    assert!(e.contains("expected a Mooncake row"), "{e}");
    let e = error(
        "back.jsonl",
        "{\"timestamp\": 10, \"input_length\": 5, \"output_length\": 2}\n{\"timestamp\": 9, \"input_length\": 5, \"output_length\": 2}\n",
        None,
    );
    assert!(e.contains(":2: timestamp is earlier"), "{e}");
    let e = error("b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,5,2,7,API log\n1,ChatGPT,-3,2,7,API log\n", None);
    assert!(e.contains("b.csv:3: "), "{e}");
    assert!(e.contains("expected a BurstGPT row"), "{e}");
    let e = error("x.csv", "when,what\n1,2\n", None);
    assert!(e.contains("--trace-format"), "{e}");
    let e = error("x.csv", "when,what\n1,2\n", Some(TraceFormat::Azure));
    assert!(e.contains("x.csv:2: missing field `TIMESTAMP`"), "{e}");
    let e = error("empty.jsonl", "\n", Some(TraceFormat::Mooncake));
    assert!(e.contains("no rows"), "{e}");
}

/// Bailian rows as conversations: every row of the sample in one conversation that follows
/// its `parent_chat_id` links (read here independently of the parser), a window keeping only
/// conversations that start in it, and the links' errors naming the line.
#[test]
fn bailian_rows_link_into_conversations() {
    let sessions = TraceOptions {
        sessions: true,
        ..Default::default()
    };
    let t = load("bailian-sample.jsonl", sessions);
    let raw: Vec<serde_json::Value> = std::fs::read_to_string(sample("bailian-sample.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let in_conversations: usize = t.conversations.iter().map(Vec::len).sum();
    assert_eq!(in_conversations, raw.len());
    let first_turns = raw.iter().filter(|v| v["parent_chat_id"] == -1).count();
    assert_eq!(t.conversations.len(), first_turns);
    for c in &t.conversations {
        assert_eq!(raw[c[0]]["parent_chat_id"], -1);
        for pair in c.windows(2) {
            assert_eq!(raw[pair[1]]["parent_chat_id"], raw[pair[0]]["chat_id"]);
        }
    }
    // Conversations arrive at their first turns' offsets, in order.
    let offsets = t.offsets();
    let starts: Vec<f64> = t.conversations.iter().map(|c| offsets[c[0]]).collect();
    assert_eq!(t.conversation_offsets(), starts);
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));

    // A window from 0.5 s: conversations that began before it are left out whole.
    let w = load(
        "bailian-sample.jsonl",
        TraceOptions {
            window: Some("0.5..".parse().unwrap()),
            ..sessions
        },
    );
    for c in &w.conversations {
        assert!(w.rows[c[0]].at_s >= 0.5);
        assert!(w.rows[c[0]].chat.unwrap().parent_chat_id < 0);
    }
    let kept: usize = w.conversations.iter().map(Vec::len).sum();
    assert_eq!(kept, w.rows.len());
    assert!(kept < raw.len() && w.rows.iter().all(|r| r.at_s >= 0.5));

    let bad = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.jsonl");
        std::fs::write(&p, text).unwrap();
        Trace::load(&p, sessions).unwrap_err().to_string()
    };
    let row = |chat: i64, parent: i64, t: f64| {
        format!("{{\"chat_id\": {chat}, \"parent_chat_id\": {parent}, \"timestamp\": {t}, \"input_length\": 5, \"output_length\": 2, \"turn\": 1}}\n")
    };
    let e = bad(&(row(1, -1, 0.0) + &row(2, 5, 1.0)));
    assert!(
        e.ends_with("b.jsonl:2: parent_chat_id 5 names no earlier row's chat_id (expected -1 for a first turn, or the chat_id of an earlier row)"),
        "{e}"
    );
    let e = bad(&(row(1, -1, 0.0) + &row(1, -1, 1.0)));
    assert!(
        e.contains("b.jsonl:2: chat_id 1 was already used at line 1"),
        "{e}"
    );
    // A second answer to the same turn (a branch) is a conversation of its own.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("branch.jsonl");
    std::fs::write(
        &p,
        row(1, -1, 0.0) + &row(2, 1, 1.0) + &row(3, 1, 2.0) + &row(4, 3, 3.0),
    )
    .unwrap();
    let b = Trace::load(&p, sessions).unwrap();
    assert_eq!(b.conversations, [vec![0, 1], vec![2, 3]]);
    let e = Trace::load(
        &sample("mooncake-sample.jsonl"),
        TraceOptions {
            sessions: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("trace sessions need a Bailian trace"),
        "{e}"
    );
}

/// The longest history a trace conversation reaches, for the resource guard: turn 1's whole
/// prompt, each later turn's new tokens and every turn's output. Conversation 0 below:
/// 20 + 8 (30 − 20 − 2) + 13 (45 − 30 − 2) prompt tokens and 3 × 2 outputs = 47, the last
/// turn's input plus its output; conversation 7 reaches 16 + 7 + 13 + 6 = 42.
#[test]
fn a_trace_sessions_longest_context_is_its_last_turn_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two.jsonl");
    let row = |chat: i64, parent: i64, t: f64, input: u32| {
        format!("{{\"chat_id\": {chat}, \"parent_chat_id\": {parent}, \"timestamp\": {t}, \"input_length\": {input}, \"output_length\": 2, \"turn\": 1}}\n")
    };
    let text = [
        row(0, -1, 0.0, 20),
        row(7, -1, 0.3, 16),
        row(1, 0, 0.6, 30),
        row(8, 7, 0.9, 25),
        row(2, 1, 1.2, 45),
        row(9, 8, 1.5, 40),
    ]
    .concat();
    std::fs::write(&p, text).unwrap();
    let t = Trace::load(
        &p,
        TraceOptions {
            sessions: true,
            ..Default::default()
        },
    )
    .unwrap();
    let plan = SessionPlan {
        sessions: 2,
        source: SessionSource::Trace(std::sync::Arc::new(t)),
        think_time: ThinkTime::Fixed(std::time::Duration::ZERO),
    };
    let never = |_: &str| unreachable!("a trace has no text");
    assert_eq!(plan.max_context_tokens(0, 0, None, never), 47);
    // --max-tokens 10 replaces every turn's output: 41 + 3 × 10.
    assert_eq!(plan.max_context_tokens(0, 0, Some(10), never), 71);
}
