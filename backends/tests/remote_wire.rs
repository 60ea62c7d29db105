//! Wire-format fixtures (OpenAI chat and completions, Anthropic messages, and what vLLM, TGI,
//! llama-cpp-python and llama.cpp's llama-server emit, written from their public documentation)
//! parse to the same events; and the SSE decoding gives the same events however the body is
//! split into network reads (every split point, and random splits down to single bytes).

use bytes::Bytes;
use charter_backends::remote::wire::Usage;
use charter_backends::remote::{replay, Api, Endpoint, Replayed};
use rand::{Rng, SeedableRng};

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sse")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The events a stream acts on, summed up.
#[derive(Debug, PartialEq)]
struct Summary {
    content: Vec<String>,
    reasoning: Vec<String>,
    usage: Usage,
    finish: Option<String>,
    done_last: bool,
    errors: Vec<String>,
}

fn summary(events: &[Replayed]) -> Summary {
    let mut usage = Usage::default();
    for e in events {
        if let Some(u) = e.usage {
            usage.merge(u);
        }
    }
    Summary {
        content: events
            .iter()
            .filter(|e| !e.content.is_empty())
            .map(|e| e.content.clone())
            .collect(),
        reasoning: events
            .iter()
            .filter(|e| !e.reasoning.is_empty())
            .map(|e| e.reasoning.clone())
            .collect(),
        usage,
        finish: events.iter().rev().find_map(|e| e.finish.clone()),
        done_last: events.last().is_some_and(|e| e.done),
        errors: events.iter().filter_map(|e| e.error.clone()).collect(),
    }
}

fn decode(api: Api, endpoint: Endpoint, body: &[u8], cuts: &[usize]) -> Vec<Replayed> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for &c in cuts {
        pieces.push(Bytes::copy_from_slice(&body[at..c]));
        at = c;
    }
    pieces.push(Bytes::copy_from_slice(&body[at..]));
    replay(api, endpoint, pieces).unwrap()
}

fn usage(prompt: u64, output: u64) -> Usage {
    Usage {
        prompt_tokens: Some(prompt),
        output_tokens: Some(output),
        ..Default::default()
    }
}

const HELLO: [&str; 2] = ["Hello", " \"world\"\n"];

#[test]
fn fixtures_parse_to_the_same_events() {
    let cases: &[(&str, Api, Endpoint, Usage, &str, usize)] = &[
        (
            "openai_chat.sse",
            Api::Openai,
            Endpoint::Chat,
            Usage {
                reasoning_tokens: Some(0),
                cached_prompt_tokens: Some(0),
                ..usage(9, 3)
            },
            "stop",
            0,
        ),
        (
            "openai_completions.sse",
            Api::Openai,
            Endpoint::Completions,
            usage(9, 3),
            "length",
            0,
        ),
        (
            "openai_sse_edge_cases.sse",
            Api::Openai,
            Endpoint::Chat,
            usage(9, 3),
            "length",
            0,
        ),
        (
            "vllm_chat_reasoning.sse",
            Api::Openai,
            Endpoint::Chat,
            usage(9, 5),
            "length",
            2,
        ),
        (
            "tgi_chat.sse",
            Api::Openai,
            Endpoint::Chat,
            usage(9, 3),
            "length",
            0,
        ),
        (
            "llamacpp_python_chat.sse",
            Api::Openai,
            Endpoint::Chat,
            Usage::default(),
            "length",
            0,
        ),
        (
            "llamacpp_server_chat.sse",
            Api::Openai,
            Endpoint::Chat,
            usage(9, 3),
            "length",
            0,
        ),
        (
            "anthropic_messages.sse",
            Api::Anthropic,
            Endpoint::Chat,
            usage(9, 3),
            "max_tokens",
            0,
        ),
        (
            "anthropic_thinking.sse",
            Api::Anthropic,
            Endpoint::Chat,
            usage(9, 3),
            "max_tokens",
            2,
        ),
    ];
    for &(name, api, endpoint, usage, finish, reasoning) in cases {
        let s = summary(&decode(api, endpoint, &fixture(name), &[]));
        assert_eq!(s.content, HELLO, "{name}");
        assert_eq!(s.reasoning.len(), reasoning, "{name}");
        assert_eq!(s.usage, usage, "{name}");
        assert_eq!(s.finish.as_deref(), Some(finish), "{name}");
        assert!(s.done_last, "{name}: ends with the end-of-stream marker");
        assert!(s.errors.is_empty(), "{name}");
    }
}

#[test]
fn anthropic_error_event_is_an_error() {
    let body = b"event: ping\ndata: {\"type\": \"ping\"}\n\nevent: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
    let s = summary(&decode(Api::Anthropic, Endpoint::Chat, body, &[]));
    assert_eq!(s.errors, vec!["overloaded_error: Overloaded".to_string()]);
}

/// Fuzz: every way of cutting the body into network reads gives the same events.
#[test]
fn sse_decoding_is_independent_of_how_bytes_arrive() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (name, api, endpoint) in [
        ("openai_chat.sse", Api::Openai, Endpoint::Chat),
        ("openai_sse_edge_cases.sse", Api::Openai, Endpoint::Chat),
        ("llamacpp_python_chat.sse", Api::Openai, Endpoint::Chat),
        ("tgi_chat.sse", Api::Openai, Endpoint::Chat),
        ("anthropic_thinking.sse", Api::Anthropic, Endpoint::Chat),
    ] {
        let body = fixture(name);
        let whole = decode(api, endpoint, &body, &[]);
        for k in 1..body.len() {
            assert_eq!(
                decode(api, endpoint, &body, &[k]),
                whole,
                "{name}: cut at byte {k}"
            );
        }
        for round in 0..200 {
            let mut cuts = Vec::new();
            let mut at = 0;
            loop {
                at += rng.random_range(1..=if round % 4 == 0 { 2 } else { 64 });
                if at >= body.len() {
                    break;
                }
                cuts.push(at);
            }
            assert_eq!(
                decode(api, endpoint, &body, &cuts),
                whole,
                "{name}: cuts {cuts:?}"
            );
        }
    }
}

/// Fuzz: arbitrary bytes never panic the decoder; they decode or fail with a message.
#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let alphabet: &[u8] = b"data: {}[]\"\\\r\n:event\xff\xfe0123DONE";
    for _ in 0..2000 {
        let n = rng.random_range(0..200);
        let body: Vec<u8> = (0..n)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let pieces: Vec<Bytes> = body
            .chunks(rng.random_range(1..17))
            .map(Bytes::copy_from_slice)
            .collect();
        let _ = replay(Api::Openai, Endpoint::Chat, pieces.clone());
        let _ = replay(Api::Anthropic, Endpoint::Chat, pieces);
    }
}
