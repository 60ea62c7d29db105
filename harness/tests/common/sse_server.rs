//! A scripted streaming server for the remote-backend tests (axum, ephemeral port): each
//! request gets a [`Script`] (by its arrival number) with known delays and an optional fault.
//! Chunks are sent by one scheduler thread that sleeps to deadlines measured from each request's
//! arrival (thread sleeps are far more precise than tokio's millisecond timer).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

// A test that includes two of the servers compiles this small module twice.
#[allow(clippy::duplicate_mod)]
#[path = "listen.rs"]
mod listen;

/// A header on every streamed response naming the server as `scripted-<prompt_tokens>`.
#[allow(dead_code)] // only the hybrid tests read it
pub const UPSTREAM_HEADER: &str = "x-charter-test-upstream";

/// What goes wrong with a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    None,
    /// Answer with this status (and `Retry-After`, if given) instead of a stream; the body
    /// echoes the request's credentials, as a careless server might.
    Status(u16, Option<&'static str>),
    /// Abort the connection after this many content chunks.
    ResetAfter(u32),
    /// Send a chunk that is not JSON after this many content chunks.
    MalformedAfter(u32),
    /// Stop sending (keeping the connection open) after this many content chunks.
    IdleAfter(u32),
    /// End the body without `[DONE]`.
    NoDone,
    /// One content chunk of this many bytes, then the normal end.
    Huge(usize),
    /// Hold the response headers this long.
    SlowHeaders(Duration),
    /// Echo the request's credential (`Authorization` or `x-api-key`) after this many padding
    /// bytes, where the client quotes it in an error message.
    Echo(EchoAt, usize),
}

/// Where a server echoes credentials back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EchoAt {
    /// A proxy's 502 error page: the padding and the credential, then every request header.
    ProxyPage,
    /// A stream chunk that is not JSON: the padding and the credential.
    Malformed,
    /// A stream error event whose error object holds only `code`: the padding and the credential.
    ErrorEvent,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire {
    OpenAiChat,
    Anthropic,
}

/// One response.
#[derive(Debug, Clone)]
pub struct Script {
    pub wire: Wire,
    /// Arrival → first content chunk.
    pub ttft: Duration,
    /// Between content chunks.
    pub itl: Duration,
    pub tokens: u32,
    /// Reasoning/thinking chunks, one every `itl` from arrival, before the content. Usage
    /// counts them as the real APIs do: OpenAI's `completion_tokens` includes them and
    /// `completion_tokens_details.reasoning_tokens` says how many; Anthropic's `output_tokens`
    /// includes them without saying how many.
    pub reasoning: u32,
    /// Send usage (OpenAI: only when the request asked for it).
    pub usage: bool,
    /// Prompt tokens the usage reports (tests use it to tell scripts apart in the rows).
    pub prompt_tokens: u64,
    /// Of those, tokens the OpenAI usage reports read from the prompt cache
    /// (`prompt_tokens_details.cached_tokens`; not sent when 0).
    pub cached_tokens: u64,
    pub fault: Fault,
    /// The content chunks' text (one token each): `None` sends `"w0 "`, `"w1 "`, ...
    pub pieces: Option<Arc<Vec<String>>>,
    /// The last chunk's `finish_reason` (OpenAI wire).
    pub finish: &'static str,
}

impl Script {
    pub fn openai(ttft_ms: u64, itl_ms: u64, tokens: u32) -> Self {
        Self {
            wire: Wire::OpenAiChat,
            ttft: Duration::from_millis(ttft_ms),
            itl: Duration::from_millis(itl_ms),
            tokens,
            reasoning: 0,
            usage: true,
            prompt_tokens: 11,
            cached_tokens: 0,
            fault: Fault::None,
            pieces: None,
            finish: "length",
        }
    }
    /// Stream these pieces as the content chunks, one token each.
    pub fn with_pieces(mut self, pieces: Vec<String>) -> Self {
        self.tokens = pieces.len() as u32;
        self.pieces = Some(Arc::new(pieces));
        self
    }
    pub fn with(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }
}

type ScriptFn = dyn Fn(u64) -> Script + Send + Sync;

pub struct TestServer {
    pub addr: SocketAddr,
    scheme: &'static str,
    pub requests: Arc<AtomicU64>,
    /// Authorization / x-api-key headers seen.
    pub credentials: Arc<Mutex<Vec<String>>>,
    /// Request bodies seen.
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl TestServer {
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Start on an ephemeral port; `script(n)` describes the n-th request (from 0).
    pub fn start(script: impl Fn(u64) -> Script + Send + Sync + 'static) -> Self {
        Self::start_with(script, None)
    }

    /// The same over TLS with the certificate in `tests/fixtures/tls/` (self-signed, for
    /// `localhost` and 127.0.0.1); `base_url` is then `https://`.
    pub fn start_tls(script: impl Fn(u64) -> Script + Send + Sync + 'static) -> Self {
        Self::start_with(script, Some(tls::server_config()))
    }

    fn start_with(
        script: impl Fn(u64) -> Script + Send + Sync + 'static,
        tls: Option<Arc<tls::ServerConfig>>,
    ) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let script: Arc<ScriptFn> = Arc::new(script);
        let requests = Arc::new(AtomicU64::new(0));
        let credentials = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (r2, c2, b2) = (
            Arc::clone(&requests),
            Arc::clone(&credentials),
            Arc::clone(&bodies),
        );
        let addr = listen::spawn_server(2, move |listener| async move {
            let app =
                count_routes(Arc::clone(&c2)).fallback(move |headers: HeaderMap, body: Bytes| {
                    let (script, requests, credentials, bodies) = (
                        Arc::clone(&script),
                        Arc::clone(&r2),
                        Arc::clone(&c2),
                        Arc::clone(&b2),
                    );
                    async move {
                        if let Ok(v) = serde_json::from_slice(&body) {
                            bodies.lock().unwrap().push(v);
                        }
                        let (response, hold) =
                            respond(&*script, &requests, &credentials, headers, body);
                        if !hold.is_zero() {
                            tokio::time::sleep(hold).await;
                        }
                        response
                    }
                });
            match tls {
                None => {
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app).await.unwrap();
                }
                Some(config) => {
                    axum::serve(tls::Listener::new(listener, config), app)
                        .await
                        .unwrap();
                }
            }
        });
        Self {
            addr,
            scheme,
            requests,
            credentials,
            bodies,
        }
    }
}

#[allow(unused_imports)] // not every test file that includes this server uses TLS
pub use tls::cert_path as tls_cert_path;

/// A port nothing listens on.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn respond(
    script: &ScriptFn,
    requests: &AtomicU64,
    credentials: &Mutex<Vec<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> (Response, Duration) {
    let arrival = Instant::now();
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let cred = headers
        .get("authorization")
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    credentials.lock().unwrap().push(cred.clone());
    // Echo custom headers too, as a careless server might.
    let cred = match headers.get("x-team-token").and_then(|v| v.to_str().ok()) {
        Some(t) => format!("{cred}; team token {t}"),
        None => cred,
    };
    let s = script(n);
    if let Fault::Echo(EchoAt::ProxyPage, pad) = s.fault {
        let mut page = format!("{}{cred}\n", "p".repeat(pad));
        for (name, value) in &headers {
            page.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
        }
        let body = format!("<html><body><h1>502 Bad Gateway</h1><pre>{page}</pre></body></html>");
        return (
            (StatusCode::BAD_GATEWAY, body).into_response(),
            Duration::ZERO,
        );
    }
    if let Fault::Status(code, retry) = &s.fault {
        let mut r = (
            StatusCode::from_u16(*code).unwrap(),
            format!("{{\"error\":{{\"message\":\"refused request with credentials {cred}\"}}}}"),
        )
            .into_response();
        if let Some(ra) = retry {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return (r, Duration::ZERO);
    }
    let hold = match s.fault {
        Fault::SlowHeaders(d) => d,
        _ => Duration::ZERO,
    };
    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Bytes, std::io::Error>>();
    produce(&s, arrival, include_usage, &cred, tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        // Which server answered, as a gateway's upstream header would say (`--tier-header`).
        .header(UPSTREAM_HEADER, format!("scripted-{}", s.prompt_tokens))
        .body(Body::from_stream(stream))
        .unwrap();
    (response, hold)
}

/// One step of a scripted response.
enum Step {
    Data(Bytes),
    /// Abort the connection.
    Reset,
    /// Keep the connection open and send nothing more.
    Park,
}

type Tx = tokio::sync::mpsc::UnboundedSender<Result<Bytes, std::io::Error>>;
/// A response in progress: its remaining steps and where they go.
type Live = Option<(std::vec::IntoIter<(Instant, Step)>, Tx)>;

/// One thread sends every response's steps at their deadlines (a thread per response would
/// cost the server milliseconds of CPU in a 64-request burst).
struct Scheduler {
    tx: std::sync::mpsc::Sender<(Vec<(Instant, Step)>, Tx)>,
}

impl Scheduler {
    fn get() -> &'static Scheduler {
        static S: std::sync::OnceLock<Scheduler> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<(Vec<(Instant, Step)>, Tx)>();
            std::thread::spawn(move || {
                // (deadline, response, step) min-heap; responses' steps are in deadline order.
                let mut heap = std::collections::BinaryHeap::new();
                let mut live: Vec<Live> = Vec::new();
                let mut parked: Vec<Tx> = Vec::new();
                loop {
                    let next = heap
                        .peek()
                        .map(|std::cmp::Reverse((t, _)): &std::cmp::Reverse<(Instant, usize)>| *t);
                    let wait = next.map(|t| t.saturating_duration_since(Instant::now()));
                    let got = match wait {
                        Some(w) if w.is_zero() => rx.try_recv().ok(),
                        Some(w) => rx.recv_timeout(w).ok(),
                        None => match rx.recv() {
                            Ok(x) => Some(x),
                            Err(_) => return,
                        },
                    };
                    if let Some((steps, tx)) = got {
                        let mut it = steps.into_iter();
                        if let Some(first) = it.next() {
                            let i = live.len();
                            heap.push(std::cmp::Reverse((first.0, i)));
                            let mut rest = vec![first];
                            rest.extend(it);
                            live.push(Some((rest.into_iter(), tx)));
                        }
                        continue;
                    }
                    while let Some(std::cmp::Reverse((t, i))) = heap.peek().copied() {
                        if t > Instant::now() {
                            break;
                        }
                        heap.pop();
                        let Some((steps, tx)) = live[i].as_mut() else {
                            continue;
                        };
                        let Some((_, step)) = steps.next() else {
                            continue;
                        };
                        let keep = match step {
                            Step::Data(b) => tx.send(Ok(b)).is_ok(),
                            Step::Reset => {
                                let _ =
                                    tx.send(Err(std::io::Error::other("reset by the test server")));
                                false
                            }
                            Step::Park => {
                                if let Some((_, tx)) = live[i].take() {
                                    parked.push(tx);
                                }
                                false
                            }
                        };
                        match live[i]
                            .as_mut()
                            .and_then(|(steps, _)| steps.as_slice().first().map(|s| s.0))
                        {
                            Some(t) if keep => heap.push(std::cmp::Reverse((t, i))),
                            _ => live[i] = None,
                        }
                    }
                }
            });
            Scheduler { tx }
        })
    }
}

fn produce(s: &Script, arrival: Instant, include_usage: bool, cred: &str, tx: Tx) {
    let steps = plan(s, arrival, include_usage, cred);
    Scheduler::get().tx.send((steps, tx)).unwrap();
}

fn plan(s: &Script, arrival: Instant, include_usage: bool, cred: &str) -> Vec<(Instant, Step)> {
    let mut out = Vec::new();
    let mut send = |at: Instant, text: String| out.push((at, Step::Data(Bytes::from(text))));
    let oa = |delta: &str, finish: &str| {
        format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
    };
    let an = |event: &str, data: String| format!("event: {event}\ndata: {data}\n\n");
    // Start: a role-only chunk (OpenAI, llama.cpp) or message_start, at once.
    match s.wire {
        Wire::OpenAiChat => send(
            arrival,
            oa("{\"role\":\"assistant\",\"content\":\"\"}", "null"),
        ),
        Wire::Anthropic => {
            send(arrival, an(
                "message_start",
                "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}".into(),
            ));
            send(arrival, an("ping", "{\"type\": \"ping\"}".into()));
        }
    }
    for i in 0..s.reasoning {
        let chunk = match s.wire {
            Wire::OpenAiChat => oa("{\"reasoning_content\":\"think \"}", "null"),
            Wire::Anthropic => an(
                "content_block_delta",
                "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"think \"}}".into(),
            ),
        };
        send(arrival + s.itl * i, chunk);
    }
    if let Fault::Echo(at, pad) = s.fault {
        let echoed = format!("{}{cred}", "p".repeat(pad));
        let data = match (at, s.wire) {
            (EchoAt::ErrorEvent, Wire::OpenAiChat) => {
                format!("data: {{\"error\":{{\"code\":\"{echoed}\"}}}}\n\n")
            }
            (EchoAt::ErrorEvent, Wire::Anthropic) => format!(
                "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"code\":\"{echoed}\"}}}}\n\n"
            ),
            _ => format!("data: {echoed}\n\n"),
        };
        send(arrival + s.ttft, data);
        return out;
    }
    for i in 0..s.tokens {
        let at = arrival + s.ttft + s.itl * i;
        match s.fault {
            Fault::ResetAfter(k) if i == k => {
                out.push((at, Step::Reset));
                return out;
            }
            Fault::MalformedAfter(k) if i == k => {
                send(
                    at,
                    "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}\n\n".into(),
                );
                send(at, oa("{}", "\"stop\"") + "data: [DONE]\n\n");
                return out;
            }
            Fault::IdleAfter(k) if i == k => {
                out.push((at, Step::Park));
                return out;
            }
            _ => {}
        }
        let text = match (&s.fault, &s.pieces) {
            (Fault::Huge(n), _) if i == 0 => "x".repeat(*n),
            (_, Some(p)) => serde_json::to_string(&p[i as usize])
                .unwrap()
                .trim_matches('"')
                .to_string(),
            _ => format!("w{i} "),
        };
        let chunk = match s.wire {
            Wire::OpenAiChat => oa(&format!("{{\"content\":\"{text}\"}}"), "null"),
            Wire::Anthropic => an(
                "content_block_delta",
                format!("{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}"),
            ),
        };
        send(at, chunk);
    }
    let at = arrival + s.ttft + s.itl * s.tokens.saturating_sub(1);
    let mut end = String::new();
    match s.wire {
        Wire::OpenAiChat => {
            end.push_str(&oa("{}", &format!("\"{}\"", s.finish)));
            if s.usage && include_usage {
                let output = s.tokens + s.reasoning;
                let mut details = if s.reasoning > 0 {
                    format!(
                        ",\"completion_tokens_details\":{{\"reasoning_tokens\":{}}}",
                        s.reasoning
                    )
                } else {
                    String::new()
                };
                if s.cached_tokens > 0 {
                    details.push_str(&format!(
                        ",\"prompt_tokens_details\":{{\"cached_tokens\":{}}}",
                        s.cached_tokens
                    ));
                }
                end.push_str(&format!(
                    "data: {{\"id\":\"c1\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{output},\"total_tokens\":{}{details}}}}}\n\n",
                    s.prompt_tokens,
                    u64::from(output) + s.prompt_tokens
                ));
            }
            if s.fault != Fault::NoDone {
                end.push_str("data: [DONE]\n\n");
            }
        }
        Wire::Anthropic => {
            end.push_str(&an(
                "content_block_stop",
                "{\"type\":\"content_block_stop\",\"index\":0}".into(),
            ));
            end.push_str(&an(
                "message_delta",
                format!("{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}", s.tokens + s.reasoning),
            ));
            if s.fault != Fault::NoDone {
                end.push_str(&an("message_stop", "{\"type\":\"message_stop\"}".into()));
            }
        }
    }
    send(at, end);
    out
}

/// Token-count endpoints for the `charter tokens` tests, beside the streaming fallback: vLLM's
/// `/tokenize` (`{"model", "prompt"}` → `{"count", "tokens"}`; `{"model", "messages"}` → the
/// count with 5 template tokens per message) and `/detokenize` (→ `{"prompt"}`), llama.cpp's
/// `/tokenize` (`{"content"}` → `{"tokens"}`) and `/detokenize` (→ `{"content"}`), and
/// Anthropic's `/v1/messages/count_tokens` (→ `{"input_tokens"}`: the words plus 7 of message
/// framing; 401 echoing the key it got when the key is not `sk-test-…`). llama.cpp's
/// `/tokenize` answers the text `rate limited once` with a 429 (`Retry-After: 0`) the first time. The tokenizer is one
/// token per whitespace-separated word, ids interned in arrival order, so detokenizing joins
/// words with single spaces: text with other whitespace does not round-trip.
fn count_routes(credentials: Arc<Mutex<Vec<String>>>) -> axum::Router {
    use axum::routing::post;
    use axum::Json;
    use serde_json::{json, Value};
    static VOCAB: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // llama.cpp's /tokenize answers the text "rate limited once" with a 429 the first time.
    static LIMITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    fn ids(text: &str) -> Vec<u64> {
        let mut v = VOCAB.lock().unwrap();
        text.split_whitespace()
            .map(|w| match v.iter().position(|x| x == w) {
                Some(i) => i as u64,
                None => {
                    v.push(w.to_string());
                    (v.len() - 1) as u64
                }
            })
            .collect()
    }
    fn words_of_messages(body: &Value) -> usize {
        body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| {
                        m["content"]
                            .as_str()
                            .unwrap_or("")
                            .split_whitespace()
                            .count()
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let seen = move |headers: &HeaderMap| {
        let cred = headers
            .get("authorization")
            .or_else(|| headers.get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        credentials.lock().unwrap().push(cred.clone());
        cred
    };
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen);
    axum::Router::new()
        // No Prometheus metrics here (`charter profile`'s default scrape finds none).
        .route(
            "/metrics",
            axum::routing::get(|| async { StatusCode::NOT_FOUND }),
        )
        .route(
            "/tokenize",
            post(
                move |headers: HeaderMap, Json(body): Json<Value>| async move {
                    s1(&headers);
                    if body.get("messages").is_some() {
                        let n = words_of_messages(&body)
                            + 5 * body["messages"].as_array().map_or(0, Vec::len);
                        return Json(json!({"count": n, "max_model_len": 4096, "tokens": []}))
                            .into_response();
                    }
                    match body.get("prompt").and_then(|p| p.as_str()) {
                        Some(p) => {
                            let t = ids(p);
                            Json(json!({"count": t.len(), "max_model_len": 4096, "tokens": t}))
                                .into_response()
                        }
                        None => {
                            let content = body["content"].as_str().unwrap_or("");
                            if content == "rate limited once"
                                && !LIMITED.swap(true, Ordering::SeqCst)
                            {
                                let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({})))
                                    .into_response();
                                r.headers_mut().insert("retry-after", "0".parse().unwrap());
                                return r;
                            }
                            Json(json!({"tokens": ids(content)})).into_response()
                        }
                    }
                },
            ),
        )
        .route(
            "/detokenize",
            post(
                move |headers: HeaderMap, Json(body): Json<Value>| async move {
                    s2(&headers);
                    let v = VOCAB.lock().unwrap();
                    let text: Vec<&str> = body["tokens"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .filter_map(|i| v.get(i.as_u64()? as usize).map(String::as_str))
                                .collect()
                        })
                        .unwrap_or_default();
                    let text = text.join(" ");
                    if body.get("model").is_some() {
                        Json(json!({"prompt": text}))
                    } else {
                        Json(json!({"content": text}))
                    }
                },
            ),
        )
        .route(
            "/v1/messages/count_tokens",
            post(
                move |headers: HeaderMap, Json(body): Json<Value>| async move {
                    let key = s3(&headers);
                    if !key.starts_with("sk-test-") {
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"error": {"message": format!("invalid x-api-key {key}")}})),
                        );
                    }
                    (
                        StatusCode::OK,
                        Json(json!({"input_tokens": words_of_messages(&body) + 7})),
                    )
                },
            ),
        )
}

/// TLS for the test server: tokio-rustls with ring, the committed self-signed certificate.
mod tls {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;

    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    pub use tokio_rustls::rustls::ServerConfig;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    /// The certificate a client must trust to reach the TLS test server.
    pub fn cert_path() -> std::path::PathBuf {
        fixture("cert.pem")
    }

    pub fn server_config() -> Arc<ServerConfig> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path())
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(fixture("key.pem")).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Accepts TCP connections and completes their TLS handshakes; a failed handshake (a
    /// client that does not trust the certificate) is dropped.
    pub struct Listener {
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    }

    impl Listener {
        pub fn new(tcp: tokio::net::TcpListener, config: Arc<ServerConfig>) -> Self {
            Self {
                tcp,
                acceptor: tokio_rustls::TlsAcceptor::from(config),
            }
        }
    }

    impl axum::serve::Listener for Listener {
        type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, addr)) = self.tcp.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }
}
