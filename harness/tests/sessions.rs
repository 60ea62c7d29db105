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

/// (role, content) of each message of a chat request body.
fn said(body: &serde_json::Value) -> Vec<(String, String)> {
    body["messages"]
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
}

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
    let said = |n: usize| said(&bodies[n]);
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

#[test]
fn sessions_arrive_at_the_rate_and_keep_their_think_time() {
    // 8 sessions at a constant 10 sessions/s: first turns every 100 ms, whatever the other
    // sessions are doing (each turn takes about 30 ms, so sessions overlap).
    let think = 0.08;
    let (_tmp, run) = run_simulated(&[
        "--sim-ttft",
        "10ms",
        "--sim-itl",
        "5ms",
        "--sessions",
        "8",
        "--turns",
        "3",
        "--think-time",
        "80ms",
        "--rate",
        "10",
        "--arrivals",
        "constant",
        "--prompts",
        "synthetic",
        "--prompt-tokens",
        "8",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--no-progress",
    ]);
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 24);
    let mut first: Vec<&charter_record::RequestRow> =
        rows.iter().filter(|r| r.turn == Some(1)).collect();
    first.sort_by_key(|r| r.session);
    assert_eq!(first.len(), 8);
    // The schedule itself is exact; each first turn starts at its slot, late by no more than
    // a loaded machine's dispatch lag, and its latency counts from the slot.
    for (k, r) in first.iter().enumerate() {
        let slot = r.intended_start_s - first[0].intended_start_s;
        assert!(
            (slot - 0.1 * k as f64).abs() < 1e-6,
            "session {k} slot {slot}"
        );
        assert!(r.schedule_lag_s >= 0.0 && r.schedule_lag_s < 0.05, "{r:?}");
        assert!(r.ttft_from_intended_s.unwrap() >= r.ttft_s.unwrap());
    }
    // Later turns follow their own session's response plus the think time.
    for r in rows.iter().filter(|r| r.turn > Some(1)) {
        let prev = rows
            .iter()
            .find(|p| p.session == r.session && p.turn == Some(r.turn.unwrap() - 1))
            .unwrap();
        let gap = r.start_s - prev.end_s;
        assert!(gap >= think && gap < think + 0.5, "gap {gap}: {r:?}");
        assert_eq!(r.think_time_s, Some(think));
        assert_eq!(r.schedule_lag_s, 0.0, "later turns start when intended");
    }
    let record = validated_record(&run);
    let level = &record["levels"][0];
    assert_eq!(level["load"]["kind"], "open_loop");
    assert_eq!(level["load"]["rate_per_s"], 10.0);
    assert_eq!(level["load"]["sessions"], true);
    let s = &level["sessions"];
    assert_eq!(s["sessions"], 8);
    // The achieved arrival rate is the first turns' own: 7 gaps over their span.
    let span = first[7].start_s - first[0].start_s;
    let achieved = s["session_arrival_rate_per_s"].as_f64().unwrap();
    assert!((achieved - 7.0 / span).abs() < 1e-9, "{achieved} vs {span}");
    assert!((7.0..=14.0).contains(&achieved), "{achieved} sessions/s");
}

/// A Bailian trace of two conversations of three turns, interleaved 300 ms apart, so that no
/// two requests overlap and the server's request n is the n-th body it saw. Conversation 7's
/// rows follow 0's by 0.3 s; each next turn is 0.6 s after the previous one.
const TWO_CONVERSATIONS: &str = concat!(
    r#"{"chat_id": 0, "parent_chat_id": -1, "timestamp": 10.0, "input_length": 20, "output_length": 2, "turn": 1, "hash_ids": [1, 2]}"#,
    "\n",
    r#"{"chat_id": 7, "parent_chat_id": -1, "timestamp": 10.3, "input_length": 16, "output_length": 2, "turn": 1, "hash_ids": [1]}"#,
    "\n",
    r#"{"chat_id": 1, "parent_chat_id": 0, "timestamp": 10.6, "input_length": 30, "output_length": 2, "turn": 2, "hash_ids": [1, 2, 3]}"#,
    "\n",
    r#"{"chat_id": 8, "parent_chat_id": 7, "timestamp": 10.9, "input_length": 25, "output_length": 2, "turn": 2, "hash_ids": [1, 5]}"#,
    "\n",
    r#"{"chat_id": 2, "parent_chat_id": 1, "timestamp": 11.2, "input_length": 45, "output_length": 2, "turn": 3, "hash_ids": [1, 2, 3]}"#,
    "\n",
    r#"{"chat_id": 9, "parent_chat_id": 8, "timestamp": 11.5, "input_length": 40, "output_length": 2, "turn": 3, "hash_ids": [1, 5, 6]}"#,
    "\n",
);

#[test]
fn trace_sessions_send_the_history_at_the_trace_times() {
    let srv = TestServer::start(|n| Script::openai(5, 1, 2).with_pieces(answer(n)));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("two.jsonl");
    std::fs::write(&file, TWO_CONVERSATIONS).unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &["--trace", file.to_str().unwrap(), "--trace-sessions"],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let bodies = srv.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 6, "{bodies:#?}");
    let said = |n: usize| said(&bodies[n]);
    let user = |n: usize| said(n).last().unwrap().clone();
    let reply = |n: usize| ("assistant".to_string(), answer(n as u64).concat());
    // Requests in time order: 0 = conversation 0 turn 1, 1 = conversation 7 turn 1, 2 = 0's
    // turn 2, ... Turn 3 carries exactly turns 1 and 2 and the server's answers to them.
    for (t1, t2, t3) in [(0, 2, 4), (1, 3, 5)] {
        assert_eq!(said(t1).len(), 1, "{:?}", said(t1));
        assert_eq!(said(t2), [user(t1), reply(t1), user(t2)]);
        assert_eq!(
            said(t3),
            [user(t1), reply(t1), user(t2), reply(t2), user(t3)]
        );
    }
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 6);
    let row = |session: u64, turn: u32| {
        rows.iter()
            .find(|r| r.session == Some(session) && r.turn == Some(turn))
            .unwrap()
    };
    // First turns at their timestamps (the trace's first row at 0): the schedule exactly,
    // the start within a loaded machine's dispatch lag.
    let t0 = row(0, 1).intended_start_s;
    let at = row(1, 1).intended_start_s - t0;
    assert!((at - 0.3).abs() < 1e-6, "{at}");
    for s in [0, 1] {
        let lag = row(s, 1).schedule_lag_s;
        assert!((0.0..0.1).contains(&lag), "session {s}: lag {lag}");
    }
    // Later turns: 0.6 s after the previous turn's start (the trace's gap), which is later
    // than its end here; the think time recorded is that gap less the turn's duration.
    for s in [0, 1] {
        for turn in [2, 3] {
            let (prev, r) = (row(s, turn - 1), row(s, turn));
            let gap = r.start_s - prev.start_s;
            assert!((0.6..0.75).contains(&gap), "session {s} turn {turn}: {gap}");
            let asked = 0.6 - (prev.end_s - prev.start_s);
            assert!((r.think_time_s.unwrap() - asked).abs() < 0.002, "{r:?}");
        }
    }
    let record = validated_record(&run);
    assert_eq!(record["workload"]["trace"]["conversations"], 2);
    let level = &record["levels"][0];
    assert_eq!(level["load"]["sessions"], true);
    assert!((level["load"]["rate_per_s"].as_f64().unwrap() - 1.0 / 0.3).abs() < 1e-9);
    assert_eq!(level["sessions"]["sessions"], 2);
    assert_eq!(level["sessions"]["turns"]["max"], 3.0);
}

#[test]
fn a_trace_turn_without_its_parent_is_one_line_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("orphan.jsonl");
    let text = TWO_CONVERSATIONS.replace(
        r#""chat_id": 8, "parent_chat_id": 7"#,
        r#""chat_id": 8, "parent_chat_id": 70"#,
    );
    std::fs::write(&file, text).unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "simulated",
        "--out",
        run.to_str().unwrap(),
        "--trace",
        file.to_str().unwrap(),
        "--trace-sessions",
    ]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("orphan.jsonl:4: parent_chat_id 70 names no earlier row"),
        "{err}"
    );
    assert!(!run.exists(), "no run directory is left behind");
}

#[test]
fn the_guard_sizes_sessions_by_their_longest_history() {
    // 4 turns × (100 prompt + 50 output tokens): the KV cache of a stream holds 600 tokens at
    // the last turn, not the 150 of one request.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--sessions",
        "1",
        "--turns",
        "4",
        "--prompts",
        "synthetic",
        "--prompt-tokens",
        "100",
        "--max-tokens",
        "50",
        "--concurrency",
        "1000000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("at 600 tokens, the longest session's history + "),
        "{err}"
    );
    assert!(!out.exists());
}
