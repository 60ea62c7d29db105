//! `charter serve`: expose an in-process backend as an OpenAI-compatible streaming endpoint
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) over HTTP/1.1 or HTTP/2 without TLS
//! (h2c, prior knowledge), so the same model can be measured in-process and over HTTP side by
//! side, and the remote backends can be tested against a real server.
//!
//! The backend is built exactly as `charter profile` builds it. Each request takes a stream
//! (KV cache) from a pool, or opens a new one, and generates on a blocking thread; every token
//! event becomes one SSE chunk as soon as it exists, carrying the newly decoded text when the
//! model has a tokenizer (else a placeholder word per token, `" tok"`; a token that completes
//! no character yet gives an empty chunk); `usage` carries the backend's exact counts (sent when `stream_options.include_usage` is set, and always in
//! non-streaming responses). Backends without a tokenizer (random-weight presets) map each
//! whitespace-separated word of a text prompt to one vocabulary id, so prompt lengths carry
//! over. Sampling follows `temperature`, `top_p` and `seed`; `ignore_eos` (the vLLM extension)
//! is honoured. `GET /metrics` exposes the server's own metrics in the Prometheus text format
//! ([`crate::serve_metrics`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use charter_backends::{
    Backend, ChatMessage, ErrorKind, GenOutcome, GenRequest, Prompt, RequestError, Sampling,
    Stream, TokenEvent,
};
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::profile::backend::BackendArgs;
use crate::profile::scenario::Origins;
use crate::serve_metrics::ServeMetrics;
use crate::{CliError, EXIT_OK};

/// Arguments of `charter serve`: the backend's settings exactly as `charter profile` takes
/// them, plus the server's own.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Model name in /v1/models and responses [default: derived from the backend].
    #[arg(long, value_name = "NAME")]
    pub served_model_name: Option<String>,
    /// Worker threads of the HTTP server (generation runs on separate blocking threads)
    /// [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub http_threads: Option<u32>,
    /// Requests generated at once; later ones wait (charter:requests_waiting) for a slot, as
    /// in a server's batch limit (vLLM's --max-num-seqs) [default: 512].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running: Option<u32>,
    /// The in-process backend to serve; --threads defaults to every logical core here.
    #[command(flatten)]
    pub backend: BackendArgs,
}

struct AppState {
    backend: Box<dyn Backend>,
    pool: Mutex<Vec<Box<dyn Stream>>>,
    model: String,
    vocab: Vec<u32>,
    metrics: ServeMetrics,
    registry: Arc<prometheus_client::registry::Registry>,
}

/// Run `charter serve` until the process is stopped; `origins` says which settings were given.
pub fn serve(args: &ServeArgs, origins: &Origins) -> Result<i32, CliError> {
    if args.backend.kind().is_remote() {
        return Err(origins.bad(
            "kind",
            "charter serve exposes in-process backends (candle, onnx, simulated), not remote APIs",
        ));
    }
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        CliError::BadInput(format!(
            "--listen {:?}: expected IP:PORT, e.g. 127.0.0.1:8000",
            args.listen
        ))
    })?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let spec = args.backend.resolve(origins, cores, 1)?;
    let backend = spec.load()?;
    let model = args
        .served_model_name
        .clone()
        .unwrap_or_else(|| match &spec {
            charter_backends::BackendSpec::Simulated(_) => "simulated".into(),
            _ => backend.record().model.clone(),
        });
    let vocab = backend.prompt_token_ids().to_vec();
    let (metrics, registry) = ServeMetrics::new();
    let state = Arc::new(AppState {
        backend,
        pool: Mutex::new(Vec::new()),
        model,
        vocab,
        metrics,
        registry: Arc::new(registry),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.http_threads.unwrap_or(1) as usize)
        // Generation runs on blocking threads: their limit is the number of running requests.
        .max_blocking_threads(args.max_running.unwrap_or(512) as usize)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failure(anyhow::anyhow!("starting the server runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            CliError::BadInput(format!("--listen {addr}: cannot listen there: {e}"))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| CliError::Failure(e.into()))?;
        eprintln!(
            "charter serve: listening on http://{local} (model `{}`, {})",
            state.model,
            state.backend.record().kind
        );
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold small chunks for ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router(state))
            .await
            .map_err(|e| CliError::Failure(anyhow::anyhow!("server: {e}")))
    })?;
    Ok(EXIT_OK)
}

fn router(state: Arc<AppState>) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(crate::exposition::handler))
        .with_state(Arc::clone(&state.registry));
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
        .merge(metrics)
}

async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": st.model, "object": "model", "created": 0, "owned_by": "charter"}]
    }))
}

fn bad_request(msg: impl Into<String>) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request_error", msg.into())
}

fn error_response(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "code": status.as_u16()}})),
    )
        .into_response()
}

/// Map text to ids for backends without a tokenizer: one vocabulary id per word.
fn words_to_ids(text: &str, vocab: &[u32]) -> Vec<u32> {
    text.split_whitespace()
        .map(|w| {
            // FNV-1a: stable across runs and platforms.
            let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            vocab[(h % vocab.len().max(1) as u64) as usize]
        })
        .collect()
}

/// The fields both endpoints share.
struct Common {
    max_tokens: u32,
    stream: bool,
    include_usage: bool,
    sampling: Sampling,
    ignore_eos: bool,
}

fn common(body: &Value) -> Result<Common, String> {
    let num = |k: &str| body.get(k).filter(|v| !v.is_null());
    let max_tokens = match num("max_completion_tokens").or(num("max_tokens")) {
        None => 256,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => n as u32,
            _ => return Err("max_tokens: expected an integer ≥ 1".into()),
        },
    };
    let f = |k: &str| num(k).and_then(|v| v.as_f64());
    Ok(Common {
        max_tokens,
        stream: body
            .get("stream")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        sampling: Sampling {
            temperature: f("temperature").unwrap_or(0.0).max(0.0),
            top_p: f("top_p").filter(|p| *p > 0.0 && *p < 1.0),
            seed: num("seed").and_then(|v| v.as_u64()).unwrap_or(0),
        },
        ignore_eos: body
            .get("ignore_eos")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
}

async fn chat(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("request body is not JSON: {e}")),
    };
    let messages: Vec<ChatMessage> = match body
        .get("messages")
        .cloned()
        .map(serde_json::from_value::<Vec<ChatMessage>>)
    {
        Some(Ok(m)) if !m.is_empty() => m,
        _ => {
            return bad_request(
                "messages: expected a non-empty array of {\"role\": ..., \"content\": \"...\"}",
            )
        }
    };
    let c = match common(&body) {
        Ok(c) => c,
        Err(m) => return bad_request(m),
    };
    let prompt = if st.backend.accepts_text() {
        Prompt::Chat(messages)
    } else {
        let text = charter_backends::chat::plain_join(&messages);
        Prompt::Tokens(words_to_ids(&text, &st.vocab))
    };
    run(st, prompt, c, Kind::Chat).await
}

async fn completions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("request body is not JSON: {e}")),
    };
    let prompt = match body.get("prompt") {
        Some(Value::String(s)) => {
            if st.backend.accepts_text() {
                Prompt::Text(s.clone())
            } else {
                Prompt::Tokens(words_to_ids(s, &st.vocab))
            }
        }
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(|v| v.is_u64()) => {
            Prompt::Tokens(a.iter().map(|v| v.as_u64().unwrap_or(0) as u32).collect())
        }
        _ => return bad_request("prompt: expected a string or an array of token ids"),
    };
    let c = match common(&body) {
        Ok(c) => c,
        Err(m) => return bad_request(m),
    };
    run(st, prompt, c, Kind::Completions).await
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Completions,
}

enum Msg {
    /// The text of one token event.
    Text(String),
    Done(Result<GenOutcome, RequestError>),
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

async fn run(st: Arc<AppState>, prompt: Prompt, c: Common, kind: Kind) -> Response {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let request = GenRequest {
        prompt,
        max_tokens: c.max_tokens,
        ignore_eos: c.ignore_eos,
        sampling: c.sampling,
    };
    let gen_state = Arc::clone(&st);
    let mut tracked = st.metrics.arrived();
    tokio::task::spawn_blocking(move || {
        let st = gen_state;
        tracked.start();
        let taken = st.pool.lock().ok().and_then(|mut p| p.pop());
        let mut stream = match taken.map(Ok).unwrap_or_else(|| st.backend.new_stream()) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Msg::Done(Err(RequestError {
                    kind: ErrorKind::Compute,
                    message: e.to_string(),
                    prompt_tokens: 0,
                    output_tokens: 0,
                    wire: None,
                })));
                return;
            }
        };
        let mut text = TextStream::default();
        let r = stream.generate(&request, &mut |ev| {
            tracked.tokens(ev.tokens);
            let piece = text.piece(st.backend.as_ref(), &ev);
            if tx.send(Msg::Text(piece)).is_err() {
                ControlFlow::Break(()) // the client went away
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Ok(mut p) = st.pool.lock() {
            p.push(stream);
        }
        tracked.end(&r);
        let _ = tx.send(Msg::Done(r));
    });
    // Wait for the first message, so that a request the backend refuses gets a status code.
    let first = match rx.recv().await {
        Some(Msg::Done(Err(e))) => {
            let status = if e.kind == ErrorKind::InvalidRequest {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return error_response(status, e.kind.as_str(), e.message);
        }
        Some(m) => m,
        None => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "generation ended without a result".into(),
            )
        }
    };
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let created = unix_now();
    let (object, id) = match kind {
        Kind::Chat => ("chat.completion", format!("chatcmpl-{id}")),
        Kind::Completions => ("text_completion", format!("cmpl-{id}")),
    };
    if !c.stream {
        let mut text = String::new();
        let mut m = Some(first);
        let outcome = loop {
            match m {
                Some(Msg::Text(piece)) => text.push_str(&piece),
                Some(Msg::Done(r)) => break r,
                None => {
                    break Err(RequestError {
                        kind: ErrorKind::Compute,
                        message: "generation ended without a result".into(),
                        prompt_tokens: 0,
                        output_tokens: 0,
                        wire: None,
                    })
                }
            }
            m = rx.recv().await;
        };
        let o = match outcome {
            Ok(o) => o,
            Err(e) => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.kind.as_str(),
                    e.message,
                )
            }
        };
        let choice = match kind {
            Kind::Chat => {
                json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish(&o)})
            }
            Kind::Completions => json!({"index": 0, "text": text, "finish_reason": finish(&o)}),
        };
        return Json(json!({
            "id": id, "object": object, "created": created, "model": st.model,
            "choices": [choice], "usage": usage(&o),
        }))
        .into_response();
    }
    let chunk_object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Completions => "text_completion",
    };
    let head = format!(
        "data: {{\"id\":\"{id}\",\"object\":\"{chunk_object}\",\"created\":{created},\"model\":{},\"choices\":",
        Value::String(st.model.clone())
    );
    let content = {
        let head = head.clone();
        move |piece: &str| -> Bytes {
            let text = Value::String(piece.to_string());
            Bytes::from(match kind {
            Kind::Chat => format!(
                "{head}[{{\"index\":0,\"delta\":{{\"content\":{text}}},\"finish_reason\":null}}]}}\n\n"
            ),
            Kind::Completions => format!(
                "{head}[{{\"index\":0,\"text\":{text},\"finish_reason\":null}}]}}\n\n"
            ),
        })
        }
    };
    let role = (kind == Kind::Chat).then(|| {
        Bytes::from(format!(
            "{head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
        ))
    });
    let include_usage = c.include_usage;
    let end = move |o: &Result<GenOutcome, RequestError>| -> Bytes {
        let mut s = String::new();
        match o {
            Ok(o) => {
                let f = Value::String(finish(o).into());
                match kind {
                    Kind::Chat => s.push_str(&format!(
                        "{head}[{{\"index\":0,\"delta\":{{}},\"finish_reason\":{f}}}]}}\n\n"
                    )),
                    Kind::Completions => s.push_str(&format!(
                        "{head}[{{\"index\":0,\"text\":\"\",\"finish_reason\":{f}}}]}}\n\n"
                    )),
                }
                if include_usage {
                    s.push_str(&format!("{head}[],\"usage\":{}}}\n\n", usage(o)));
                }
            }
            Err(e) => {
                let err = json!({"error": {"message": e.message, "type": e.kind.as_str()}});
                s.push_str(&format!("data: {err}\n\n"));
            }
        }
        s.push_str("data: [DONE]\n\n");
        Bytes::from(s)
    };
    enum St {
        Start(Option<Msg>),
        Run,
        Over,
    }
    let body = futures_util::stream::unfold(
        (St::Start(Some(first)), rx, role),
        move |(state, mut rx, mut role)| {
            let (content, end) = (content.clone(), end.clone());
            async move {
                let msg = match state {
                    St::Over => return None,
                    St::Start(m) => {
                        if let Some(r) = role.take() {
                            return Some((Ok::<_, Infallible>(r), (St::Start(m), rx, None)));
                        }
                        m
                    }
                    St::Run => rx.recv().await,
                };
                match msg {
                    Some(Msg::Text(piece)) => Some((Ok(content(&piece)), (St::Run, rx, None))),
                    Some(Msg::Done(r)) => Some((Ok(end(&r)), (St::Over, rx, None))),
                    None => None,
                }
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Turns token events into text: with a token id and a tokenizer, the newly decoded suffix of
/// everything generated so far (so multi-token characters and word-initial spaces come out
/// right); without them (random-weight presets, the simulated backend), a placeholder word per
/// token.
#[derive(Default)]
struct TextStream {
    ids: Vec<u32>,
    shown: usize,
}

impl TextStream {
    fn piece(&mut self, backend: &dyn Backend, ev: &TokenEvent) -> String {
        let placeholder = || " tok".repeat(ev.tokens as usize);
        let Some(id) = ev.id else {
            return placeholder();
        };
        self.ids.push(id);
        let Some(text) = backend.decode(&self.ids) else {
            return placeholder();
        };
        // Hold back a character still incomplete in UTF-8 (decoded as U+FFFD).
        if text.ends_with('\u{FFFD}') {
            return String::new();
        }
        match text.get(self.shown..) {
            Some(new) => {
                let new = new.to_string();
                self.shown = text.len();
                new
            }
            None => String::new(),
        }
    }
}

fn finish(o: &GenOutcome) -> &'static str {
    match o.stop_reason {
        charter_backends::StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

fn usage(o: &GenOutcome) -> Value {
    json!({
        "prompt_tokens": o.prompt_tokens,
        "completion_tokens": o.output_tokens,
        "total_tokens": o.prompt_tokens + o.output_tokens,
    })
}
