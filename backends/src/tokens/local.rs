//! In-process counters: Hugging Face tokenizers (`tokenizer.json`, GGUF metadata) and tiktoken.

use std::path::Path;

use base64::Engine as _;
use candle_core::quantized::gguf_file;
use tiktoken_rs::CoreBPE;
use tokenizers::Tokenizer;

use super::{
    Count, CountError, CounterInfo, KvDtype, KvShape, TokenCounter, TokenizerIdentity,
    TokenizerKind,
};
use crate::{file_digest, ChatMessage, ChatTemplate};

/// A Hugging Face tokenizer, from `tokenizer.json` or a GGUF file's metadata.
pub struct HfCounter {
    tok: Tokenizer,
    template: Option<ChatTemplate>,
    info: CounterInfo,
}

impl HfCounter {
    /// `tokenizer.json`, with `tokenizer_config.json` (chat template) and `config.json` (KV
    /// cache shape) from the same directory when present.
    pub fn from_json(path: &Path) -> Result<Self, String> {
        let tok = Tokenizer::from_file(path).map_err(|e| format!("not a tokenizer.json: {e}"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let template =
            crate::candle::files::chat_template_from_config(&dir.join("tokenizer_config.json"))
                .map_err(|e| e.to_string())?;
        let kv = kv_from_config_json(&dir.join("config.json"))?;
        let digest = file_digest(path).map_err(|e| format!("cannot read: {e}"))?;
        let info = CounterInfo {
            identity: TokenizerIdentity {
                kind: TokenizerKind::HfTokenizerJson,
                source: path.display().to_string(),
                sha256: Some(digest.sha256),
                vocab_size: Some(tok.get_vocab_size(true) as u64),
                model: None,
                api_key_env: None,
                count_method:
                    "tokenizers encode without special tokens (add_special_tokens = false)".into(),
            },
            chat_template: template.as_ref().map(|t| t.source.clone()),
            no_round_trip: None,
            kv,
        };
        Ok(Self {
            tok,
            template,
            info,
        })
    }

    /// The tokenizer in a GGUF file's metadata, built as the candle backend builds it.
    pub fn from_gguf(path: &Path) -> Result<Self, String> {
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
        let ct = gguf_file::Content::read(&mut file)
            .map_err(|e| format!("not a readable GGUF file ({e})"))?;
        let tok = crate::candle::tokenizer::from_gguf(&ct).map_err(|e| e.to_string())?;
        let md_str = |k: &str| ct.metadata.get(k).and_then(|v| v.to_string().ok().cloned());
        let md_u32 = |k: &str| ct.metadata.get(k).and_then(|v| v.to_u32().ok());
        let token_str = |k: &str| {
            md_u32(k)
                .and_then(|id| tok.id_to_token(id))
                .unwrap_or_default()
        };
        let template = match md_str("tokenizer.chat_template") {
            Some(t) => Some(ChatTemplate::new(
                &t,
                &token_str("tokenizer.ggml.bos_token_id"),
                &token_str("tokenizer.ggml.eos_token_id"),
                "gguf-metadata",
            )?),
            None => None,
        };
        let kv = md_str("general.architecture").and_then(|arch| {
            let layers = md_u32(&format!("{arch}.block_count"))?;
            let heads = md_u32(&format!("{arch}.attention.head_count"))?;
            let kv_heads = md_u32(&format!("{arch}.attention.head_count_kv")).unwrap_or(heads);
            let head_dim = md_u32(&format!("{arch}.attention.key_length"))
                .or_else(|| Some(md_u32(&format!("{arch}.embedding_length"))? / heads.max(1)))?;
            Some(KvShape {
                source: "gguf-metadata (charter's candle backend keeps the KV cache in f32)".into(),
                layers,
                kv_heads,
                head_dim,
                dtype: KvDtype::F32,
            })
        });
        let vocab = ct
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok().map(|a| a.len() as u64))
            .unwrap_or(tok.get_vocab_size(true) as u64);
        let digest = file_digest(path).map_err(|e| format!("cannot read: {e}"))?;
        let info = CounterInfo {
            identity: TokenizerIdentity {
                kind: TokenizerKind::Gguf,
                source: path.display().to_string(),
                sha256: Some(digest.sha256),
                vocab_size: Some(vocab),
                model: md_str("general.name"),
                api_key_env: None,
                count_method: "GGUF metadata tokenizer (as charter's candle backend builds it), encode without special tokens".into(),
            },
            chat_template: template.as_ref().map(|t| t.source.clone()),
            no_round_trip: None,
            kv,
        };
        Ok(Self {
            tok,
            template,
            info,
        })
    }
}

/// KV-cache shape from a Hugging Face `config.json` (absent file: `None`).
fn kv_from_config_json(path: &Path) -> Result<Option<KvShape>, String> {
    let Ok(raw) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let v: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| format!("{}: malformed: {e}", path.display()))?;
    let v = v.get("text_config").cloned().unwrap_or(v);
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as u32);
    let (Some(layers), Some(heads), Some(hidden)) = (
        n("num_hidden_layers"),
        n("num_attention_heads"),
        n("hidden_size"),
    ) else {
        return Ok(None);
    };
    let dtype = match v.get("torch_dtype").and_then(|d| d.as_str()) {
        Some("float32") => KvDtype::F32,
        Some("bfloat16") => KvDtype::Bf16,
        _ => KvDtype::F16,
    };
    Ok(Some(KvShape {
        source: path.display().to_string(),
        layers,
        kv_heads: n("num_key_value_heads").unwrap_or(heads),
        head_dim: n("head_dim").unwrap_or(hidden / heads.max(1)),
        dtype,
    }))
}

impl TokenCounter for HfCounter {
    fn info(&self) -> &CounterInfo {
        &self.info
    }

    fn count(&self, text: &str, round_trip: bool) -> Result<Count, CountError> {
        let enc = self
            .tok
            .encode(text, false)
            .map_err(|e| CountError(format!("encode: {e}")))?;
        let ids = enc.get_ids();
        let round_trip = if round_trip {
            let back = self
                .tok
                .decode(ids, false)
                .map_err(|e| CountError(format!("decode: {e}")))?;
            Some(back == text)
        } else {
            None
        };
        Ok(Count {
            tokens: ids.len() as u64,
            round_trip,
        })
    }

    fn count_chat(&self, text: &str) -> Option<Result<u64, CountError>> {
        let t = self.template.as_ref()?;
        Some((|| {
            let rendered = t
                .render(&[ChatMessage {
                    role: "user".into(),
                    content: text.to_string(),
                }])
                .map_err(CountError)?;
            let enc = self
                .tok
                .encode(rendered, false)
                .map_err(|e| CountError(format!("encode: {e}")))?;
            Ok(enc.get_ids().len() as u64)
        })())
    }
}

/// The tiktoken encodings charter ships (inside `tiktoken-rs`), and the pre-tokenizer patterns
/// a `.tiktoken` ranks file can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TiktokenEncoding {
    Cl100kBase,
    O200kBase,
    /// GPT-2 / r50k / p50k pattern (ranks files only).
    R50kBase,
}

/// tiktoken's cl100k_base pre-tokenizer pattern (tiktoken_ext/openai_public.py).
const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";
/// tiktoken's r50k_base / p50k_base (GPT-2) pre-tokenizer pattern.
const R50K_PATTERN: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";

impl TiktokenEncoding {
    /// A built-in encoding by name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.strip_prefix("tiktoken:").unwrap_or(name) {
            "cl100k_base" => Some(Self::Cl100kBase),
            "o200k_base" => Some(Self::O200kBase),
            _ => None,
        }
    }

    /// The pattern for a ranks file named `stem.tiktoken`.
    pub fn pattern_for_file(stem: &str) -> Option<Self> {
        match stem {
            "cl100k_base" => Some(Self::Cl100kBase),
            "o200k_base" | "o200k_harmony" => Some(Self::O200kBase),
            "r50k_base" | "p50k_base" | "gpt2" => Some(Self::R50kBase),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cl100kBase => "cl100k_base",
            Self::O200kBase => "o200k_base",
            Self::R50kBase => "r50k_base",
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Self::Cl100kBase => CL100K_PATTERN,
            Self::O200kBase => tiktoken_rs::O200K_BASE_PAT_STR,
            Self::R50kBase => R50K_PATTERN,
        }
    }
}

/// A tiktoken BPE.
pub struct TiktokenCounter {
    bpe: CoreBPE,
    info: CounterInfo,
}

impl TiktokenCounter {
    /// An encoding shipped inside `tiktoken-rs`.
    pub fn builtin(enc: TiktokenEncoding) -> Result<Self, String> {
        // n_vocab as tiktoken reports it (ranks + special tokens).
        let (bpe, n_vocab) = match enc {
            TiktokenEncoding::Cl100kBase => (tiktoken_rs::cl100k_base(), 100_277),
            TiktokenEncoding::O200kBase => (tiktoken_rs::o200k_base(), 200_019),
            TiktokenEncoding::R50kBase => (tiktoken_rs::r50k_base(), 50_257),
        };
        let bpe = bpe.map_err(|e| format!("cannot build the built-in encoding: {e}"))?;
        Ok(Self {
            bpe,
            info: CounterInfo {
                identity: TokenizerIdentity {
                    kind: TokenizerKind::Tiktoken,
                    source: format!("{} (built into tiktoken-rs 0.12.1)", enc.name()),
                    sha256: None,
                    vocab_size: Some(n_vocab),
                    model: None,
                    api_key_env: None,
                    count_method:
                        "tiktoken encode_ordinary (special-token text counted as ordinary text)"
                            .into(),
                },
                chat_template: None,
                no_round_trip: None,
                kv: None,
            },
        })
    }

    /// A ranks file (`base64-token rank` per line) with `pattern`'s pre-tokenizer.
    pub fn from_file(path: &Path, pattern: TiktokenEncoding) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let mut encoder = rustc_hash::FxHashMap::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = || format!("line {}: expected `BASE64 RANK`", i + 1);
            let (tok, rank) = line.split_once(' ').ok_or_else(bad)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(tok)
                .map_err(|_| bad())?;
            let rank: u32 = rank.trim().parse().map_err(|_| bad())?;
            encoder.insert(bytes, rank);
        }
        if encoder.is_empty() {
            return Err("the ranks file is empty".into());
        }
        let n = encoder.len() as u64;
        let mut ranks: Vec<u32> = encoder.values().copied().collect();
        ranks.sort_unstable();
        ranks.dedup();
        if ranks.len() as u64 != n {
            return Err("two tokens share a rank".into());
        }
        let bpe = CoreBPE::new(encoder, Default::default(), pattern.pattern())
            .map_err(|e| format!("cannot build the BPE: {e}"))?;
        let digest = file_digest(path).map_err(|e| format!("cannot read: {e}"))?;
        Ok(Self {
            bpe,
            info: CounterInfo {
                identity: TokenizerIdentity {
                    kind: TokenizerKind::TiktokenFile,
                    source: path.display().to_string(),
                    sha256: Some(digest.sha256),
                    vocab_size: Some(n),
                    model: None,
                    api_key_env: None,
                    count_method: format!(
                        "tiktoken encode_ordinary with the {} pre-tokenizer pattern",
                        pattern.name()
                    ),
                },
                chat_template: None,
                no_round_trip: None,
                kv: None,
            },
        })
    }
}

impl TokenCounter for TiktokenCounter {
    fn info(&self) -> &CounterInfo {
        &self.info
    }

    fn count(&self, text: &str, round_trip: bool) -> Result<Count, CountError> {
        let ids = self.bpe.encode_ordinary(text);
        let round_trip = if round_trip {
            let back = self
                .bpe
                .decode_bytes(&ids)
                .map_err(|e| CountError(format!("decode: {e:?}")))?;
            Some(back == text.as_bytes())
        } else {
            None
        };
        Ok(Count {
            tokens: ids.len() as u64,
            round_trip,
        })
    }

    fn count_chat(&self, _text: &str) -> Option<Result<u64, CountError>> {
        None
    }
}
