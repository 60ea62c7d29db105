//! The raw observation of one request: what a backend reports about a generation
//! ([`GenOutcome`] or [`RequestError`], with what a remote request saw on the wire), and what
//! the runner adds around it (ids, scheduled and actual times, token event times) to make an
//! [`Observation`]. Nothing here is derived: metrics are computed from it in
//! [`crate::metrics`].

use std::fmt;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// The enums below key the counts of a run summary (`stop_reasons`, `errors`,
// `token_count_sources`): their variants are declared in the alphabetical order of their
// names, so that `Ord` (the key order of those maps) lists them as run.json always has.

/// Why generation stopped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The caller asked to stop (e.g. Ctrl-C).
    Cancelled,
    Eos,
    #[default]
    MaxTokens,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancelled => "cancelled",
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
        }
    }
}

/// Where a request's token counts came from (see `shared/docs/metrics.md`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenCountSource {
    /// Exact: the in-process backend generated them.
    #[default]
    Backend,
    /// Content chunks counted (one token per non-empty chunk): an estimate.
    Chunks,
    /// The configured tokenizer applied to the whole output text.
    Tokenizer,
    /// A remote API's own `usage` report.
    Usage,
}

impl TokenCountSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenCountSource::Backend => "backend",
            TokenCountSource::Chunks => "chunks",
            TokenCountSource::Tokenizer => "tokenizer",
            TokenCountSource::Usage => "usage",
        }
    }
}

/// Where a request's prompt-token count came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PromptTokenSource {
    /// Exact: the in-process backend encoded the prompt itself.
    #[default]
    Backend,
    /// Remote API without a tokenizer: whitespace-separated words counted as tokens (common
    /// English words are about one token each in BPE vocabularies); an estimate.
    Estimate,
    /// Remote API: the prompt was sent as token ids (`--prompt-ids`), so its length is the
    /// number of ids.
    Ids,
    /// Remote API: the configured tokenizer's count of the prompt text (synthetic prompt text
    /// is built and re-encoded until that count is the intended length).
    Tokenizer,
    /// A remote API's own `usage.prompt_tokens` (includes whatever the server adds: chat
    /// template, BOS).
    Usage,
}

impl PromptTokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptTokenSource::Backend => "backend",
            PromptTokenSource::Estimate => "estimate",
            PromptTokenSource::Ids => "ids",
            PromptTokenSource::Tokenizer => "tokenizer",
            PromptTokenSource::Usage => "usage",
        }
    }
}

/// A kept-alive connection that turned out closed by the server when a request was to use it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StaleConnection {
    /// The pooled connection was found closed before the request was written: the request
    /// went out on a new connection.
    FoundClosed,
    /// The request was written to a pooled connection the server had already closed and no
    /// byte of a response came back: it was sent again, once, on a new connection.
    Resent,
}

impl StaleConnection {
    pub fn as_str(self) -> &'static str {
        match self {
            StaleConnection::FoundClosed => "found_closed",
            StaleConnection::Resent => "resent",
        }
    }
}

/// What a remote request saw on the wire (`None` for in-process backends).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireInfo {
    /// When the request was handed to the HTTP client (body serialised): the request's
    /// `start` for remote APIs, per the metric definitions ("HTTP: request written").
    pub sent_at: Option<Instant>,
    pub http_status: Option<u16>,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub http_version: Option<&'static str>,
    /// Time to open a new connection (TCP, plus TLS for https); `None` when reused.
    pub connect: Option<Duration>,
    pub connection_reused: Option<bool>,
    /// When the response headers arrived.
    pub headers_at: Option<Instant>,
    /// First non-empty reasoning/thinking delta.
    pub first_reasoning_at: Option<Instant>,
    pub reasoning_chunks: u64,
    /// Reasoning tokens from the API's usage, when it reports them.
    pub reasoning_tokens: Option<u64>,
    /// Prompt tokens the API's usage says were read from its prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`).
    pub cached_prompt_tokens: Option<u64>,
    /// `Retry-After` of a 429 response.
    pub retry_after: Option<Duration>,
    /// Set when the kept-alive connection the request was to use had been closed by the
    /// server (the request then went over a new connection).
    pub stale_connection: Option<StaleConnection>,
    /// The prompt length charter meant to send, and how it knows it.
    pub prompt_tokens_intended: Option<u64>,
    pub prompt_intended_source: Option<PromptTokenSource>,
    /// `usage.prompt_tokens` as the server reported it.
    pub prompt_tokens_usage: Option<u64>,
    /// Output tokens as the server's `usage` reported them.
    pub output_tokens_usage: Option<u64>,
    /// Output tokens counted with the configured tokenizer over the output text.
    pub output_tokens_tokenizer: Option<u64>,
    /// The output cap sent with the request.
    pub max_tokens_sent: Option<u32>,
    /// `--tier-header`: the value of that response header (which upstream served it).
    pub tier_header: Option<String>,
}

/// What a finished generation reports about itself. Counts are exact for in-process backends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GenOutcome {
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub stop_reason: StopReason,
    pub output_token_ids: Vec<u32>,
    pub token_count_source: TokenCountSource,
    /// The generated text as streamed, where the backend has it (remote APIs: the content
    /// deltas joined); multi-turn sessions send it back as the assistant's turn. In-process
    /// backends leave it empty (their ids are in `output_token_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
    /// Not carried between processes (in-process backends have none).
    #[serde(skip)]
    pub wire: Option<Box<WireInfo>>,
}

/// Kinds of per-request failure (a failed request is data, never an abort).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model computation failed.
    Compute,
    /// Remote: the connection could not be opened (refused, DNS, TLS handshake).
    Connect,
    /// Remote: the server answered with an HTTP error status (other than 429).
    HttpStatus,
    /// The request cannot be served as asked (e.g. prompt longer than the context).
    InvalidRequest,
    /// Remote: the server sent something that is not the API's wire format (bad JSON, an
    /// oversized event, an `error` event).
    Malformed,
    /// Remote: HTTP 429 (its `Retry-After` is recorded).
    RateLimited,
    /// Remote: the stream ended or broke before it was complete (reset, no `[DONE]`).
    StreamBroken,
    /// Remote: a timeout (connect, response headers, idle gap between chunks, or total; the
    /// message says which).
    Timeout,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Compute => "compute",
            ErrorKind::Connect => "connect",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Malformed => "malformed",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::StreamBroken => "stream_broken",
            ErrorKind::Timeout => "timeout",
        }
    }
}

crate::display_as_str!(
    StopReason,
    TokenCountSource,
    ErrorKind,
    PromptTokenSource,
    StaleConnection
);

/// A request that failed, with the tokens it produced before failing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// What a remote request saw before it failed.
    #[serde(skip)]
    pub wire: Option<Box<WireInfo>>,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RequestError {}

/// A request that finished (or failed), with the raw times of its token events.
#[derive(Debug)]
pub struct Observation {
    pub id: u64,
    pub instance: u32,
    pub warmup: bool,
    /// When the load profile scheduled it (closed loop: equals `start`).
    pub intended_start: Instant,
    pub start: Instant,
    pub end: Instant,
    /// Arrival time and token count of each token event.
    pub events: Vec<(Instant, u32)>,
    pub result: Result<GenOutcome, RequestError>,
    /// Hybrid backend: how the request was routed between tiers.
    pub route: Option<crate::route::Route>,
    /// Multi-turn sessions: which conversation and turn the request was.
    pub session: Option<SessionTurn>,
}

/// A request's place in a multi-turn session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionTurn {
    /// The session's index in its level (the same on every shard).
    pub session: u64,
    /// 1 for the first turn.
    pub turn: u32,
    /// The think time drawn before this turn (after the previous turn's response ended);
    /// `None` for the first turn.
    pub think_time: Option<Duration>,
}
