//! Multi-turn sessions through the real binary: each turn carries the earlier turns and the
//! model's actual responses (checked in the bodies a scripted server received, and in the
//! prompt lengths of the simulated backend), think time is honoured, TTFT is summarised per
//! turn, and a bad conversation file is one line naming file and line.

mod common;
// This file uses a small part of the scripted server.
#[allow(dead_code)]
#[path = "common/sse_server.rs"]
mod sse_server;

use common::*;
use sse_server::{Script, TestServer};

/// The text the server answers request `n` with.
fn answer(n: u64) -> Vec<String> {
    vec![format!("answer{n} "), "done".into()]
}

#[test]
fn turns_carry_the_history_and_think_time_is_honoured() {
    // Later turns answer after 60 ms, first turns at once: the per-turn TTFT must tell them apart.
    let srv = TestServer::start(|n| {
        let s = Script::openai(if n == 0 || n == 3 { 0 } else { 60 }, 1, 2);
        s.with_pieces(answer(n))
    });
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("chats.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first question"}, {"role": "assistant", "content": "recorded answer"}, {"role": "user", "content": "second question"}, {"role": "user", "content": "third question"}]}"#,
            "\n",
            r#"{"conversations": [{"from": "human", "value": "only question"}]}"#,
            "\n"
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let think = 0.15;
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &srv.base_url(),
        "--model",
        "m",
        "--out",
        run.to_str().unwrap(),
        "--no-progress",
        "--conversations",
        file.to_str().unwrap(),
        "--think-time",
        "150ms",
        "--concurrency",
        "1",
        "--max-tokens",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    // One stream: the server saw session 0's three turns, then session 1's only one.
    let bodies = srv.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 4, "{bodies:#?}");
    let said = |n: usize| -> Vec<(String, String)> {
        bodies[n]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_string(),
                    m["content"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let m = |r: &str, c: &str| (r.to_string(), c.to_string());
    assert_eq!(
        said(0),
        [m("system", "be brief"), m("user", "first question")]
    );
    assert_eq!(
        said(2),
        [
            m("system", "be brief"),
            m("user", "first question"),
            m("assistant", "answer0 done"),
            m("user", "second question"),
            m("assistant", "answer1 done"),
            m("user", "third question"),
        ]
    );
    assert_eq!(said(3), [m("user", "only question")]);
    let rows = request_rows(&run);
    let turns: Vec<(Option<u64>, Option<u32>)> = rows.iter().map(|r| (r.session, r.turn)).collect();
    assert_eq!(
        turns,
        [
            (Some(0), Some(1)),
            (Some(0), Some(2)),
            (Some(0), Some(3)),
            (Some(1), Some(1))
        ]
    );
    // Think time: the next turn starts no earlier than the response's end plus the think time
    // (sleeping only overshoots), and not absurdly later.
    for pair in rows[..3].windows(2) {
        let gap = pair[1].start_s - pair[0].end_s;
        assert!(
            gap >= think && gap < think + 2.0,
            "gap {gap} for think time {think}"
        );
        assert_eq!(pair[1].think_time_s, Some(think));
    }
    let record = validated_record(&run);
    let s = &record["levels"][0]["sessions"];
    assert_eq!(s["sessions"], 2, "{s:#}");
    assert_eq!(s["history"], "server_cache");
    assert_eq!(s["ttft_first_turn"]["count"], 2);
    assert_eq!(s["ttft_later_turns"]["count"], 2);
    assert!(
        s["ttft_later_turns"]["min_s"].as_f64().unwrap() >= 0.06,
        "{s:#}"
    );
    assert_eq!(s["ttft_by_turn"].as_array().unwrap().len(), 3);
    assert!(s["think_time_measured_s"]["mean"].as_f64().unwrap() >= think);
    assert_eq!(s["turns"]["max"], 3.0);
}

#[test]
fn in_process_history_is_every_prompt_and_output_token() {
    let (_tmp, run) = run_simulated(&[
        "--sim-ttft",
        "1ms",
        "--sim-itl",
        "1ms",
        "--sessions",
        "3",
        "--turns",
        "3",
        "--prompts",
        "synthetic",
        "--prompt-tokens",
        "8",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--concurrency",
        "2",
        "--no-progress",
    ]);
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 9);
    for r in &rows {
        let k = u64::from(r.turn.unwrap());
        // Turn k: k user turns of 8 tokens and k − 1 responses of 4.
        assert_eq!(r.prompt_tokens, 8 * k + 4 * (k - 1), "{r:?}");
    }
    let ids: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 9);
    let record = validated_record(&run);
    assert_eq!(record["levels"][0]["sessions"]["history"], "re_prefilled");
    assert_eq!(record["levels"][0]["sessions"]["sessions"], 3);
}

#[test]
fn a_bad_conversation_file_is_one_line_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n{\"messages\": [oops]}\n",
    )
    .unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "simulated",
        "--out",
        run.to_str().unwrap(),
        "--conversations",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.jsonl:2: malformed JSONL line"), "{err}");
    assert!(!run.exists(), "no run directory is left behind");
}
