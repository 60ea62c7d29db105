//! Faults of HTTP itself, over real sockets, through the real binary: a chunked body cut inside
//! a chunk or before its last chunk, a bad chunk size line, a gzip-encoded stream, a body that
//! never ends, a connection reset (RST) before the headers, inside them, inside a chunk and
//! inside an event, a server that reads the request and never answers, a burst of 503s, a host
//! name that does not resolve, and an HTTP/2 GOAWAY under an open stream. Each is a
//! per-request error of a named kind with a message that says what happened; the run goes on
//! (the other requests complete), nothing measured is lost, and memory stays bounded.
//! (Faults a server library can produce — statuses, resets between events, idle and slow
//! servers, malformed and oversized events — are in `remote.rs`.)

mod common;
#[path = "common/raw_server.rs"]
mod raw_server;

use charter_record::ErrorKind;
use common::*;
use raw_server::{Answer, GoawayServer, RawServer, ResetAt};

fn raw(answer: Answer) -> RawServer {
    RawServer::start(move |n| {
        if n % 2 == 0 {
            answer
        } else {
            Answer::Complete(6)
        }
    })
}

/// A chunked body cut inside a chunk, cut before its last (zero-length) chunk, or with a chunk
/// size line that is not hex: `stream_broken`, saying the body broke mid-stream, with the
/// three tokens that arrived before it counted.
#[test]
fn a_truncated_or_bad_chunked_body_is_stream_broken() {
    for answer in [
        Answer::CutInsideChunk(3),
        Answer::CutBeforeLastChunk(3),
        Answer::BadChunkSize(3),
    ] {
        let srv = raw(answer);
        let what = format!("{answer:?}");
        assert_fault_at(
            &srv.base_url(),
            &srv.requests,
            &what,
            "stream_broken",
            &[],
            |r| {
                let m = r.error_message.as_deref().unwrap();
                assert!(
                    m.contains("the response body broke mid-stream"),
                    "{what}: {m}"
                );
                assert_eq!(r.output_tokens, 3, "{what}: tokens before the break");
                assert!(r.ttft_s.is_some(), "{what}");
            },
        );
    }
}

/// charter asks for no compression (`Accept-Encoding: identity`): a stream compressed anyway
/// is `malformed`, saying which encoding arrived, never garbage fed to the SSE decoder.
/// Decoding it instead was rejected: a compressor holds events back until its block fills, so
/// the arrival times charter measures would be the compressor's.
#[test]
fn a_gzip_encoded_stream_is_malformed_and_says_so() {
    let srv = raw(Answer::Gzip(6));
    assert_fault_at(
        &srv.base_url(),
        &srv.requests,
        "gzip",
        "malformed",
        &[],
        |r| {
            let m = r.error_message.as_deref().unwrap();
            assert!(m.contains("Content-Encoding: gzip"), "{m}");
            assert_eq!(r.output_tokens, 0);
        },
    );
    let heads = srv.heads.lock().unwrap();
    assert!(
        heads
            .iter()
            .all(|h| h.contains("accept-encoding: identity\r\n")),
        "{heads:?}"
    );
}

/// A server that ignores the cap and streams without end (up to 1 GiB here): the request ends
/// as `malformed` at `--max-response-bytes`, the client stops reading (the server gets nowhere
/// near the GiB), and charter's memory stays far below what was offered.
#[test]
fn an_endless_response_stops_at_the_response_cap_with_bounded_memory() {
    const OFFERED: u64 = 1 << 30;
    const CAP: u64 = 8 << 20;
    let srv = raw(Answer::Endless(OFFERED));
    let rec = assert_fault_at(
        &srv.base_url(),
        &srv.requests,
        "endless",
        "malformed",
        &["--max-response-bytes", &CAP.to_string()],
        |r| {
            let m = r.error_message.as_deref().unwrap();
            assert!(
                m.contains(&format!("exceeds {CAP} bytes (--max-response-bytes)")),
                "{m}"
            );
            // Every content event up to the cap counted (an event is about 110 bytes).
            assert!(r.output_tokens > CAP / 200, "{r:?}");
        },
    );
    let written = srv.endless_written.lock().unwrap().clone();
    assert_eq!(written.len(), 2);
    for w in written {
        // The cap plus what the socket buffers held when the client closed.
        assert!(
            (CAP..64 << 20).contains(&w),
            "the server wrote {w} bytes of {OFFERED}"
        );
    }
    let level = &rec["levels"][0];
    let peak = level["resources"]["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak < 256 << 20, "charter's peak RSS {peak} B");
    assert_eq!(rec["backend"]["remote"]["max_response_bytes"], CAP);
}

/// A host name that does not resolve: every request a `connect` error whose one-line message
/// names the host and says the lookup failed; exit 3 (every request failed) with the record and
/// the rows written.
#[test]
fn a_host_that_does_not_resolve_is_a_connect_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // `.invalid` never resolves (RFC 2606).
    let o = profile_openai(
        "http://charter-no-such-host.invalid:8000",
        &run,
        &["--requests", "2", "--warmup", "0"],
    );
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("connecting to charter-no-such-host.invalid:8000: ")
            && err.contains("dns error"),
        "{err}"
    );
    let rec = validated_record(&run);
    assert_eq!(rec["complete"], true);
    assert_eq!(rec["levels"][0]["summary"]["errors"]["connect"], 2);
    for r in request_rows(&run) {
        assert_eq!(r.error_kind, Some(ErrorKind::Connect));
        let m = r.error_message.unwrap();
        assert!(!m.contains('\n'), "{m}");
        assert!(
            m.starts_with("connecting to charter-no-such-host.invalid:8000: "),
            "{m}"
        );
    }
}

/// HTTP/2 (h2c): a server that sends GOAWAY with an error (INTERNAL_ERROR, the stream under
/// way counted as processed, as a server shutting down or shedding load does) and closes the
/// connection under the open stream. The request is `stream_broken` with the tokens before it
/// counted; h2 reports the connection's close to the stream ("stream closed because of a broken
/// pipe"), not the GOAWAY, so the message says that. The next request goes out on a new
/// connection and completes.
#[test]
fn an_http2_goaway_mid_stream_is_stream_broken() {
    let srv = GoawayServer::start(6, 3, |n| n % 2 == 0);
    let rec = assert_fault_at(
        &srv.base_url(),
        &srv.requests,
        "GOAWAY",
        "stream_broken",
        &["--http2-prior-knowledge"],
        |r| {
            let m = r.error_message.as_deref().unwrap();
            assert!(
                m.starts_with("the response body broke mid-stream: ")
                    && m.contains("stream closed because of a broken pipe"),
                "{m}"
            );
            assert_eq!(r.output_tokens, 3);
            assert_eq!(r.http_version.as_deref(), Some("HTTP/2.0"));
        },
    );
    assert!(rec["backend"]["remote"]["client"]
        .as_str()
        .unwrap()
        .contains("HTTP/2 prior knowledge"));
}

/// A connection reset (RST, not FIN) at every point of a response: before any byte of it and
/// inside the header block (`stream_broken` with nothing received: the request was sent on a
/// new connection, so it is not sent again), inside a chunk and inside an event
/// (`stream_broken` with the three whole events before it counted, never the half event).
#[test]
fn a_reset_at_any_point_is_a_per_request_error() {
    for at in [
        ResetAt::BeforeHeaders,
        ResetAt::MidHeaders,
        ResetAt::MidChunk(3),
        ResetAt::MidEvent(3),
    ] {
        let srv = raw(Answer::Reset(at));
        let what = format!("{at:?}");
        let in_body = matches!(at, ResetAt::MidChunk(_) | ResetAt::MidEvent(_));
        assert_fault_at(
            &srv.base_url(),
            &srv.requests,
            &what,
            "stream_broken",
            &[],
            |r| {
                let m = r.error_message.as_deref().unwrap();
                assert!(m.contains("Connection reset by peer"), "{what}: {m}");
                assert_eq!(r.stale_connection, None, "{what}: not sent again");
                if in_body {
                    assert!(
                        m.starts_with("the response body broke mid-stream: "),
                        "{what}: {m}"
                    );
                    assert_eq!(r.output_tokens, 3, "{what}");
                    assert!(r.ttft_s.is_some(), "{what}");
                } else {
                    assert!(m.starts_with("error sending request: "), "{what}: {m}");
                    assert_eq!(r.output_tokens, 0, "{what}");
                    assert_eq!(r.ttft_s, None, "{what}");
                    assert_eq!(r.http_status, None, "{what}");
                }
            },
        );
    }
}

/// A server that accepts the connection, reads the request and never answers: a `timeout`
/// at `--headers-timeout`, not a hang, and the run goes on.
#[test]
fn a_server_that_never_answers_times_out_at_the_headers_timeout() {
    let srv = raw(Answer::Silent);
    assert_fault_at(
        &srv.base_url(),
        &srv.requests,
        "silent",
        "timeout",
        &["--headers-timeout", "300ms"],
        |r| {
            let m = r.error_message.as_deref().unwrap();
            assert!(m.contains("response-headers timeout"), "{m}");
            let waited = r.end_s - r.start_s;
            assert!((0.3..5.0).contains(&waited), "gave up after {waited} s");
        },
    );
}

/// A burst of 503s (the first six arrivals, as from a server restarting under two streams):
/// each is its own `http_status` row with the status, never retried, and the requests after
/// the burst complete.
#[test]
fn a_burst_of_5xx_is_recorded_per_request_and_the_run_goes_on() {
    let srv = RawServer::start(|n| {
        if n < 6 {
            Answer::Status(503)
        } else {
            Answer::Complete(6)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = profile_openai(
        &srv.base_url(),
        &run,
        &[
            "--server-metrics",
            "none",
            "--concurrency",
            "2",
            "--requests",
            "10",
            "--warmup",
            "0",
            "--max-tokens",
            "6",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(srv.requests.load(std::sync::atomic::Ordering::SeqCst), 10);
    let rec = validated_record(&run);
    let s = &rec["levels"][0]["summary"];
    assert_eq!(s["errors"]["http_status"], 6, "{s}");
    assert_eq!(s["requests_completed"], 4, "{s}");
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 10);
    for r in rows.iter().filter(|r| r.error_kind.is_some()) {
        assert_eq!(r.http_status, Some(503), "{r:?}");
        let m = r.error_message.as_deref().unwrap();
        assert!(m.contains("503") && !m.contains('\n'), "{m}");
    }
}
