use std::path::PathBuf;

/// Why a backend could not be set up. Each variant names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model path {path}: not found (expected a .gguf file or a directory with config.json, *.safetensors and tokenizer.json)")]
    NotFound { path: PathBuf },
    #[error("model path {path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model {path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("model {path}: unsupported architecture `{found}` (expected one of: {expected})")]
    UnsupportedArchitecture {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: malformed config.json: {what}")]
    MalformedConfig { path: PathBuf, what: String },
    #[error("tokenizer {source_name}: does not round-trip: {input:?} decoded as {output:?}")]
    TokenizerRoundTrip {
        source_name: String,
        input: String,
        output: String,
    },
    #[error("tokenizer {source_name}: {what}")]
    Tokenizer { source_name: String, what: String },
    #[error("unknown preset `{name}` (expected one of: {known})")]
    UnknownPreset { name: String, known: String },
    #[error("{what}")]
    Setting { what: String },
    #[error("ONNX Runtime library not found ({searched}); {hint}", hint = crate::onnx::runtime::FETCH_HINT)]
    OrtLibraryNotFound { searched: String },
    #[error("ONNX Runtime library {path}: {what}")]
    OrtLibrary { path: PathBuf, what: String },
    #[error("ONNX Runtime library {path} is version {found}; charter needs ONNX Runtime {expected} (scripts/fetch-onnxruntime.sh fetches 1.31.1)")]
    OrtVersion {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("ONNX model {path}: {what}")]
    OnnxModel { path: PathBuf, what: String },
    #[error("ONNX model {path}: input `{input}` cannot be synthesised: {what}")]
    OnnxInput {
        path: PathBuf,
        input: String,
        what: String,
    },
    #[error("execution provider `{requested}` requested, but the ONNX Runtime at {library} offers only {available} (a GPU build of ONNX Runtime 1.31 is needed: pass it with --ort-lib; or use --execution-provider cpu)")]
    ExecutionProviderUnavailable {
        requested: String,
        library: PathBuf,
        available: String,
    },
    #[error("{context}: {source}")]
    Candle {
        context: String,
        source: candle_core::Error,
    },
}

/// Kinds of per-request failure (a failed request is data, never an abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestErrorKind {
    /// The request cannot be served as asked (e.g. prompt longer than the context).
    InvalidRequest,
    /// The model computation failed.
    Compute,
    /// Remote: the connection could not be opened (refused, DNS, TLS handshake).
    Connect,
    /// Remote: a timeout (connect, response headers, idle gap between chunks, or total; the
    /// message says which).
    Timeout,
    /// Remote: the server answered with an HTTP error status (other than 429).
    HttpStatus,
    /// Remote: HTTP 429 (its `Retry-After` is recorded).
    RateLimited,
    /// Remote: the stream ended or broke before it was complete (reset, no `[DONE]`).
    StreamBroken,
    /// Remote: the server sent something that is not the API's wire format (bad JSON, an
    /// oversized event, an `error` event).
    Malformed,
}

impl RequestErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestErrorKind::InvalidRequest => "invalid_request",
            RequestErrorKind::Compute => "compute",
            RequestErrorKind::Connect => "connect",
            RequestErrorKind::Timeout => "timeout",
            RequestErrorKind::HttpStatus => "http_status",
            RequestErrorKind::RateLimited => "rate_limited",
            RequestErrorKind::StreamBroken => "stream_broken",
            RequestErrorKind::Malformed => "malformed",
        }
    }
}

/// A request that failed, with the tokens it produced before failing.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}: {message}", kind.as_str())]
pub struct RequestError {
    pub kind: RequestErrorKind,
    pub message: String,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// What a remote request saw before it failed.
    #[serde(skip)]
    pub wire: Option<Box<crate::WireInfo>>,
}
