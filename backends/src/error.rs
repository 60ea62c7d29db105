//! Why a backend could not be set up ([`LoadError`], naming the offending input).

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
