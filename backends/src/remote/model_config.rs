//! `--model-config`: the served model's architecture, so that a remote run can print what its
//! KV cache costs per token beside the RAM fit of a watched server. Read from a Hugging Face
//! `config.json` (layers, KV heads, head size; the cache in the model's `torch_dtype`, which is
//! what vLLM and TGI keep unless told otherwise) or a `.gguf` file's metadata (the cache in f16,
//! llama.cpp's default `--cache-type-k/v`). The server's own cache settings are not visible to
//! charter, so the record says which dtype was assumed.

use std::path::Path;

use charter_record::KvCacheRecord;
use serde::Deserialize;

use crate::LoadError;

#[derive(Deserialize)]
struct HfConfig {
    num_hidden_layers: u32,
    num_attention_heads: u32,
    num_key_value_heads: Option<u32>,
    hidden_size: u32,
    head_dim: Option<u32>,
    torch_dtype: Option<String>,
}

/// The KV cache per token of the model described by `path` (a `config.json` or a `.gguf`).
pub fn kv_cache(path: &Path) -> Result<KvCacheRecord, LoadError> {
    let bad = |what: String| LoadError::MalformedConfig {
        path: path.to_path_buf(),
        what,
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return gguf_kv_cache(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let c: HfConfig = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "{e} (expected a Hugging Face config.json with num_hidden_layers, num_attention_heads, hidden_size)"
        ))
    })?;
    if c.num_attention_heads == 0 {
        return Err(bad("num_attention_heads is 0".into()));
    }
    let (dtype, bytes) = match c.torch_dtype.as_deref() {
        Some("float32") => ("f32", 4),
        Some("bfloat16") => ("bf16", 2),
        Some("float16") | None => ("f16", 2),
        Some(other) => {
            return Err(bad(format!(
                "torch_dtype `{other}` is not float32, float16 or bfloat16"
            )))
        }
    };
    Ok(KvCacheRecord::new(
        dtype,
        bytes,
        c.num_hidden_layers,
        c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads),
        "--model-config config.json; the server's cache assumed in the model's torch_dtype",
    ))
}

/// From a GGUF file's metadata, read as the candle backend reads it.
fn gguf_kv_cache(path: &Path) -> Result<KvCacheRecord, LoadError> {
    let mut f = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let bad = |what: String| LoadError::Invalid {
        path: path.to_path_buf(),
        what,
    };
    let content = candle_core::quantized::gguf_file::Content::read(&mut f)
        .map_err(|e| bad(format!("not a GGUF file ({e})")))?;
    let (layers, kv_heads, head_dim) =
        crate::candle::files::gguf_kv_shape(&content).map_err(bad)?;
    Ok(KvCacheRecord::new(
        "f16",
        2,
        layers,
        kv_heads,
        head_dim,
        "--model-config GGUF metadata; the server's cache assumed f16 (llama.cpp's default)",
    ))
}

/// `--model-config PATH: <the I/O error>` (not the model-path message: this is a side file).
fn io_error(path: &Path, e: std::io::Error) -> LoadError {
    LoadError::Setting {
        what: format!("--model-config {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_json_gives_the_cache_in_its_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        // SmolLM2-135M's shape.
        std::fs::write(
            &p,
            r#"{"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "hidden_size": 576, "torch_dtype": "bfloat16"}"#,
        )
        .unwrap();
        let kv = kv_cache(&p).unwrap();
        assert_eq!((kv.layers, kv.kv_heads, kv.head_dim), (30, 3, 64));
        assert_eq!(kv.bytes_per_token, 30 * 2 * 3 * 64 * 2);
        assert_eq!(kv.dtype, "bf16");
    }

    #[test]
    fn a_bad_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"hidden_size": 576}"#).unwrap();
        let e = kv_cache(&p).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("num_hidden_layers"),
            "{e}"
        );
        let e = kv_cache(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
