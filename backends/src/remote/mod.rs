//! Remote API backends: OpenAI-compatible (`/v1/chat/completions`, `/v1/completions`) and
//! Anthropic (`/v1/messages`) streaming over HTTP, measured from the same timestamped token
//! events as the in-process backends.
//!
//! Each [`Stream`] (one per concurrency slot, driven on its own OS thread by the runner) owns a
//! tokio current-thread runtime and its own reqwest client: the request's IO runs on the calling
//! thread with no cross-thread wake-ups, and each slot keeps its own kept-alive connection
//! (HTTP/1.1, or HTTP/2 when TLS negotiates it or `http2_prior_knowledge` is set). Retries are
//! off: a failed request is recorded as it failed.
//!
//! Stale connections: servers close kept-alive connections that sit idle (uvicorn after 5 s,
//! gunicorn 2 s, nginx 75 s). A stream's runtime only runs while the stream sends, so the
//! server's close is not seen until the next request: charter closes idle connections itself
//! after `pool_idle_timeout` (4 s by default), lets the runtime process pending socket events
//! before each request (a pooled connection whose close already arrived is then dropped, and the
//! request goes out on a new one: `found_closed`), and when a request written to a pooled
//! connection fails with the connection closed or reset before any byte of a response, it is
//! sent again once on a new connection (`resent`): the server had closed that connection
//! before the request reached it. Both are recorded per request (`stale_connection`) and
//! counted per level; neither is a retry of a request the server answered.
//!
//! Timing: a content event is stamped with the arrival time of the network read that completed
//! it (taken before any parsing), so parsing cost never inflates TTFT or ITL. Reasoning and
//! thinking deltas are counted separately and never count as the first token. New connections
//! are timed inside reqwest's connector (DNS + TCP + TLS) through a tower layer; a request on a
//! kept-alive connection records `connection_reused` and no connect time.
//!
//! SSE is decoded by the `sse-stream` crate (memchr line scanning over the received buffers).
//! `eventsource-stream` was tried first and rejected: it copies the rest of its buffer for every
//! line it consumes, which is quadratic in the events that arrive in one read and in the size of
//! one event (a 10 MB event), far from the per-chunk CPU budget charter has as a load generator.
//! An event larger than `max_event_bytes` fails the request as `malformed`.
//!
//! Secrets: the API key is read from the environment variable the configuration names, sent
//! as a sensitive header, and scrubbed from every error message; records only hold the
//! variable's name.

pub mod model_config;
mod prompts;
mod timing;
pub mod wire;

use std::cell::Cell;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use tokenizers::Tokenizer;

use crate::secrets::Secrets;
use crate::{
    Backend, BackendRecord, ChatMessage, ErrorKind, GenOutcome, GenRequest, LoadError, Prompt,
    PromptTokenSource, RequestError, StaleConnection, StopReason, Stream, TokenCountSource,
    TokenEvent, TokenSink, WeightsProvenance, WireInfo,
};
use prompts::PromptText;
use wire::{Format, Usage};

pub use charter_record::{Api, LengthField};

/// OpenAI endpoint.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Endpoint {
    /// `/v1/chat/completions` (messages).
    #[default]
    Chat,
    /// `/v1/completions` (a prompt string, or token ids).
    Completions,
}

/// The four timeouts of a request.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    /// Opening a connection (DNS, TCP, TLS).
    pub connect: Duration,
    /// From the start to the response headers.
    pub headers: Duration,
    /// Longest gap without any byte of the response body.
    pub idle: Duration,
    /// Whole request; `None`: unbounded.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            headers: Duration::from_secs(300),
            idle: Duration::from_secs(60),
            total: None,
        }
    }
}

/// How to drive a remote API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RemoteOptions {
    pub api: Api,
    pub base_url: String,
    pub model: String,
    pub endpoint: Endpoint,
    /// Environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Extra request headers (`NAME: VALUE`); only their names are recorded.
    pub headers: Vec<(String, String)>,
    pub length_field: LengthField,
    /// Ask OpenAI-style servers for `stream_options.include_usage`.
    pub include_usage: bool,
    /// JSON object merged into every request body last (e.g. vendor sampling parameters).
    pub extra_body: Option<serde_json::Map<String, Value>>,
    pub timeouts: Timeouts,
    /// The server's tokenizer (`tokenizer.json`, or a `.gguf` model's): synthetic prompt text
    /// of exact length, and output counts (compared with usage when the server sends it).
    pub tokenizer: Option<PathBuf>,
    pub max_event_bytes: usize,
    /// Largest response body read (an endless or runaway stream ends as `malformed` there).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Speak HTTP/2 without TLS negotiation (h2c), e.g. to a gRPC-style gateway.
    pub http2_prior_knowledge: bool,
    /// Close a kept-alive connection after it sat idle this long (shorter than servers' own
    /// keep-alive timeouts, so that the server rarely closes it first).
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: Duration,
    /// Send synthetic prompts as token ids of the tokenizer's vocabulary (completions endpoint).
    #[serde(default)]
    pub prompt_ids: bool,
    /// The served model's `config.json` or `.gguf`: its KV-cache bytes per token, for the record.
    #[serde(default)]
    pub model_config: Option<PathBuf>,
    /// Send the API key (or a credential header) over plain HTTP to a host that is not this
    /// machine; refused otherwise.
    #[serde(default)]
    pub allow_plaintext_key: bool,
    /// PEM file of extra trusted certificates (a private CA, a self-signed server).
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify TLS certificates at all.
    #[serde(default)]
    pub insecure: bool,
    /// Response header naming the upstream that served a request (a gateway's, e.g. LiteLLM's
    /// `x-litellm-model-api-base`), recorded per request as its tier.
    #[serde(default)]
    pub tier_header: Option<String>,
}

/// Default of [`RemoteOptions::pool_idle_timeout`]: below uvicorn's 5 s keep-alive timeout
/// (nginx: 75 s).
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

fn default_pool_idle_timeout() -> Duration {
    DEFAULT_POOL_IDLE_TIMEOUT
}

/// Default of [`RemoteOptions::max_response_bytes`]: 256 MiB, some ten times what a 32k-token
/// answer streams as OpenAI chunks, so only a runaway (endless) response reaches it.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 << 20;

fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

impl RemoteOptions {
    pub fn new(api: Api, base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            api,
            base_url: base_url.into(),
            model: model.into(),
            endpoint: Endpoint::Chat,
            api_key_env: None,
            headers: Vec::new(),
            length_field: LengthField::MaxTokens,
            include_usage: true,
            extra_body: None,
            timeouts: Timeouts::default(),
            tokenizer: None,
            max_event_bytes: 1 << 20,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            http2_prior_knowledge: false,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            prompt_ids: false,
            model_config: None,
            allow_plaintext_key: false,
            ca_cert: None,
            insecure: false,
            tier_header: None,
        }
    }
}

/// The certificates `--ca-cert` adds to the web PKI roots (none without it): what the backend's
/// client trusts, and every other client that talks to the same server (the metrics scraper).
pub fn trusted_roots(opts: &RemoteOptions) -> Result<Vec<reqwest::Certificate>, LoadError> {
    let Some(p) = &opts.ca_cert else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(p)
        .map_err(|e| setting(format!("--ca-cert {}: cannot read: {e}", p.display())))?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            setting(format!(
                "--ca-cert {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
                p.display()
            ))
        })
}

const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How much of an error response's body is read for its message.
const ERROR_BODY_READ: usize = 64 * 1024;
/// How much of an error response's (scrubbed) body its message quotes.
const ERROR_SNIPPET_CHARS: usize = 300;

/// What every stream of a backend shares.
struct Shared {
    api: Api,
    format: Format,
    url: reqwest::Url,
    model: String,
    headers: HeaderMap,
    length_field: LengthField,
    include_usage: bool,
    extra_body: Option<serde_json::Map<String, Value>>,
    timeouts: Timeouts,
    tokenizer: Option<Arc<Tokenizer>>,
    prompt_text: PromptText,
    prompt_ids: bool,
    max_event_bytes: usize,
    max_response_bytes: u64,
    http2_prior_knowledge: bool,
    pool_idle_timeout: Duration,
    /// Scrubbed from every message: the API key and the values of extra headers (which may
    /// carry credentials too).
    secrets: Secrets,
    /// Trusted beside the web PKI roots (`--ca-cert`).
    roots: Vec<reqwest::Certificate>,
    insecure: bool,
    tier_header: Option<reqwest::header::HeaderName>,
}

/// A remote API backend.
pub struct RemoteBackend {
    shared: Arc<Shared>,
    vocab: Vec<u32>,
    record: BackendRecord,
}

fn setting(what: String) -> LoadError {
    LoadError::Setting { what }
}

/// The request URL: the base URL plus the API path; a base ending in `/v1` (the OpenAI SDK
/// convention) is not given a second `/v1`.
pub fn endpoint_url(base: &str, api: Api, endpoint: Endpoint) -> Result<reqwest::Url, LoadError> {
    let bad = || {
        setting(format!(
            "--base-url {base:?}: expected an http:// or https:// URL such as http://127.0.0.1:8000 or https://api.openai.com/v1"
        ))
    };
    let url = reqwest::Url::parse(base).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad());
    }
    let tail = match (api, endpoint) {
        (Api::Openai, Endpoint::Chat) => "chat/completions",
        (Api::Openai, Endpoint::Completions) => "completions",
        (Api::Anthropic, _) => "messages",
    };
    let path = url.path().trim_end_matches('/');
    let full = if path.ends_with("/v1") {
        format!("{path}/{tail}")
    } else {
        format!("{path}/v1/{tail}")
    };
    let mut out = url.clone();
    out.set_path(&full);
    Ok(out)
}

/// Header names that carry credentials, besides the API key's own header.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
];

/// A credential (the API key, a credential header, a password in the URL) is never sent over
/// plain HTTP to a host other than this machine unless `--allow-plaintext-key` says so.
fn check_plaintext_credentials(opts: &RemoteOptions, has_key: bool) -> Result<(), LoadError> {
    let Ok(url) = reqwest::Url::parse(&opts.base_url) else {
        return Ok(()); // endpoint_url has already refused it
    };
    if url.scheme() != "http" || opts.allow_plaintext_key || is_loopback(&url) {
        return Ok(());
    }
    let header = opts
        .headers
        .iter()
        .map(|(n, _)| n.trim())
        .find(|n| CREDENTIAL_HEADERS.iter().any(|c| n.eq_ignore_ascii_case(c)));
    let what = match (has_key, header, url.password().is_some()) {
        (true, _, _) => format!(
            "the API key from --api-key-env {}",
            opts.api_key_env.as_deref().unwrap_or("")
        ),
        (false, Some(h), _) => format!("the --header {h} value"),
        (false, None, true) => "the password in the URL".to_string(),
        (false, None, false) => return Ok(()),
    };
    refuse_plaintext(&url, &what, false)
        .map_err(|e| setting(format!("--base-url {}: {e}", redacted_url(&url))))
}

/// Refuses sending `what` (a credential) over plain http:// to a host that is not this machine
/// unless `allowed` (`--allow-plaintext-key`); the refusal says what to do instead. Shared by
/// the remote backends and `charter tokens`' remote counters.
pub(crate) fn refuse_plaintext(
    url: &reqwest::Url,
    what: &str,
    allowed: bool,
) -> Result<(), String> {
    if url.scheme() != "http" || allowed || is_loopback(url) {
        return Ok(());
    }
    Err(format!(
        "{what} would cross the network unencrypted (plain http:// to a host that is not this machine); use https://, or pass --allow-plaintext-key"
    ))
}

/// Whether the URL's host is this machine (`localhost`, 127.0.0.0/8, ::1).
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let h = host.to_ascii_lowercase();
            h == "localhost" || h.ends_with(".localhost")
        }
    }
}

/// The base URL as recorded: user name and password removed.
fn redacted_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

impl RemoteBackend {
    pub fn new(opts: &RemoteOptions) -> Result<Self, LoadError> {
        let started = Instant::now();
        let url = endpoint_url(&opts.base_url, opts.api, opts.endpoint)?;
        if opts.model.trim().is_empty() {
            return Err(setting(format!(
                "--backend {} needs --model NAME (the model name the server serves)",
                opts.api.as_str()
            )));
        }
        if opts.api == Api::Anthropic && opts.endpoint == Endpoint::Completions {
            return Err(setting(
                "--endpoint completions: the anthropic backend has only the messages endpoint"
                    .into(),
            ));
        }
        let secret = match &opts.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                Ok(_) => {
                    return Err(setting(format!(
                        "--api-key-env {var}: the variable is empty"
                    )))
                }
                Err(_) => {
                    return Err(setting(format!(
                        "--api-key-env {var}: the variable is not set (expected the API key in it)"
                    )))
                }
            },
        };
        check_plaintext_credentials(opts, secret.is_some())?;
        let roots = trusted_roots(opts)?;
        if opts.insecure {
            eprintln!(
                "charter: warning: --insecure: TLS certificates are NOT verified: anyone on the path can read the requests (and the API key) and answer in the server's place; recorded in the run"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Events are timed as they arrive: a compressed stream is not asked for (a compressor
        // holds events back until its block fills), and one sent anyway fails as malformed.
        headers.insert(
            reqwest::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if opts.api == Api::Anthropic {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        if let Some(key) = &secret {
            let (name, value) = match opts.api {
                Api::Openai => (reqwest::header::AUTHORIZATION, format!("Bearer {key}")),
                Api::Anthropic => (HeaderName::from_static("x-api-key"), key.clone()),
            };
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                setting(format!(
                    "--api-key-env {}: the key holds characters a header cannot carry",
                    opts.api_key_env.as_deref().unwrap_or("")
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        for (name, value) in &opts.headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| setting(format!("--header {name:?}: not a valid header name")))?;
            let mut v = HeaderValue::from_str(value.trim()).map_err(|_| {
                setting(format!(
                    "--header {name}: the value is not a valid header value"
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        let tokenizer = match &opts.tokenizer {
            Some(p) => Some(Arc::new(crate::candle::tokenizer::from_path(p)?)),
            None => None,
        };
        if opts.prompt_ids {
            if opts.endpoint != Endpoint::Completions || opts.api != Api::Openai {
                return Err(setting(
                    "--prompt-ids applies to --endpoint completions (chat messages are text)"
                        .into(),
                ));
            }
            if tokenizer.is_none() {
                return Err(setting(
                    "--prompt-ids needs --tokenizer: the ids are drawn from its vocabulary, which must be the server's".into(),
                ));
            }
        }
        let prompt_text = match (&tokenizer, &opts.tokenizer) {
            (Some(t), Some(p)) => {
                PromptText::with_tokenizer(Arc::clone(t), &p.display().to_string())?
            }
            _ => PromptText::estimated(),
        };
        let vocab = match &tokenizer {
            Some(t) => crate::prompting::ordinary_token_ids(
                Some(t),
                t.get_vocab_size(true),
                &Default::default(),
            ),
            None => (0..prompts::WORDS.len() as u32).collect(),
        };
        let tier_header = opts
            .tier_header
            .as_deref()
            .map(|n| {
                reqwest::header::HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| {
                    setting(format!(
                        "--tier-header `{n}`: expected an HTTP header name (letters, digits, `-`)"
                    ))
                })
            })
            .transpose()?;
        let format = match (opts.api, opts.endpoint) {
            (Api::Openai, Endpoint::Chat) => Format::OpenAiChat,
            (Api::Openai, Endpoint::Completions) => Format::OpenAiCompletions,
            (Api::Anthropic, _) => Format::Anthropic,
        };
        let base = reqwest::Url::parse(&opts.base_url).map_err(|_| setting(String::new()))?;
        let remote = charter_record::RemoteRecord {
            api: opts.api,
            base_url: redacted_url(&base),
            endpoint: url.path().to_string(),
            length_field: opts.length_field,
            include_usage_requested: opts.api == Api::Openai && opts.include_usage,
            extra_header_names: opts.headers.iter().map(|(n, _)| n.trim().to_string()).collect(),
            api_key_env: opts.api_key_env.clone(),
            token_count_fallback: match &opts.tokenizer {
                Some(p) => format!(
                    "tokenizer {} over the whole output text, counted as a continuation (also recorded beside usage when the server sends it)",
                    p.display()
                ),
                None => "chunks (one token per non-empty content chunk)".into(),
            },
            client: format!(
                "reqwest {} (rustls, ring) on one tokio current-thread runtime and one client per stream (thread); keep-alive, idle connections closed after {:?}; {}",
                "0.12",
                opts.pool_idle_timeout,
                if opts.http2_prior_knowledge { "HTTP/2 prior knowledge" } else { "HTTP/1.1, HTTP/2 when TLS ALPN offers it" }
            ),
            connection_timing: "connect = time inside reqwest's connector (DNS + TCP connect + TLS handshake) for a new connection, via a tower connector layer; response headers = start → send() returned; reused connections have no connect time".into(),
            connect_timeout_s: opts.timeouts.connect.as_secs_f64(),
            headers_timeout_s: opts.timeouts.headers.as_secs_f64(),
            idle_timeout_s: opts.timeouts.idle.as_secs_f64(),
            total_timeout_s: opts.timeouts.total.map(|d| d.as_secs_f64()),
            retries: 0,
            max_event_bytes: opts.max_event_bytes as u64,
            max_response_bytes: Some(opts.max_response_bytes),
            pool_idle_timeout_s: Some(opts.pool_idle_timeout.as_secs_f64()),
            stale_connections: Some(
                "pending socket events are processed before each request, so a kept-alive connection the server has closed is dropped and the request goes out on a new one (found_closed); a request written to a connection the server had already closed (closed or reset before any byte of a response) is sent again once on a new connection (resent); both are marked per request (stale_connection) and counted per level (stale_reconnects); no other request is ever sent twice".into(),
            ),
            prompts: Some(describe_prompts(opts, &prompt_text)),
            tls: match (&opts.ca_cert, opts.insecure) {
                (_, true) => Some("INSECURE: certificates not verified (--insecure)".into()),
                (Some(p), false) => Some(format!(
                    "web PKI roots and the certificates in {} (--ca-cert)",
                    p.display()
                )),
                (None, false) => None,
            },
            tier_header: opts.tier_header.clone(),
        };
        let record = BackendRecord {
            kind: opts.api.as_str().into(),
            model: opts.model.clone(),
            architecture: "remote".into(),
            weights: WeightsProvenance::Remote {
                model: opts.model.clone(),
            },
            dtype: "unknown (remote)".into(),
            device: format!("remote: {}", redacted_url(&base)),
            threads_per_instance: 1,
            threads_note: "one client thread per stream; the model runs on the server".into(),
            parameters: None,
            vocab_size: vocab.len() as u32,
            context_limit_tokens: u32::MAX,
            eos_token_ids: Vec::new(),
            tokenizer: opts.tokenizer.as_ref().map(|p| crate::TokenizerProvenance {
                source: p.display().to_string(),
                round_trip_checked: format!(
                    "each synthetic prompt re-encoded to its intended length ({} one-token words found)",
                    prompt_text.word_count()
                ),
            }),
            chat_template: Some("applied by the server".into()),
            load_time_s: started.elapsed().as_secs_f64(),
            remote: Some(remote),
            kv_cache: opts
                .model_config
                .as_deref()
                .map(model_config::kv_cache)
                .transpose()?,
            weights_conversion: None,
            pinning: None,
            prefill_matmul: None,
            hybrid: None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                api: opts.api,
                format,
                url,
                model: opts.model.clone(),
                headers,
                length_field: opts.length_field,
                include_usage: opts.include_usage,
                extra_body: opts.extra_body.clone(),
                timeouts: opts.timeouts,
                tokenizer,
                prompt_text,
                prompt_ids: opts.prompt_ids,
                max_event_bytes: opts.max_event_bytes.max(1024),
                max_response_bytes: opts.max_response_bytes.max(1024),
                http2_prior_knowledge: opts.http2_prior_knowledge,
                pool_idle_timeout: opts.pool_idle_timeout,
                roots,
                insecure: opts.insecure,
                tier_header,
                secrets: Secrets::new(
                    secret.into_iter().chain(
                        opts.headers
                            .iter()
                            .map(|(_, v)| v.trim().to_string())
                            // Short header values ("1", "true") are no secrets, and scrubbing
                            // them would garble messages.
                            .filter(|v| v.len() >= 8),
                    ),
                ),
            }),
            vocab,
            record,
        })
    }
}

/// How prompts are sent and their lengths known, for the record.
fn describe_prompts(opts: &RemoteOptions, p: &PromptText) -> String {
    let tail = "text prompts are counted with the same tokenizer, chat prompts by their message contents (the server's chat template adds tokens); the server's usage.prompt_tokens is recorded beside the intended count";
    match &opts.tokenizer {
        Some(t) if opts.prompt_ids => format!(
            "synthetic prompts: token ids of {}'s vocabulary sent as a list (--prompt-ids); {tail}",
            t.display()
        ),
        Some(t) => format!(
            "synthetic prompts: text of words that are one token each in {} ({} found), re-encoded until the count is the intended length (exact when the server tokenises as that tokenizer does); {tail}",
            t.display(),
            p.word_count()
        ),
        None => format!(
            "synthetic prompts: N common English words for N tokens, an estimate (no --tokenizer; most BPE vocabularies give about one token per word); text prompts: whitespace-separated words counted; {tail}"
        ),
    }
}

impl Backend for RemoteBackend {
    fn record(&self) -> &BackendRecord {
        &self.record
    }

    fn prompt_token_ids(&self) -> &[u32] {
        &self.vocab
    }

    fn accepts_text(&self) -> bool {
        true
    }

    fn decode(&self, ids: &[u32]) -> Option<String> {
        self.shared
            .tokenizer
            .as_ref()
            .and_then(|t| t.decode(ids, false).ok())
    }

    fn synthetic_text(&self, ids: &[u32]) -> Option<String> {
        Some(self.shared.prompt_text.synthetic(ids).0)
    }

    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setting(format!("starting the HTTP client runtime: {e}")))?;
        let slot = timing::ConnectSlot::default();
        let mut b = reqwest::Client::builder()
            .connect_timeout(self.shared.timeouts.connect)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(self.shared.pool_idle_timeout)
            .user_agent(concat!("charter/", env!("CARGO_PKG_VERSION")))
            .connector_layer(timing::layer(slot.clone()));
        if self.shared.http2_prior_knowledge {
            b = b.http2_prior_knowledge();
        }
        for c in &self.shared.roots {
            b = b.add_root_certificate(c.clone());
        }
        if self.shared.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let client = b
            .build()
            .map_err(|e| setting(format!("building the HTTP client: {e}")))?;
        Ok(Box::new(RemoteStream {
            shared: Arc::clone(&self.shared),
            rt,
            client,
            slot,
            pooled_at: Cell::new(None),
        }))
    }
}

struct RemoteStream {
    shared: Arc<Shared>,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    slot: timing::ConnectSlot,
    /// When the stream's connection last went back to the pool, ready for the next request.
    pooled_at: Cell<Option<Instant>>,
}

/// A request body and what charter knows about its prompt's length.
struct Prepared {
    body: Bytes,
    prompt_tokens: u64,
    prompt_source: PromptTokenSource,
}

impl Shared {
    fn scrub(&self, msg: String) -> String {
        if self.secrets.is_empty() {
            msg
        } else {
            self.secrets.scrub(&msg)
        }
    }

    /// The request body, with the prompt's intended length and how it is known.
    fn body(&self, req: &GenRequest) -> Prepared {
        enum P {
            Text(String),
            Ids(Vec<u32>),
            Chat(Vec<ChatMessage>),
        }
        let pt = &self.prompt_text;
        let (p, (prompt_tokens, prompt_source)) = match &req.prompt {
            Prompt::Tokens(ids) if self.prompt_ids => (
                P::Ids(ids.clone()),
                (ids.len() as u64, PromptTokenSource::Ids),
            ),
            Prompt::Tokens(ids) => {
                let (text, n, source) = pt.synthetic(ids);
                (P::Text(text), (n, source))
            }
            Prompt::Text(s) => (P::Text(s.clone()), pt.count(s)),
            Prompt::Chat(m) => {
                let mut n = 0;
                let mut source = PromptTokenSource::Tokenizer;
                for msg in m {
                    let (c, s) = pt.count(&msg.content);
                    n += c;
                    if s == PromptTokenSource::Estimate {
                        source = s;
                    }
                }
                (P::Chat(m.clone()), (n, source))
            }
        };
        let user = |s: String| {
            vec![ChatMessage {
                role: "user".into(),
                content: s,
            }]
        };
        let mut body = serde_json::Map::new();
        body.insert("model".into(), json!(self.model));
        body.insert("stream".into(), json!(true));
        match self.format {
            Format::OpenAiChat | Format::OpenAiCompletions => {
                match (self.format, p) {
                    (Format::OpenAiChat, P::Chat(m)) => body.insert("messages".into(), json!(m)),
                    (Format::OpenAiChat, P::Text(s)) => {
                        body.insert("messages".into(), json!(user(s)))
                    }
                    (Format::OpenAiChat, P::Ids(ids)) => {
                        body.insert("messages".into(), json!(user(pt.synthetic(&ids).0)))
                    }
                    (_, P::Chat(m)) => {
                        body.insert("prompt".into(), json!(crate::chat::plain_join(&m)))
                    }
                    (_, P::Text(s)) => body.insert("prompt".into(), json!(s)),
                    (_, P::Ids(ids)) => body.insert("prompt".into(), json!(ids)),
                };
                body.insert(self.length_field.as_str().into(), json!(req.max_tokens));
                if self.include_usage {
                    body.insert("stream_options".into(), json!({"include_usage": true}));
                }
                body.insert("seed".into(), json!(req.sampling.seed));
                if req.ignore_eos {
                    // vLLM's (and charter serve's) extension; OpenAI itself rejects it.
                    body.insert("ignore_eos".into(), json!(true));
                }
            }
            Format::Anthropic => {
                let mut msgs = match p {
                    P::Chat(m) => m,
                    P::Text(s) => user(s),
                    P::Ids(ids) => user(pt.synthetic(&ids).0),
                };
                let system: Vec<String> = msgs
                    .iter()
                    .filter(|m| m.role == "system")
                    .map(|m| m.content.clone())
                    .collect();
                msgs.retain(|m| m.role != "system");
                if !system.is_empty() {
                    body.insert("system".into(), json!(system.join("\n\n")));
                }
                body.insert("messages".into(), json!(msgs));
                body.insert("max_tokens".into(), json!(req.max_tokens));
            }
        }
        body.insert("temperature".into(), json!(req.sampling.temperature));
        if let Some(p) = req.sampling.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(extra) = &self.extra_body {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).expect("JSON values serialise");
        Prepared {
            body: Bytes::from(bytes),
            prompt_tokens,
            prompt_source,
        }
    }
}

/// Why the body stream stopped delivering bytes.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error(transparent)]
    Http(reqwest::Error),
    #[error("an SSE event exceeds {0} bytes")]
    TooLarge(usize),
    #[error(
        "the response body exceeds {0} bytes (--max-response-bytes): an endless or runaway stream"
    )]
    ResponseTooLarge(u64),
}

/// Text of an error and its sources, without the URL (it is recorded elsewhere).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Seconds of a `Retry-After` header: delay-seconds or an HTTP date.
fn retry_after(h: &HeaderValue) -> Option<Duration> {
    let s = h.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn stop_reason(finish: &str) -> StopReason {
    match finish {
        "length" | "max_tokens" | "model_length" => StopReason::MaxTokens,
        _ => StopReason::Eos,
    }
}

impl Stream for RemoteStream {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        let start = Instant::now();
        let prepared = self.shared.body(request);
        let ex = Exchange {
            shared: &self.shared,
            client: &self.client,
            slot: &self.slot,
            pooled_at: &self.pooled_at,
            start,
            max_tokens: request.max_tokens,
        };
        self.rt.block_on(ex.run(prepared, on_token))
    }
}

/// One request in flight.
struct Exchange<'a> {
    shared: &'a Shared,
    client: &'a reqwest::Client,
    slot: &'a timing::ConnectSlot,
    pooled_at: &'a Cell<Option<Instant>>,
    start: Instant,
    max_tokens: u32,
}

/// What a request has gathered so far.
#[derive(Default)]
struct Progress {
    wire: WireInfo,
    chunks: u64,
    usage: Usage,
    /// The content deltas joined (counted with the tokenizer, and the assistant's turn of a
    /// multi-turn session).
    text: String,
    finish: Option<StopReason>,
}

/// Whether a failed send looks like a kept-alive connection the server had closed: the
/// connection was closed or reset before any byte of a response (hyper's "connection closed
/// before message completed", or a reset/broken pipe on the socket), not a timeout.
fn closed_before_response(e: &reqwest::Error) -> bool {
    if e.is_timeout() {
        return false;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Whether the response lets its connection be kept alive.
fn keeps_alive(resp: &reqwest::Response) -> bool {
    !resp
        .headers()
        .get(reqwest::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

impl Exchange<'_> {
    fn fail(&self, p: &Progress, kind: ErrorKind, message: String) -> RequestError {
        RequestError {
            kind,
            message: self.shared.scrub(message),
            prompt_tokens: p
                .usage
                .prompt_tokens
                .or(p.wire.prompt_tokens_intended)
                .unwrap_or(0),
            output_tokens: p.usage.output_tokens.unwrap_or(p.chunks),
            wire: Some(Box::new(p.wire.clone())),
        }
    }

    async fn run(
        self,
        prepared: Prepared,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        // The connection goes back to the pool only where this request ends well.
        let pooled_at = self.pooled_at.take();
        let mut p = Progress::default();
        p.wire.prompt_tokens_intended = Some(prepared.prompt_tokens);
        p.wire.prompt_intended_source = Some(prepared.prompt_source);
        p.wire.max_tokens_sent = Some(self.max_tokens);
        let r = self
            .exchange(prepared.body, pooled_at, &mut p, on_token)
            .await;
        if r.as_ref().is_ok_and(|reusable| *reusable) {
            self.pooled_at.set(Some(Instant::now()));
        }
        match r {
            Err(e) => Err(e),
            Ok(_) => Ok(self.outcome(p)),
        }
    }

    /// Send the request and read its stream into `p`; `Ok(true)` when the connection went back
    /// to the pool.
    async fn exchange(
        &self,
        body: Bytes,
        pooled_at: Option<Instant>,
        p: &mut Progress,
        on_token: &mut TokenSink<'_>,
    ) -> Result<bool, RequestError> {
        let sh = self.shared;
        let total_deadline = sh.timeouts.total.map(|t| self.start + t);
        let headers_deadline = match total_deadline {
            Some(t) => t.min(self.start + sh.timeouts.headers),
            None => self.start + sh.timeouts.headers,
        };
        // The runtime only runs while this stream sends: let it read the socket events that
        // arrived while it was idle (two scheduler ticks: the driver's poll wakes the idle
        // connection's task, which then sees the server's close), so that hyper drops a pooled
        // connection the server has closed instead of writing the request to it.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        // A pooled connection charter's own idle timer has not retired (with a margin for the
        // pool's clock starting a little earlier than this one).
        let pooled = pooled_at
            .is_some_and(|t| t.elapsed() + Duration::from_millis(100) < sh.pool_idle_timeout);
        p.wire.sent_at = Some(Instant::now());
        let mut resent = false;
        let resp = loop {
            self.slot.clear();
            let send = self
                .client
                .post(sh.url.clone())
                .headers(sh.headers.clone())
                .body(body.clone())
                .send();
            let sent = tokio::time::timeout_at(headers_deadline.into(), send).await;
            // Recorded on every row, failed or not.
            let attempt = self.slot.take();
            p.wire.connection_reused = Some(attempt.is_none());
            p.wire.connect = attempt.and_then(|a| a.took);
            if attempt.is_some() && pooled && !resent {
                p.wire.stale_connection = Some(StaleConnection::FoundClosed);
            }
            match sent {
                Err(_) => {
                    let which = if total_deadline.is_some_and(|t| t <= headers_deadline) {
                        "total timeout"
                    } else {
                        "response-headers timeout"
                    };
                    return Err(self.fail(
                        p,
                        ErrorKind::Timeout,
                        format!(
                            "{which}: no response headers within {:?}",
                            headers_deadline - self.start
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    if !resent && attempt.is_none() && closed_before_response(&e) {
                        // Written to a kept-alive connection the server had closed: it never
                        // saw the request. Once, on a new connection.
                        resent = true;
                        p.wire.stale_connection = Some(StaleConnection::Resent);
                        continue;
                    }
                    let e = e.without_url();
                    let kind = if e.is_timeout() {
                        ErrorKind::Timeout
                    } else if e.is_connect() {
                        ErrorKind::Connect
                    } else {
                        ErrorKind::StreamBroken
                    };
                    let what = if kind == ErrorKind::Timeout && e.is_connect() {
                        format!("connect timeout ({:?}): ", sh.timeouts.connect)
                    } else if kind == ErrorKind::Connect {
                        // Which host (a DNS name that does not resolve), never the whole URL.
                        format!(
                            "connecting to {}:{}: ",
                            sh.url.host_str().unwrap_or(""),
                            sh.url.port_or_known_default().unwrap_or(0)
                        )
                    } else {
                        String::new()
                    };
                    let again = if resent {
                        " (sent again on a new connection after the kept-alive one was found closed)"
                    } else {
                        ""
                    };
                    return Err(self.fail(p, kind, format!("{what}{}{again}", chain(&e))));
                }
                Ok(Ok(r)) => break r,
            }
        };
        let headers_at = Instant::now();
        p.wire.headers_at = Some(headers_at);
        let status = resp.status();
        p.wire.http_status = Some(status.as_u16());
        p.wire.http_version = Some(match resp.version() {
            reqwest::Version::HTTP_09 => "HTTP/0.9",
            reqwest::Version::HTTP_10 => "HTTP/1.0",
            reqwest::Version::HTTP_11 => "HTTP/1.1",
            reqwest::Version::HTTP_2 => "HTTP/2.0",
            reqwest::Version::HTTP_3 => "HTTP/3.0",
            _ => "other",
        });
        if let Some(name) = &sh.tier_header {
            p.wire.tier_header = resp
                .headers()
                .get(name)
                .map(|v| sh.secrets.scrub(&String::from_utf8_lossy(v.as_bytes())));
        }
        let keep_alive = keeps_alive(&resp);
        if !status.is_success() {
            p.wire.retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(retry_after);
            let kind = if status.as_u16() == 429 {
                ErrorKind::RateLimited
            } else {
                ErrorKind::HttpStatus
            };
            // At most ERROR_BODY_READ bytes are read (a 1 GiB error page costs no more), and
            // the text is scrubbed before it is cut, so a key echoed across the cut is never
            // halved into a prefix.
            let mut resp = resp;
            let mut body = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(2), async {
                while body.len() < ERROR_BODY_READ {
                    match resp.chunk().await {
                        Ok(Some(c)) => body.extend_from_slice(&c),
                        Ok(None) => return true,
                        Err(_) => return false,
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            let snippet = sh
                .secrets
                .clip(String::from_utf8_lossy(&body).trim(), ERROR_SNIPPET_CHARS);
            if read && keep_alive {
                self.pooled_at.set(Some(Instant::now()));
            }
            let retry = match p.wire.retry_after {
                Some(d) => format!(" (Retry-After {:.3} s)", d.as_secs_f64()),
                None => String::new(),
            };
            return Err(self.fail(p, kind, format!("HTTP {status}{retry}: {}", snippet.trim())));
        }

        // reqwest decodes no Content-Encoding (none is asked for): compressed bytes would reach
        // the SSE decoder as garbage.
        if let Some(enc) = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|e| !e.is_empty() && e != "identity")
        {
            return Err(self.fail(
                p,
                ErrorKind::Malformed,
                format!(
                    "the response is compressed (Content-Encoding: {}) although charter asked for Accept-Encoding: identity; compressed streams are not decoded, since a compressor holds events back and their arrival times would be its own",
                    sh.secrets.clip(&enc, 40)
                ),
            ));
        }

        // Arrival time of the latest network read, bytes read since the last event, and in all.
        let stamp = Rc::new(Cell::new(headers_at));
        let pending = Rc::new(Cell::new(0usize));
        let limit = sh.max_event_bytes;
        let (mut received, response_limit) = (0u64, sh.max_response_bytes);
        let bytes = {
            let (stamp, pending) = (Rc::clone(&stamp), Rc::clone(&pending));
            resp.bytes_stream().map(move |r| {
                let b = r.map_err(|e| BodyError::Http(e.without_url()))?;
                stamp.set(Instant::now());
                received += b.len() as u64;
                if received > response_limit {
                    return Err(BodyError::ResponseTooLarge(response_limit));
                }
                let n = pending.get() + b.len();
                pending.set(n);
                if n > limit {
                    return Err(BodyError::TooLarge(limit));
                }
                Ok(b)
            })
        };
        let mut events = sse_stream::SseByteStream::new(bytes.into_stream());
        let idle = sh.timeouts.idle;
        let mut done = false;
        let mut cancelled = false;
        loop {
            let mut deadline = stamp.get() + idle;
            if let Some(t) = total_deadline {
                deadline = deadline.min(t);
            }
            let next = match tokio::time::timeout_at(deadline.into(), events.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let now = Instant::now();
                    if total_deadline.is_some_and(|t| now >= t) {
                        return Err(self.fail(
                            p,
                            ErrorKind::Timeout,
                            format!(
                                "total timeout: the request ran past {:?} ({} content chunks received)",
                                sh.timeouts.total.unwrap_or_default(),
                                p.chunks
                            ),
                        ));
                    }
                    if stamp.get() + idle > now {
                        continue; // bytes arrived (a comment, part of an event): not idle
                    }
                    return Err(self.fail(
                        p,
                        ErrorKind::Timeout,
                        format!(
                            "idle timeout: no bytes for {idle:?} ({} content chunks received)",
                            p.chunks
                        ),
                    ));
                }
            };
            let ev = match next {
                None => break,
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    let too_large = matches!(&e, sse_stream::Error::Body(b) if matches!(b.downcast_ref::<BodyError>(), Some(BodyError::TooLarge(_) | BodyError::ResponseTooLarge(_))));
                    let kind = match &e {
                        _ if too_large => ErrorKind::Malformed,
                        sse_stream::Error::Body(_) => ErrorKind::StreamBroken,
                        _ => ErrorKind::Malformed,
                    };
                    let what = if kind == ErrorKind::StreamBroken {
                        "the response body broke mid-stream: "
                    } else {
                        ""
                    };
                    let received = if too_large {
                        format!(" ({} content chunks received)", p.chunks)
                    } else {
                        String::new()
                    };
                    return Err(self.fail(p, kind, format!("{what}{}{received}", chain(&e))));
                }
            };
            let at = stamp.get();
            pending.set(0);
            let Some(data) = ev.data.as_deref() else {
                continue;
            };
            let piece = match wire::parse(sh.format, data, &sh.secrets) {
                Ok(x) => x,
                Err(m) => return Err(self.fail(p, ErrorKind::Malformed, m)),
            };
            if let Some(err) = &piece.error {
                return Err(self.fail(
                    p,
                    ErrorKind::StreamBroken,
                    format!("the server reported an error mid-stream: {err}"),
                ));
            }
            if piece.has_reasoning() {
                p.wire.reasoning_chunks += 1;
                p.wire.first_reasoning_at.get_or_insert(at);
            }
            if let Some(u) = piece.usage {
                p.usage.merge(u);
            }
            if let Some(f) = &piece.finish {
                p.finish = Some(stop_reason(f));
            }
            if let Some(c) = piece.content.as_deref().filter(|c| !c.is_empty()) {
                p.chunks += 1;
                p.text.push_str(c);
                if let ControlFlow::Break(()) = on_token(TokenEvent {
                    at,
                    tokens: 1,
                    id: None,
                }) {
                    cancelled = true;
                    break;
                }
            }
            if piece.done {
                done = true;
                break;
            }
        }
        if !done && !cancelled {
            let marker = match sh.api {
                Api::Openai => "data: [DONE]",
                Api::Anthropic => "message_stop",
            };
            return Err(self.fail(
                p,
                ErrorKind::StreamBroken,
                format!(
                    "the stream ended without {marker} ({} content chunks received)",
                    p.chunks
                ),
            ));
        }
        if cancelled {
            p.finish = Some(StopReason::Cancelled);
            return Ok(false);
        }
        // Read to the end of the body so the connection goes back to the pool.
        let drain = idle.min(Duration::from_secs(1));
        let ended = loop {
            match tokio::time::timeout(drain, events.next()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(None) => break true,
                _ => break false,
            }
        };
        Ok(ended && keep_alive)
    }

    /// The outcome of a request whose stream completed: counts from usage, the tokenizer or
    /// the chunks (every one that exists is recorded), and the stop reason the server gave.
    fn outcome(&self, mut p: Progress) -> GenOutcome {
        let sh = self.shared;
        p.wire.reasoning_tokens = p.usage.reasoning_tokens;
        p.wire.cached_prompt_tokens = p.usage.cached_prompt_tokens;
        p.wire.prompt_tokens_usage = p.usage.prompt_tokens;
        p.wire.output_tokens_usage = p.usage.output_tokens;
        p.wire.output_tokens_tokenizer = sh.prompt_text.count_output(&p.text);
        let (output_tokens, source) = match (p.usage.output_tokens, p.wire.output_tokens_tokenizer)
        {
            (Some(n), _) => (n, TokenCountSource::Usage),
            (None, Some(n)) => (n, TokenCountSource::Tokenizer),
            _ => (p.chunks, TokenCountSource::Chunks),
        };
        // The server's finish_reason; without one, whether the cap was reached.
        let stop = p
            .finish
            .unwrap_or(if output_tokens >= u64::from(self.max_tokens) {
                StopReason::MaxTokens
            } else {
                StopReason::Eos
            });
        GenOutcome {
            prompt_tokens: p
                .usage
                .prompt_tokens
                .or(p.wire.prompt_tokens_intended)
                .unwrap_or(0),
            output_tokens,
            stop_reason: stop,
            output_token_ids: Vec::new(),
            token_count_source: source,
            output_text: Some(p.text),
            wire: Some(Box::new(p.wire)),
        }
    }
}

/// What the client takes from one SSE event (owned, for fixtures and fuzzing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    pub content: String,
    pub reasoning: String,
    pub usage: Option<Usage>,
    pub finish: Option<String>,
    pub done: bool,
    pub error: Option<String>,
}

/// Decode a response body delivered in `pieces` (split anywhere) the way a stream does: SSE
/// events through `sse-stream`, then the API's wire format. Fixture tests and the SSE fuzz test
/// use it to check that every split gives the same events.
pub fn replay(api: Api, endpoint: Endpoint, pieces: Vec<Bytes>) -> Result<Vec<Replayed>, String> {
    let format = match (api, endpoint) {
        (Api::Openai, Endpoint::Chat) => Format::OpenAiChat,
        (Api::Openai, Endpoint::Completions) => Format::OpenAiCompletions,
        (Api::Anthropic, _) => Format::Anthropic,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let input = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
        let mut events = sse_stream::SseByteStream::new(input);
        let mut out = Vec::new();
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| e.to_string())?;
            let Some(data) = ev.data.as_deref() else {
                continue;
            };
            let p = wire::parse(format, data, &Secrets::none())?;
            out.push(Replayed {
                content: p.content.as_deref().unwrap_or("").to_string(),
                reasoning: p.reasoning.as_deref().unwrap_or("").to_string(),
                usage: p.usage,
                finish: p.finish.map(|f| f.into_owned()),
                done: p.done,
                error: p.error,
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_one_v1() {
        let u = |b: &str, a, e| endpoint_url(b, a, e).unwrap().to_string();
        assert_eq!(
            u("http://127.0.0.1:8000", Api::Openai, Endpoint::Chat),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(
            u(
                "https://api.openai.com/v1/",
                Api::Openai,
                Endpoint::Completions
            ),
            "https://api.openai.com/v1/completions"
        );
        assert_eq!(
            u("https://api.anthropic.com", Api::Anthropic, Endpoint::Chat),
            "https://api.anthropic.com/v1/messages"
        );
        assert!(endpoint_url("localhost:8000", Api::Openai, Endpoint::Chat).is_err());
        assert!(endpoint_url("ftp://x", Api::Openai, Endpoint::Chat).is_err());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn missing_key_variable_is_a_clear_error() {
        let mut o = RemoteOptions::new(Api::Openai, "http://127.0.0.1:1", "m");
        o.api_key_env = Some("CHARTER_TEST_SURELY_UNSET_VAR".into());
        let e = RemoteBackend::new(&o).err().unwrap().to_string();
        assert!(
            e.contains("CHARTER_TEST_SURELY_UNSET_VAR") && e.contains("not set"),
            "{e}"
        );
    }

    #[test]
    fn credentials_never_cross_the_network_in_plain_http() {
        let check = |url: &str, key: bool, headers: &[(&str, &str)], allow: bool| {
            let mut o = RemoteOptions::new(Api::Openai, url, "m");
            o.api_key_env = key.then(|| "K".to_string());
            o.headers = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            o.allow_plaintext_key = allow;
            check_plaintext_credentials(&o, key).map_err(|e| e.to_string())
        };
        let e = check("http://10.1.2.3:8000", true, &[], false).unwrap_err();
        assert!(
            e.contains("--api-key-env K") && e.contains("--allow-plaintext-key"),
            "{e}"
        );
        let e = check(
            "http://api.example.com/v1",
            false,
            &[("Authorization", "Bearer x")],
            false,
        )
        .unwrap_err();
        assert!(e.contains("--header Authorization"), "{e}");
        let e = check("http://u:pw@example.com", false, &[], false).unwrap_err();
        assert!(
            e.contains("password in the URL") && !e.contains("pw@"),
            "{e}"
        );
        // Allowed: the flag, TLS, this machine, or no credential at all.
        assert!(check("http://10.1.2.3:8000", true, &[], true).is_ok());
        assert!(check("https://10.1.2.3:8000", true, &[], false).is_ok());
        for local in [
            "http://127.0.0.1:1",
            "http://127.9.9.9:1",
            "http://localhost:1",
            "http://[::1]:1",
        ] {
            assert!(check(local, true, &[], false).is_ok(), "{local}");
        }
        assert!(check("http://10.1.2.3:8000", false, &[("X-Trace", "1")], false).is_ok());
    }
}
