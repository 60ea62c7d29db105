//! Tokenizers from `tokenizer.json` or GGUF metadata, checked to round-trip before use.

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::Tokenizer;

use crate::LoadError;

/// Text every tokenizer must encode and decode back unchanged.
pub const ROUND_TRIP_TEXT: &str =
    "The quick brown fox jumps over the lazy dog. It cost 12,345 euros; naïve café!\nSecond line.";

/// Build a tokenizer from GGUF metadata, honouring `tokenizer.ggml.add_space_prefix`.
///
/// candle's `from_gguf` gives GPT-2 style byte-level BPE a leading space; models whose metadata
/// says `add_space_prefix = false` (SmolLM2) would then see a token stream they were not trained
/// on, so the pre-tokenizer is rebuilt without it (SmolLM2's `smollm` pre-tokenizer also splits
/// digits one by one, as its tokenizer.json does).
pub fn from_gguf(ct: &gguf_file::Content) -> Result<Tokenizer, LoadError> {
    let err = |what: String| LoadError::Tokenizer {
        source_name: "gguf-metadata".into(),
        what,
    };
    let mut tok = Tokenizer::from_gguf(ct).map_err(|e| err(e.to_string()))?;
    let md = |k: &str| ct.metadata.get(k);
    let add_space = md("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    let pre = md("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    let is_plain_gpt2 = !matches!(pre.as_str(), "qwen2" | "smaug-bpe" | "lfm2" | "llama3");
    if is_plain_gpt2 && !add_space {
        let byte_level = ByteLevel::new(false, true, true);
        if pre == "smollm" {
            tok.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        } else {
            tok.with_pre_tokenizer(Some(byte_level));
        }
    }
    Ok(tok)
}

/// Load a tokenizer given on the command line: the tokenizer embedded in a `.gguf` model file's
/// metadata (the same one charter uses when it runs that model), else a `tokenizer.json`.
pub fn from_path(path: &std::path::Path) -> Result<Tokenizer, LoadError> {
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !is_gguf {
        return from_file(path);
    }
    let err = |what: String| LoadError::Tokenizer {
        source_name: path.display().to_string(),
        what,
    };
    let mut f = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let ct = gguf_file::Content::read(&mut f)
        .map_err(|e| err(format!("not a readable GGUF file ({e})")))?;
    from_gguf(&ct).map_err(|e| match e {
        LoadError::Tokenizer { what, .. } => err(what),
        other => other,
    })
}

/// Load `tokenizer.json`.
pub fn from_file(path: &std::path::Path) -> Result<Tokenizer, LoadError> {
    Tokenizer::from_file(path).map_err(|e| LoadError::Tokenizer {
        source_name: path.display().to_string(),
        what: e.to_string(),
    })
}

/// Fail unless `tok` decodes its own encoding of [`ROUND_TRIP_TEXT`] back to the same text.
pub fn check_round_trip(tok: &Tokenizer, source_name: &str) -> Result<(), LoadError> {
    let err = |what: String| LoadError::Tokenizer {
        source_name: source_name.to_string(),
        what,
    };
    let enc = tok
        .encode(ROUND_TRIP_TEXT, false)
        .map_err(|e| err(e.to_string()))?;
    let out = tok
        .decode(enc.get_ids(), false)
        .map_err(|e| err(e.to_string()))?;
    if out != ROUND_TRIP_TEXT {
        return Err(LoadError::TokenizerRoundTrip {
            source_name: source_name.to_string(),
            input: ROUND_TRIP_TEXT.to_string(),
            output: out,
        });
    }
    Ok(())
}
