//! The remote API backends through the real binary, against scripted in-process servers
//! (timing accuracy, faults, secrets, stale keep-alive connections, servers that ignore the cap
//! or never send usage) and against `charter serve` (prompt lengths and output counts with
//! byte-level BPE and SentencePiece tokenizers).

mod common;
// Only this test binary needs the scripted servers: the others do not compile them.
#[path = "common/idle_close_server.rs"]
mod idle_close_server;
#[path = "common/sse_server.rs"]
mod sse_server;

use std::path::Path;
use std::process::Command;

use charter_record::{
    DecodeRule, ErrorKind, PromptTokenSource, StaleConnection, StopReason, TokenCountSource,
};
use common::*;
use sse_server::{closed_port, tls_cert_path, EchoAt, Fault, Script, TestServer, Wire};

/// The tests of this file run one at a time: the timing test must not share the CPUs with the
/// other tests' servers and clients.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A delay before the response headers shows up in full in the response-headers time and in
/// TTFT, on every request: bounds that hold on any machine however loaded (a late client can
/// only measure more). The precision of charter's timing against known delays is a figure,
/// not a pass/fail test: `cargo bench -p charter-benches --bench remote_timing` reports it.
#[test]
fn a_delay_before_response_headers_shows_in_ttft() {
    let _serial = serial();
    let hold = std::time::Duration::from_millis(50);
    let srv = TestServer::start(move |_| Script::openai(0, 2, 4).with(Fault::SlowHeaders(hold)));
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &["--concurrency", "2", "--requests", "6", "--warmup", "0"],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.error_kind, None, "{r:?}");
        let headers = r.response_headers_s.unwrap();
        let ttft = r.ttft_s.unwrap();
        assert!(
            headers >= 0.050,
            "response headers {headers} s < the 50 ms held: {r:?}"
        );
        assert!(ttft >= headers, "{r:?}");
        assert!(r.e2e_s.unwrap() >= ttft, "{r:?}");
    }
}

/// A server that accepts at once but reads nothing of a request for 50 ms, then answers one
/// token: a request larger than the socket buffers cannot be written before the server reads,
/// so the 50 ms appear in TTFT only if `start` is stamped before the request is written.
fn slow_reader_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 1 << 16];
                let header_end = loop {
                    let n = c.read(&mut chunk).unwrap();
                    assert!(n > 0, "the client closed before sending its headers");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .expect("a content-length");
                let mut got = buf.len() - header_end;
                while got < len {
                    let n = c.read(&mut chunk).unwrap();
                    assert!(n > 0);
                    got += n;
                }
                let body = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n\
                            data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
                            data: [DONE]\n\n";
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

#[test]
fn start_is_stamped_before_the_request_is_written() {
    let _serial = serial();
    let addr = slow_reader_server();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // About 40 MB of prompt (words of 4 to 10 bytes): far beyond loopback socket buffers.
    let o = profile_openai(
        &format!("http://{addr}"),
        &run,
        &[
            "--prompt-tokens",
            "6000000",
            "--max-tokens",
            "1",
            "--requests",
            "2",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.error_kind, None, "{r:?}");
        let ttft = r.ttft_s.unwrap();
        assert!(
            ttft >= 0.050,
            "TTFT {ttft} s misses the 50 ms the write waited: {r:?}"
        );
    }
}

fn assert_fault(
    fault: Fault,
    kind: &str,
    extra: &[&str],
    check: impl Fn(&charter_record::RequestRow),
) {
    let f = fault.clone();
    // Even-numbered requests fail, odd ones succeed: the run goes on past every failure.
    let srv = TestServer::start(move |n| {
        let s = Script::openai(2, 1, 6);
        if n % 2 == 0 {
            s.with(f.clone())
        } else {
            s
        }
    });
    assert_fault_at(
        &srv.base_url(),
        &srv.requests,
        &format!("{fault:?}"),
        kind,
        extra,
        check,
    );
}

#[test]
fn faults_are_per_request_errors_of_the_right_kind() {
    let _serial = serial();
    assert_fault(Fault::Status(500, None), "http_status", &[], |r| {
        assert_eq!(r.http_status, Some(500));
        assert!(r.error_message.as_deref().unwrap().contains("500"));
    });
    assert_fault(Fault::Status(429, Some("7")), "rate_limited", &[], |r| {
        assert_eq!(r.http_status, Some(429));
        assert_eq!(r.retry_after_s, Some(7.0));
    });
    assert_fault(Fault::ResetAfter(3), "stream_broken", &[], |r| {
        assert_eq!(r.output_tokens, 3, "tokens received before the failure");
        assert!(r.ttft_s.is_some());
    });
    assert_fault(Fault::MalformedAfter(2), "malformed", &[], |r| {
        assert!(r
            .error_message
            .as_deref()
            .unwrap()
            .contains("not valid JSON"));
    });
    assert_fault(
        Fault::IdleAfter(2),
        "timeout",
        &["--idle-timeout", "300ms"],
        |r| {
            assert!(r.error_message.as_deref().unwrap().contains("idle"));
            assert_eq!(r.output_tokens, 2);
        },
    );
    assert_fault(Fault::NoDone, "stream_broken", &[], |r| {
        assert!(r.error_message.as_deref().unwrap().contains("[DONE]"));
    });
    assert_fault(Fault::Huge(10 << 20), "malformed", &[], |r| {
        assert!(r.error_message.as_deref().unwrap().contains("exceeds"));
    });
    assert_fault(
        Fault::SlowHeaders(std::time::Duration::from_millis(800)),
        "timeout",
        &["--headers-timeout", "200ms"],
        |r| {
            let m = r.error_message.as_deref().unwrap();
            assert!(m.contains("response-headers timeout"), "{m}");
            assert_eq!(r.http_status, None);
        },
    );
    // A whole-request limit shorter than the scripted stream (2 ms + 5 × 1 ms) of the faulty
    // requests only: the others finish well within it.
    assert_fault(
        Fault::IdleAfter(3),
        "timeout",
        &["--total-timeout", "400ms"],
        |r| {
            let m = r.error_message.as_deref().unwrap();
            assert!(m.contains("total timeout"), "{m}");
            assert_eq!(r.output_tokens, 3);
        },
    );
}

#[test]
fn connection_refused_is_recorded_and_the_run_goes_on() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let base = format!("http://{}", closed_port());
    let o = profile_openai(&base, &run, &["--requests", "3", "--warmup", "0"]);
    // Every request failed: exit code 3, with the record written as usual.
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    assert_eq!(rec["complete"], true);
    assert_eq!(rec["levels"][0]["summary"]["errors"]["connect"], 3);
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.error_kind == Some(ErrorKind::Connect)));
    // A failed connect is a new connection, not a reused one.
    assert!(rows.iter().all(|r| r.connection_reused == Some(false)));
}

#[test]
fn api_key_never_reaches_any_output() {
    let _serial = serial();
    const KEY: &str = "sk-charter-test-0123456789abcdef";
    const TEAM: &str = "team-secret-fedcba9876543210";
    let srv = TestServer::start(|n| {
        let s = Script::openai(1, 1, 4);
        if n % 3 == 0 {
            s.with(Fault::Status(500, None)) // echoes the credentials in its body
        } else {
            s
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args([
            "profile",
            "--backend",
            "openai",
            "--base-url",
            &srv.base_url(),
            "--model",
            "m",
            "--api-key-env",
            "CHARTER_TEST_KEY",
            "--header",
            &format!("X-Team-Token: {TEAM}"),
            "--requests",
            "6",
            "--warmup",
            "0",
            "--out",
            run.to_str().unwrap(),
        ])
        .env("CHARTER_TEST_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    // The key was sent...
    let creds = srv.credentials.lock().unwrap().clone();
    assert!(
        creds.iter().all(|c| c == &format!("Bearer {KEY}")),
        "{creds:?}"
    );
    let rec = validated_record(&run);
    assert_eq!(rec["backend"]["remote"]["api_key_env"], "CHARTER_TEST_KEY");
    assert_eq!(rec["levels"][0]["summary"]["errors"]["http_status"], 2);
    // ...and appears nowhere: console, run directory, rendered reports.
    let report = tmp.path().join("report");
    let r = charter(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(0), "stderr: {}", stderr(&r));
    let mut outputs = vec![stdout(&o), stderr(&o), stdout(&r), stderr(&r)];
    let mut dirs = vec![run.clone(), report.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                outputs.push(String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned());
            }
        }
    }
    assert!(outputs.len() > 6);
    for out in &outputs {
        assert!(!out.contains(KEY), "the API key leaked into an output");
        assert!(!out.contains(TEAM), "a header value leaked into an output");
    }
    let rows = request_rows(&run);
    assert!(rows
        .iter()
        .filter_map(|r| r.error_message.as_deref())
        .any(|m| m.contains("[redacted]")));
}

/// Every text charter wrote for a run: its console output, the run directory and the report
/// rendered from it.
fn all_outputs(o: &std::process::Output, run: &Path, report: &Path) -> Vec<(String, String)> {
    let r = charter(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(0), "stderr: {}", stderr(&r));
    let mut outputs = vec![
        ("profile stdout".into(), stdout(o)),
        ("profile stderr".into(), stderr(o)),
        ("report stdout".into(), stdout(&r)),
        ("report stderr".into(), stderr(&r)),
    ];
    let mut dirs = vec![run.to_path_buf(), report.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                outputs.push((p.display().to_string(), text));
            }
        }
    }
    outputs
}

/// No `len`-byte piece of `secret` appears in any output.
fn assert_no_piece_of(secret: &str, len: usize, outputs: &[(String, String)]) {
    for (name, text) in outputs {
        for i in 0..=secret.len() - len {
            let piece = &secret[i..i + len];
            assert!(
                !text.contains(piece),
                "{piece:?} (a piece of a secret) leaked into {name}"
            );
        }
    }
}

/// Servers that echo the credential where charter quotes them in error messages (a proxy's
/// error page that lists every request header, a chunk that is not JSON, an error event),
/// placed so that the credential straddles each cut charter makes (300, 80 and 200
/// characters) at every offset: no 4-byte piece of the key or of a `--header` value reaches
/// any output, through the OpenAI `Authorization` header, the Anthropic `x-api-key` header,
/// or an `Authorization` header given with `--header`.
#[test]
fn a_key_echoed_across_any_cut_never_leaks() {
    let _serial = serial();
    // Mixed-case letters only: no 4-byte piece of either appears in any output by chance, so
    // even the short stub of a key halved by a cut would be caught.
    const KEY: &str = "QzXqWvKJmPrTyUnBhGdFsLkRtYpWqZxVcM";
    const TEAM: &str = "TmSqVbNcXzLkJhGfDsApOiUyTrEwQ";
    // Offsets sweep the credential across each cut: it starts 1 to 60 bytes before the cut.
    const SPAN: usize = 60;
    // Where each quote is cut, less the text before the padding in what is cut.
    let start = |at: EchoAt| match at {
        // The page is the body: `<html><body><h1>502 Bad Gateway</h1><pre>`.
        EchoAt::ProxyPage => 300 - 41 - SPAN,
        // The chunk's data is quoted from its first byte.
        EchoAt::Malformed => 80 - SPAN,
        // The error object as JSON: `{"code":"`.
        EchoAt::ErrorEvent => 200 - 9 - SPAN,
    };
    let kinds = [EchoAt::ProxyPage, EchoAt::Malformed, EchoAt::ErrorEvent];
    let n = 3 * SPAN as u64;
    for (case, wire) in [
        ("openai key", Wire::OpenAiChat),
        ("anthropic key", Wire::Anthropic),
        ("authorization header", Wire::OpenAiChat),
    ] {
        let srv = TestServer::start(move |i| {
            let at = kinds[(i % 3) as usize];
            Script {
                wire,
                ..Script::openai(0, 0, 2)
            }
            .with(Fault::Echo(at, start(at) + (i / 3) as usize % SPAN))
        });
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let team = format!("X-Team-Token: {TEAM}");
        let auth = format!("Authorization: Bearer {KEY}");
        let backend = if wire == Wire::Anthropic {
            "anthropic"
        } else {
            "openai"
        };
        let requests = n.to_string();
        let base = srv.base_url();
        let mut args = vec![
            "profile",
            "--backend",
            backend,
            "--base-url",
            &base,
            "--model",
            "m",
            "--header",
            &team,
            "--concurrency",
            "3",
            "--requests",
            &requests,
            "--warmup",
            "0",
            "--out",
            run.to_str().unwrap(),
        ];
        if case == "authorization header" {
            args.extend(["--header", &auth]);
        } else {
            args.extend(["--api-key-env", "CHARTER_TEST_KEY"]);
        }
        let o = Command::new(env!("CARGO_BIN_EXE_charter"))
            .args(&args)
            .env("CHARTER_TEST_KEY", KEY)
            .output()
            .unwrap();
        // Every request failed: exit 3, results written.
        assert_eq!(o.status.code(), Some(3), "{case}: stderr: {}", stderr(&o));
        let creds = srv.credentials.lock().unwrap().clone();
        let sent = if wire == Wire::Anthropic {
            KEY.to_string()
        } else {
            format!("Bearer {KEY}")
        };
        assert_eq!(creds.len() as u64, n, "{case}");
        assert!(creds.iter().all(|c| c == &sent), "{case}: {creds:?}");
        let rec = validated_record(&run);
        let errors = &rec["levels"][0]["summary"]["errors"];
        assert_eq!(errors["http_status"], SPAN as u64, "{case}: {errors}");
        assert_eq!(errors["malformed"], SPAN as u64, "{case}: {errors}");
        assert_eq!(errors["stream_broken"], SPAN as u64, "{case}: {errors}");
        let outputs = all_outputs(&o, &run, &tmp.path().join("report"));
        assert_no_piece_of(KEY, 4, &outputs);
        assert_no_piece_of(TEAM, 4, &outputs);
        // The messages still say what happened, with the secret's place marked.
        let rows = request_rows(&run);
        let messages: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.error_message.as_deref())
            .collect();
        assert_eq!(messages.len() as u64, n, "{case}");
        assert!(
            messages.iter().filter(|m| m.contains("[redacted]")).count() as u64 >= n / 2,
            "{case}: {messages:#?}"
        );
        assert!(messages.iter().any(|m| m.starts_with("HTTP 502")), "{case}");
    }
}

/// An API key is never sent over plain HTTP to another machine unless asked: exit 2 at once,
/// naming the flag that allows it; with `--allow-plaintext-key` the run goes ahead (here to an
/// address that never answers, so every request fails to connect and the level exits 3).
#[test]
fn a_key_is_not_sent_in_plain_http_to_another_host_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // 192.0.2.0/24 is TEST-NET-1: documentation only, never routed.
    let args = |allow: bool| {
        let mut a = vec![
            "profile",
            "--backend",
            "openai",
            "--base-url",
            "http://192.0.2.1:9/v1",
            "--model",
            "m",
            "--api-key-env",
            "CHARTER_TEST_KEY",
            "--requests",
            "1",
            "--warmup",
            "0",
            "--connect-timeout",
            "200ms",
            "--out",
            run.to_str().unwrap(),
        ];
        if allow {
            a.push("--allow-plaintext-key");
        }
        a
    };
    let o = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args(false))
        .env("CHARTER_TEST_KEY", "sk-plaintext-test-key")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--api-key-env CHARTER_TEST_KEY") && err.contains("--allow-plaintext-key"),
        "{err}"
    );
    assert!(!run.exists());
    let o = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args(true))
        .env("CHARTER_TEST_KEY", "sk-plaintext-test-key")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let rows = request_rows(&run);
    // Unroutable: refused by the network at once, or the connect timeout.
    assert!(
        matches!(
            rows[0].error_kind,
            Some(ErrorKind::Connect | ErrorKind::Timeout)
        ),
        "{rows:?}"
    );
}

/// TLS against the in-process server's self-signed certificate: refused by default (each
/// request a `connect` error, the run goes on), trusted with `--ca-cert`, and with
/// `--insecure` not checked at all, which the console says loudly and the record keeps.
#[test]
fn self_signed_tls_needs_ca_cert_or_a_loud_insecure() {
    let _serial = serial();
    let srv = TestServer::start_tls(|_| Script::openai(1, 1, 3));
    let base = srv.base_url();
    assert!(base.starts_with("https://"));
    let cert = tls_cert_path();
    let tmp = tempfile::tempdir().unwrap();
    let profile = |name: &str, extra: &[&str]| {
        let run = tmp.path().join(name);
        let mut args = vec!["--requests", "2", "--warmup", "0"];
        args.extend_from_slice(extra);
        (profile_openai(&base, &run, &args), run)
    };
    // Untrusted: every request fails to connect (the TLS handshake), recorded per request.
    let (o, run) = profile("untrusted", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let rows = request_rows(&run);
    assert!(
        rows.iter()
            .all(|r| r.error_kind == Some(ErrorKind::Connect)),
        "{rows:?}"
    );
    // Trusted through --ca-cert.
    let (o, run) = profile("ca", &["--ca-cert", cert.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(request_rows(&run).iter().all(|r| r.error_kind.is_none()));
    let rec = validated_record(&run);
    let tls = rec["backend"]["remote"]["tls"].as_str().unwrap();
    assert!(
        tls.contains("--ca-cert") && tls.contains("cert.pem"),
        "{tls}"
    );
    // Not checked: loud, and recorded.
    let (o, run) = profile("insecure", &["--insecure"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("--insecure: TLS certificates are NOT verified"));
    let rec = validated_record(&run);
    assert!(rec["backend"]["remote"]["tls"]
        .as_str()
        .unwrap()
        .starts_with("INSECURE"));
    // A CA file that cannot be read, or holds no certificate: bad input.
    let (o, run) = profile("plain-default", &["--ca-cert", "/nonexistent/ca.pem"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--ca-cert /nonexistent/ca.pem"),
        "{}",
        stderr(&o)
    );
    assert!(!run.exists());
    let not_pem = tmp.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let (o, _) = profile("not-pem", &["--ca-cert", not_pem.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no certificate"), "{}", stderr(&o));
}

#[test]
fn anthropic_thinking_does_not_fool_ttft() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script {
        wire: Wire::Anthropic,
        reasoning: 3,
        ..Script::openai(30, 5, 8)
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "anthropic",
        "--base-url",
        &srv.base_url(),
        "--model",
        "claude-test",
        "--requests",
        "5",
        "--warmup",
        "1",
        "--max-tokens",
        "8",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    validated_record(&run);
    let rows: Vec<_> = request_rows(&run)
        .into_iter()
        .filter(|r| !r.warmup)
        .collect();
    for r in &rows {
        assert_eq!(r.error_kind, None, "{r:?}");
        // Anthropic's usage counts thinking in output_tokens without saying how much of it.
        assert_eq!(r.output_tokens, 3 + 8);
        assert_eq!(r.reasoning_tokens, None);
        assert_eq!(r.prompt_tokens, 11);
        assert_eq!(r.token_count_source, TokenCountSource::Usage);
        assert_eq!(r.stop_reason, Some(StopReason::MaxTokens));
        assert_eq!(r.reasoning_chunks, Some(3));
        assert!(r.first_reasoning_s.unwrap() < 0.010, "{r:?}");
        // The documented rule: decode from the first output token of any kind, over all
        // output tokens.
        assert_eq!(r.decode_rule, Some(DecodeRule::AllOutput), "{r:?}");
        let e2e_from_thinking = r.e2e_s.unwrap() - r.first_reasoning_s.unwrap();
        assert!(
            (r.decode_time_s.unwrap() - e2e_from_thinking).abs() < 1e-9,
            "{r:?}"
        );
        assert!(
            (r.itl_s.unwrap() - r.decode_time_s.unwrap() / 10.0).abs() < 1e-12,
            "{r:?}"
        );
    }
    let ttft = median(rows.iter().map(|r| r.ttft_s.unwrap()).collect());
    assert!((ttft - 0.030).abs() <= 0.002, "TTFT p50 {ttft}");
}

/// An OpenAI reasoning stream: 40 reasoning chunks, then 20 content chunks, usage
/// `completion_tokens` 60 with `reasoning_tokens` 40. ITL is the content decode time over the
/// 19 gaps between content tokens, exactly (not over 59, which would make it 3× too low).
#[test]
fn openai_reasoning_tokens_are_not_counted_as_content_decode() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script {
        reasoning: 40,
        ..Script::openai(250, 5, 20)
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &["--requests", "4", "--warmup", "1", "--max-tokens", "60"],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    let rows: Vec<_> = request_rows(&run)
        .into_iter()
        .filter(|r| !r.warmup)
        .collect();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r.error_kind, None, "{r:?}");
        assert_eq!(r.output_tokens, 60, "{r:?}");
        assert_eq!(r.reasoning_tokens, Some(40), "{r:?}");
        assert_eq!(r.reasoning_chunks, Some(40), "{r:?}");
        assert_eq!(r.decode_rule, Some(DecodeRule::Content), "{r:?}");
        // Decode runs from the first to the last content token: 19 gaps of 5 ms.
        let decode = r.decode_time_s.unwrap();
        assert!((decode - 0.095).abs() < 0.015, "decode {decode}: {r:?}");
        assert!((r.itl_s.unwrap() - decode / 19.0).abs() < 1e-12, "{r:?}");
        // TTFT is to the first content token; the first reasoning token came long before.
        assert!((r.ttft_s.unwrap() - 0.250).abs() < 0.015, "{r:?}");
        assert!(
            r.first_reasoning_s.unwrap() < r.ttft_s.unwrap() - 0.1,
            "{r:?}"
        );
    }
    let s = &rec["levels"][0]["summary"];
    assert_eq!(s["reasoning_tokens"], 4 * 40, "{s}");
    assert_eq!(s["decode_rules"]["content"], 4, "{s}");
    assert!(s["first_reasoning"]["count"] == 4, "{s}");
}

#[test]
fn bad_remote_flags_exit_2() {
    let _serial = serial();
    let o = charter(&["profile", "--backend", "openai", "--model", "m"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--base-url"), "{}", stderr(&o));
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--model",
        "m",
        "--base-url",
        "localhost:8000",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--base-url"), "{}", stderr(&o));
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9",
        "--api-key-env",
        "CHARTER_SURELY_UNSET_VARIABLE",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("CHARTER_SURELY_UNSET_VARIABLE"));
    let o = charter(&["profile", "--base-url", "http://127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("only to --backend openai"));
    let remote = [
        "profile",
        "--backend",
        "openai",
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9",
    ];
    let o = charter(&[&remote[..], &["--prompt-ids"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--prompt-ids") && stderr(&o).contains("completions"),
        "{}",
        stderr(&o)
    );
    let o = charter(&[&remote[..], &["--prompt-ids", "--endpoint", "completions"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs --tokenizer"), "{}", stderr(&o));
    let o = charter(&[&remote[..], &["--tokenizer", "/nonexistent/t.gguf"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/t.gguf"), "{}", stderr(&o));
}

/// `charter serve` on a free port; killed on drop.
fn serve(args: &[&str]) -> Spawned {
    spawn(&[&["serve"], args, &["--listen", "127.0.0.1:0"]].concat())
}

#[test]
fn end_to_end_against_charter_serve_tiny_preset() {
    let _serial = serial();
    let srv = serve(&["--preset", "tiny-15m", "--threads", "1"]);
    for (endpoint, http2) in [("chat", false), ("completions", false), ("chat", true)] {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let mut args = vec![
            "--endpoint",
            endpoint,
            "--concurrency",
            "2",
            "--requests",
            "4",
            "--max-tokens",
            "6",
            "--prompt-tokens",
            "12",
        ];
        if http2 {
            args.push("--http2-prior-knowledge");
        }
        let o = profile_openai(&srv.url, &run, &args);
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let rec = validated_record(&run);
        assert_eq!(rec["levels"][0]["summary"]["requests_completed"], 4);
        assert_eq!(
            rec["backend"]["remote"]["client"]
                .as_str()
                .unwrap()
                .contains("prior knowledge"),
            http2
        );
        for r in request_rows(&run) {
            assert_eq!(r.error_kind, None, "{r:?}");
            // Presets have no EOS: exactly max_tokens, counted by the server's backend.
            assert_eq!(r.output_tokens, 6);
            assert_eq!(
                r.prompt_tokens, 12,
                "{endpoint}: one id per word of the prompt"
            );
            assert_eq!(r.token_count_source, TokenCountSource::Usage);
            assert!(r.ttft_s.unwrap() > 0.0 && r.itl_s.unwrap() > 0.0);
            let version = if http2 { "HTTP/2.0" } else { "HTTP/1.1" };
            assert_eq!(r.http_version.as_deref(), Some(version));
        }
    }
}

#[test]
fn scenario_files_describe_remote_backends() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("remote.toml");
    std::fs::write(
        &f,
        "[backend]\nkind = \"openai\"\nmodel = \"org/model-name\"\nbase_url = \"http://127.0.0.1:8000/v1\"\nendpoint = \"completions\"\n[load]\nconcurrency = 2\n",
    )
    .unwrap();
    let o = charter(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("openai org/model-name at http://127.0.0.1:8000/v1"),
        "{}",
        stdout(&o)
    );
    std::fs::write(
        &f,
        "[backend]\nkind = \"candle\"\nbase_url = \"http://127.0.0.1:8000\"\n",
    )
    .unwrap();
    let o = charter(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("base_url"), "{}", stderr(&o));
}

/// A server without usage (llama.cpp's ignores include_usage): counts come from the configured
/// tokenizer over the whole output text, else from the chunks; the length field is configurable
/// and recorded.
#[test]
fn counts_without_usage_and_the_length_field() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script {
        usage: false,
        ..Script::openai(1, 1, 7)
    });
    let tmp = tempfile::tempdir().unwrap();
    // A word-level tokenizer: the test server's content chunks are "w0 ", "w1 ", ...
    let vocab: std::collections::HashMap<String, u32> = (0..20)
        .map(|i| (format!("w{i}"), i))
        .chain([("[UNK]".to_string(), 20)])
        .collect();
    let model = tokenizers::models::wordlevel::WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace {}));
    let tok_path = tmp.path().join("tokenizer.json");
    tok.save(&tok_path, false).unwrap();
    for (extra, source) in [
        (vec!["--length-field", "max-completion-tokens"], "chunks"),
        (vec!["--tokenizer", tok_path.to_str().unwrap()], "tokenizer"),
    ] {
        let run = tmp.path().join(source);
        let mut args = vec!["--requests", "2", "--warmup", "0", "--max-tokens", "7"];
        args.extend_from_slice(&extra);
        let o = profile_openai(&srv.base_url(), &run, &args);
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let rec = validated_record(&run);
        assert_eq!(
            rec["levels"][0]["summary"]["token_count_sources"][source],
            2
        );
        for r in request_rows(&run) {
            assert_eq!(r.token_count_source.as_str(), source);
            assert_eq!(r.output_tokens, 7, "{source}");
        }
        let field = if source == "chunks" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert_eq!(rec["backend"]["remote"]["length_field"], field);
    }
    let bodies = srv.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 4);
    assert_eq!(bodies[0]["max_completion_tokens"], 7);
    assert!(bodies[0].get("max_tokens").is_none());
    assert_eq!(bodies[2]["max_tokens"], 7);
    for b in bodies.iter() {
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["model"], "test-model");
        assert!(b["messages"][0]["content"].as_str().is_some());
    }
}

/// POST `body` to `path` on `base` (plain HTTP/1.1, connection closed) and return the body.
fn post(base: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let addr = addr.split('/').next().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or(out)
}

/// A real model's text comes through `charter serve`: greedy SmolLM2 answers the question, and
/// the streamed chunks put together give the same text as the non-streamed answer.
#[test]
fn charter_serve_streams_the_decoded_text_of_a_real_model() {
    let _serial = serial();
    let model = smollm2_gguf();
    let srv = serve(&["--model", model.to_str().unwrap(), "--threads", "2"]);
    // The completions endpoint with SmolLM2's ChatML written out (as the candle tests do).
    let ask = |stream: bool| {
        serde_json::json!({
            "model": "m",
            "prompt": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            "max_tokens": 24,
            "temperature": 0,
            "stream": stream,
        })
        .to_string()
    };
    let whole: serde_json::Value =
        serde_json::from_str(&post(&srv.url, "/v1/completions", &ask(false))).unwrap();
    let text = whole["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("Paris"), "{text:?}");
    let sse = post(&srv.url, "/v1/completions", &ask(true));
    // A chunked body: take the SSE `data:` lines wherever they are.
    let streamed: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(streamed, text);
}

/// A server that closes kept-alive connections idle for 1 s (uvicorn does after 5 s): streams
/// that sat idle through a warm-up barrier longer than that, and an open loop at 0.5 req/s,
/// find their connections closed. No request fails, the stale connections are counted, and
/// the server reads each request once.
#[test]
fn stale_keep_alive_connections_are_reconnected_not_failed() {
    let _serial = serial();
    use idle_close_server::{Close, IdleCloseServer};
    use std::sync::atomic::Ordering::SeqCst;
    // The first warm-up request is held 1.5 s: the other streams idle past the server's 1 s.
    // The other three are held 200 ms so that all four are in flight together, on four
    // connections; measured requests are held 50 ms so that every stream sends one before the
    // stream with the fresh connection could take them all.
    let hold_first = |n| match n {
        0 => std::time::Duration::from_millis(1500),
        1..=3 => std::time::Duration::from_millis(200),
        _ => std::time::Duration::from_millis(50),
    };
    let tmp = tempfile::tempdir().unwrap();
    // Timer: the close reaches the client while it idles (found before sending). OnArrival:
    // the request and the close cross (written to the closed connection, then resent).
    for (close, kind) in [
        (Close::Timer, StaleConnection::FoundClosed),
        (Close::OnArrival, StaleConnection::Resent),
    ] {
        let srv = IdleCloseServer::start(std::time::Duration::from_secs(1), close, hold_first);
        let closed = tmp.path().join(format!("closed-{close:?}"));
        let o = profile_openai(
            &srv.base_url(),
            &closed,
            &[
                // This server answers every request, a GET /metrics too, and counts it.
                "--server-metrics",
                "none",
                "--concurrency",
                "4",
                "--warmup",
                "4",
                "--requests",
                "8",
                "--max-tokens",
                "4",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let rec = validated_record(&closed);
        let s = &rec["levels"][0]["summary"];
        assert_eq!(s["requests_failed"], 0, "{close:?}: {s}");
        assert_eq!(s["requests_completed"], 8, "{close:?}: {s}");
        let rows = request_rows(&closed);
        assert!(rows.iter().all(|r| r.connection_reused.is_some()));
        let stale: Vec<_> = rows.iter().filter_map(|r| r.stale_connection).collect();
        eprintln!("{close:?}: stale connections {stale:?}");
        assert!(
            s["stale_reconnects"].as_u64().unwrap() >= 3,
            "{close:?}: {s}"
        );
        assert!(stale.iter().all(|k| *k == kind), "{close:?}: {stale:?}");
        for r in rows.iter().filter(|r| r.stale_connection.is_some()) {
            assert_eq!(r.connection_reused, Some(false), "{r:?}");
            assert!(r.connect_s.is_some(), "{r:?}");
        }
        assert_eq!(
            srv.requests.load(SeqCst),
            rows.len() as u64,
            "{close:?}: the server read every request exactly once"
        );
        assert!(srv.idle_closes.load(SeqCst) >= 3);
        assert!(
            srv.connections.load(SeqCst) >= 4 + 3,
            "new connections replaced the closed ones"
        );
    }
    let srv = IdleCloseServer::start(std::time::Duration::from_secs(1), Close::Timer, |_| {
        std::time::Duration::ZERO
    });

    // Open loop at 0.5 req/s: every gap (2 s) is longer than the server's idle timeout, so
    // every request after the first finds its connection closed.
    let open = tmp.path().join("open");
    let before = srv.requests.load(SeqCst);
    let o = profile_openai(
        &srv.base_url(),
        &open,
        &[
            // This server answers every request, a GET /metrics too, and counts it.
            "--server-metrics",
            "none",
            "--rate",
            "0.5",
            "--arrivals",
            "constant",
            // One worker stream, so that each request follows the previous one's connection.
            "--max-in-flight",
            "1",
            "--warmup",
            "1",
            "--requests",
            "3",
            "--max-tokens",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&open);
    let s = &rec["levels"][0]["summary"];
    assert_eq!(s["requests_failed"], 0, "{s}");
    assert_eq!(s["stale_reconnects"], 3, "{s}");
    assert_eq!(srv.requests.load(SeqCst) - before, 4);

    // Charter's own idle timeout shorter than the server's: the pool retires the connections
    // first, so none is found stale (each request opens a new connection instead).
    let own = tmp.path().join("own");
    let o = profile_openai(
        &srv.base_url(),
        &own,
        &[
            // This server answers every request, a GET /metrics too, and counts it.
            "--server-metrics",
            "none",
            "--rate",
            "0.5",
            "--arrivals",
            "constant",
            // One worker stream, so that each request follows the previous one's connection.
            "--max-in-flight",
            "1",
            "--warmup",
            "1",
            "--requests",
            "2",
            "--max-tokens",
            "4",
            "--pool-idle-timeout",
            "500ms",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&own);
    let s = &rec["levels"][0]["summary"];
    assert_eq!(
        (
            s["requests_failed"].as_u64(),
            s["stale_reconnects"].as_u64()
        ),
        (Some(0), Some(0)),
        "{s}"
    );
    assert_eq!(rec["backend"]["remote"]["pool_idle_timeout_s"], 0.5);
    for r in request_rows(&own) {
        assert_eq!(r.connection_reused, Some(false), "{r:?}");
        assert!(r.connect_s.is_some());
    }
}

fn tiny_decoder() -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/tiny-decoder/model.onnx");
    assert!(
        p.is_file(),
        "{} not found: run scripts/make-onnx-decoder.py (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Words of the test SentencePiece vocabulary (each one piece, `▁word`).
const SP_WORDS: &[&str] = &[
    "the", "at", "of", "and", "to", "in", "is", "that", "for", "it", "was", "with", "be", "on",
    "not", "this", "are", "or", "from", "which", "but", "have", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "more", "when", "will",
];

/// A Llama-2-style SentencePiece tokenizer.json whose vocabulary fits the tiny ONNX
/// decoder's 512 ids.
fn sentencepiece_tokenizer(path: &Path) {
    let json = charter_backends::testing::sentencepiece_tokenizer_json(SP_WORDS);
    let vocab = json["model"]["vocab"].as_object().unwrap().len();
    assert!(vocab <= 512, "{vocab}");
    std::fs::write(path, serde_json::to_vec(&json).unwrap()).unwrap();
}

/// Profile `charter serve` at `base` with synthetic prompts of each length in `lengths`
/// (completions endpoint, `tokenizer` on the client) and check the server counted exactly
/// the requested length.
fn prompt_lengths_reach_the_server(base: &str, tokenizer: &Path, lengths: &[u32]) {
    for n in lengths {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let n_s = n.to_string();
        let o = profile_openai(
            base,
            &run,
            &[
                "--endpoint",
                "completions",
                "--tokenizer",
                tokenizer.to_str().unwrap(),
                "--prompt-tokens",
                &n_s,
                "--max-tokens",
                "2",
                "--requests",
                "3",
                "--warmup",
                "0",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let rec = validated_record(&run);
        let c = &rec["levels"][0]["summary"]["prompt_tokens_usage_vs_intended"];
        assert_eq!(c["requests"], 3, "{}: {c}", tokenizer.display());
        assert_eq!(c["differing"], 0, "{}: {c}", tokenizer.display());
        for r in request_rows(&run) {
            assert_eq!(r.error_kind, None, "{r:?}");
            assert_eq!(
                (r.prompt_tokens_usage, r.prompt_tokens_intended),
                (Some(u64::from(*n)), Some(u64::from(*n))),
                "{}: {r:?}",
                tokenizer.display()
            );
            assert_eq!(
                r.prompt_tokens_intended_source,
                Some(PromptTokenSource::Tokenizer)
            );
            assert_eq!(r.prompt_token_source, PromptTokenSource::Usage);
        }
    }
}

/// Synthetic prompts are text the server tokenises to exactly the requested length: SmolLM2's
/// GGUF tokenizer (byte-level BPE, read from the .gguf by both sides) at 16, 64 and 512
/// tokens, and through the tiny ONNX decoder (context 256) its byte-level BPE tokenizer.json
/// and a SentencePiece (Llama-style) tokenizer.json at 16, 64 and 192. A real model's output
/// counted with the tokenizer agrees with the server's usage.
#[test]
fn synthetic_prompts_reach_charter_serve_at_the_requested_length() {
    let _serial = serial();
    let gguf = smollm2_gguf();
    // The file's own q4_1 weights: the text they generate re-tokenizes to exactly its tokens
    // (the q8_0 copy's text for this corpus has one pair that re-tokenizes differently).
    let srv = serve(&[
        "--model",
        gguf.to_str().unwrap(),
        "--threads",
        "2",
        "--weights",
        "keep",
    ]);
    prompt_lengths_reach_the_server(&srv.url, &gguf, &[16, 64, 512]);
    // 64 generated tokens of real text: the tokenizer's count is the server's usage.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.url,
        &run,
        &[
            "--tokenizer",
            gguf.to_str().unwrap(),
            "--prompts",
            "corpus",
            "--max-tokens",
            "64",
            "--ignore-eos",
            "--requests",
            "3",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    let c = &rec["levels"][0]["summary"]["output_tokens_usage_vs_tokenizer"];
    assert_eq!(
        (c["requests"].as_u64(), c["differing"].as_u64()),
        (Some(3), Some(0)),
        "{c}"
    );
    for r in request_rows(&run) {
        assert_eq!(r.output_tokens_usage, Some(64), "{r:?}");
        assert_eq!(r.output_tokens_tokenizer, Some(64), "{r:?}");
    }
    drop(srv);

    let decoder = tiny_decoder();
    let bpe = decoder.with_file_name("tokenizer.json");
    let srv = serve(&[
        "--backend",
        "onnx",
        "--model",
        decoder.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    prompt_lengths_reach_the_server(&srv.url, &bpe, &[16, 64, 192]);
    drop(srv);

    let sp = tmp.path().join("sentencepiece.json");
    sentencepiece_tokenizer(&sp);
    let srv = serve(&[
        "--backend",
        "onnx",
        "--model",
        decoder.to_str().unwrap(),
        "--tokenizer",
        sp.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    prompt_lengths_reach_the_server(&srv.url, &sp, &[16, 64, 192]);
}

/// The pieces a server streams for `ids`: each token's newly decoded text (what `charter
/// serve` and Hugging Face's text streamers send), or for SentencePiece its piece with `▁` as
/// a space (what llama.cpp's server sends, leading space included).
fn streamed_pieces(tok: &tokenizers::Tokenizer, ids: &[u32], sentencepiece: bool) -> Vec<String> {
    if sentencepiece {
        return ids
            .iter()
            .map(|&id| tok.id_to_token(id).unwrap().replace('▁', " "))
            .collect();
    }
    let mut shown = 0;
    (1..=ids.len())
        .map(|i| {
            let text = tok.decode(&ids[..i], false).unwrap();
            let new = text[shown..].to_string();
            shown = text.len();
            new
        })
        .collect()
}

/// 64 generated tokens count as 64 with `--tokenizer` when the server sends no usage, for
/// byte-level BPE (SmolLM2's GGUF tokenizer, the tiny decoder's tokenizer.json) and for a
/// SentencePiece tokenizer whose output starts with a space (`▁at` streamed as `" at"`).
#[test]
fn output_counts_match_generated_tokens_per_tokenizer_kind() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().join("sentencepiece.json");
    sentencepiece_tokenizer(&sp);
    let text = "Paris is the capital and largest city of France. With an estimated population of \
        two million residents, it is the centre of the region and one of the largest cities in \
        Europe; its museums, cafés and river banks draw visitors all year, and its metro carries \
        millions of people every day. The city grew on an island in the Seine more than two \
        thousand years ago, and its streets, bridges and gardens still follow the river's bends \
        from east to west.";
    let sp_text: String = (0..64)
        .map(|i| format!(" {}", SP_WORDS[(i * 7) % SP_WORDS.len()]))
        .collect();
    let cases = [
        (smollm2_gguf(), text.to_string(), false),
        (
            tiny_decoder().with_file_name("tokenizer.json"),
            text.to_string(),
            false,
        ),
        (sp.clone(), sp_text, true),
    ];
    for (path, text, is_sp) in cases {
        let tok = charter_backends::candle::tokenizer::from_path(&path).unwrap();
        let ids = tok.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        let ids = &ids[..64];
        let pieces = streamed_pieces(&tok, ids, is_sp);
        if is_sp {
            assert!(pieces[0].starts_with(' '), "{pieces:?}");
        }
        for usage in [false, true] {
            let p = pieces.clone();
            let srv = TestServer::start(move |_| Script {
                usage,
                ..Script::openai(0, 0, 0).with_pieces(p.clone())
            });
            let run = tmp
                .path()
                .join(format!("run-{usage}-{}", path.display()).replace('/', "_"));
            let mut args = vec![
                "--tokenizer",
                path.to_str().unwrap(),
                "--max-tokens",
                "64",
                "--requests",
                "2",
                "--warmup",
                "0",
            ];
            if !usage {
                args.push("--no-include-usage");
            }
            let o = profile_openai(&srv.base_url(), &run, &args);
            assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
            let rec = validated_record(&run);
            for r in request_rows(&run) {
                assert_eq!(r.error_kind, None, "{r:?}");
                assert_eq!(
                    r.output_tokens_tokenizer,
                    Some(64),
                    "{}: {r:?}",
                    path.display()
                );
                assert_eq!(r.output_tokens, 64, "{}", path.display());
                let source = if usage {
                    TokenCountSource::Usage
                } else {
                    TokenCountSource::Tokenizer
                };
                assert_eq!(r.token_count_source, source);
            }
            if usage {
                let c = &rec["levels"][0]["summary"]["output_tokens_usage_vs_tokenizer"];
                assert_eq!(c["differing"], 0, "{c}");
            }
        }
    }
}

/// A server that ignores the cap: every request is flagged `cap_ignored`, the stop reason is
/// the server's `finish_reason`, and the level warns once.
#[test]
fn a_server_that_ignores_the_cap_is_flagged() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script {
        finish: "stop",
        ..Script::openai(1, 0, 10)
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &[
            "--length-field",
            "max-completion-tokens",
            "--max-tokens",
            "4",
            "--requests",
            "3",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    assert_eq!(rec["levels"][0]["summary"]["cap_ignored"], 3);
    for r in request_rows(&run) {
        assert_eq!(r.cap_ignored, Some(true), "{r:?}");
        assert_eq!(r.max_tokens_sent, Some(4));
        assert_eq!(r.output_tokens, 10);
        assert_eq!(r.stop_reason, Some(StopReason::Eos), "the server said stop");
    }
    // --json: the warning is part of the console summary only.
    let mut console_run = tmp.path().join("console");
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &srv.base_url(),
        "--model",
        "m",
        "--length-field",
        "max-completion-tokens",
        "--max-tokens",
        "4",
        "--requests",
        "3",
        "--warmup",
        "0",
        "--no-progress",
        "--out",
        console_run.to_str().unwrap(),
    ]);
    console_run.push("run.json");
    assert!(console_run.is_file());
    let out = stdout(&o);
    assert_eq!(
        out.matches("produced more output tokens than the cap")
            .count(),
        1,
        "{out}"
    );
    assert!(
        out.contains("max_completion_tokens") && out.contains("--length-field max-tokens"),
        "{out}"
    );
}

/// A server that answers everything with HTTP 500: exit code 3, the first error message on
/// stderr, and the results on disk as usual.
#[test]
fn a_server_that_fails_everything_exits_3() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script::openai(1, 1, 4).with(Fault::Status(500, None)));
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &srv.base_url(),
        "--model",
        "m",
        "--endpoint",
        "completions",
        "--requests",
        "8",
        "--warmup",
        "1",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("all 8 measured requests failed"), "{err}");
    assert!(err.contains("http_status (×9): HTTP 500"), "{err}");
    let rec = validated_record(&run);
    assert_eq!(rec["complete"], true);
    assert_eq!(rec["levels"][0]["summary"]["errors"]["http_status"], 8);
    assert_eq!(request_rows(&run).len(), 9);
    // The body carried text, not ids of charter's own word list.
    let bodies = srv.bodies.lock().unwrap();
    assert!(
        bodies.iter().all(|b| b["prompt"].is_string()),
        "{:?}",
        bodies[0]
    );
}

/// A partly failing level gets a warning line; the run exits 0.
#[test]
fn a_level_with_many_failures_warns() {
    let _serial = serial();
    let srv = TestServer::start(|n| {
        let s = Script::openai(1, 1, 4);
        if n % 4 == 0 {
            s.with(Fault::Status(503, None))
        } else {
            s
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(&srv.base_url(), &run, &["--requests", "8", "--warmup", "0"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("2 of 8 requests failed (25 %)"), "{err}");
}

/// A server that never sends usage although it was asked: one line says so and names the
/// sources the counts came from; remote runs show no RAM-per-token figure for charter itself.
#[test]
fn a_server_without_usage_is_named() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script {
        usage: false,
        ..Script::openai(1, 1, 5)
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &srv.base_url(),
        "--model",
        "m",
        "--requests",
        "3",
        "--warmup",
        "0",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.matches("usage requested but never sent by the server; counts from chunks (output), estimate (prompt)")
            .count(),
        1,
        "{out}"
    );
    assert!(out.contains("prompt lengths are estimates"), "{out}");
    assert!(
        out.contains("RAM per 1k tokens of context: not measured (a remote backend's model memory is the server's"),
        "{out}"
    );
    let rec = validated_record(&run);
    assert!(rec["levels"][0]["resources"]["ram_per_1k_tokens"].is_null());
    for r in request_rows(&run) {
        assert_eq!(r.prompt_token_source, PromptTokenSource::Estimate);
        assert_eq!(r.prompt_tokens_usage, None);
    }
}

/// `--prompt-ids` with a tokenizer sends the synthetic ids as a list (completions endpoint);
/// without it, completions get text.
#[test]
fn prompt_ids_are_sent_only_when_asked() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script::openai(0, 0, 2));
    let tmp = tempfile::tempdir().unwrap();
    let tok = tiny_decoder().with_file_name("tokenizer.json");
    for (ids, want_array) in [(true, true), (false, false)] {
        let run = tmp.path().join(format!("run-{ids}"));
        let mut args = vec![
            "--endpoint",
            "completions",
            "--tokenizer",
            tok.to_str().unwrap(),
            "--prompt-tokens",
            "12",
            "--requests",
            "1",
            "--warmup",
            "0",
        ];
        if ids {
            args.push("--prompt-ids");
        }
        let o = profile_openai(&srv.base_url(), &run, &args);
        assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
        let body = srv.bodies.lock().unwrap().last().cloned().unwrap();
        assert_eq!(body["prompt"].is_array(), want_array, "{body}");
        if want_array {
            assert_eq!(body["prompt"].as_array().unwrap().len(), 12);
        }
        let r = &request_rows(&run)[0];
        let source = if ids {
            PromptTokenSource::Ids
        } else {
            PromptTokenSource::Tokenizer
        };
        assert_eq!(r.prompt_tokens_intended_source, Some(source));
        assert_eq!(r.prompt_tokens_intended, Some(12));
    }
}

/// `--model-config` puts the served model's KV bytes per token in the record (a config.json in
/// its torch_dtype, a GGUF in llama.cpp's f16); a missing or malformed one is bad input.
#[test]
fn model_config_gives_a_remote_run_its_kv_cache() {
    let _serial = serial();
    let srv = TestServer::start(|_| Script::openai(0, 1, 4));
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "hidden_size": 576, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &[
            "--requests",
            "2",
            "--warmup",
            "0",
            "--model-config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    let kv = &rec["backend"]["kv_cache"];
    assert_eq!(kv["bytes_per_token"], 30 * 2 * 3 * 64 * 2, "{kv}");
    assert_eq!(kv["dtype"], "bf16", "{kv}");
    let gguf = smollm2_gguf();
    let run = tmp.path().join("run-gguf");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &[
            "--requests",
            "1",
            "--warmup",
            "0",
            "--model-config",
            gguf.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let kv = &validated_record(&run)["backend"]["kv_cache"];
    // SmolLM2-135M in llama.cpp's f16 cache: 30 layers × 2 × 3 heads × 64 × 2 B.
    assert_eq!(kv["bytes_per_token"], 23_040, "{kv}");
    std::fs::write(&config, r#"{"hidden_size": 576}"#).unwrap();
    let bad = tmp.path().join("bad");
    let o = profile_openai(
        &srv.base_url(),
        &bad,
        &["--model-config", config.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).contains("config.json") && stderr(&o).contains("num_hidden_layers"),
        "{}",
        stderr(&o)
    );
    assert!(!bad.exists());
}
