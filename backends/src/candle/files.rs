//! Reading models from disk (GGUF, safetensors directories) and building presets.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::gguf_llama::{QuantizedLlama, MAX_SEQ_LEN};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Llama, LlamaConfig, LlamaEosToks};
use tokenizers::Tokenizer;

use super::convert::{self, Conversion, WeightFormat};
use super::{path_str, presets, tokenizer, Weights};
use crate::{file_digest, ChatTemplate, KvCacheRecord, LoadError, WeightsProvenance};

pub(super) struct Loaded {
    pub weights: Weights,
    pub tokenizer: Option<Tokenizer>,
    pub tokenizer_source: Option<String>,
    pub chat_template: Option<ChatTemplate>,
    pub eos: HashSet<u32>,
    pub vocab_size: usize,
    pub context_limit: usize,
    pub model_name: String,
    pub architecture: String,
    pub dtype: String,
    pub parameters: Option<u64>,
    pub provenance: WeightsProvenance,
    /// The KV cache per token as the configuration describes it (candle keeps it in f32).
    pub kv_cache: Option<KvCacheRecord>,
    /// The converted copy that was loaded instead of the file's own formats.
    pub conversion: Option<Conversion>,
}

/// The f32 KV cache of a Llama configuration.
fn kv_cache(
    layers: usize,
    kv_heads: usize,
    heads: usize,
    hidden: usize,
    source: &str,
) -> Option<KvCacheRecord> {
    let head_dim = hidden.checked_div(heads)?;
    Some(KvCacheRecord::new(
        "f32",
        4,
        layers as u32,
        kv_heads as u32,
        head_dim as u32,
        source,
    ))
}

/// (layers, KV heads, head size) from a GGUF file's `<general.architecture>.block_count`,
/// `attention.head_count(_kv)` and `embedding_length`; the missing key when there is none.
pub(crate) fn gguf_kv_shape(
    content: &candle_core::quantized::gguf_file::Content,
) -> Result<(u32, u32, u32), String> {
    let md = |k: &str| content.metadata.get(k);
    let arch = md("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| "llama".into());
    let num = |k: &str| {
        md(&format!("{arch}.{k}"))
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| format!("no {arch}.{k} in the GGUF metadata"))
    };
    let heads = num("attention.head_count")?;
    if heads == 0 {
        return Err(format!("{arch}.attention.head_count is 0"));
    }
    Ok((
        num("block_count")?,
        num("attention.head_count_kv").unwrap_or(heads),
        num("embedding_length")? / heads,
    ))
}

fn config_kv_cache(
    c: &candle_transformers::models::llama::Config,
    source: &str,
) -> Option<KvCacheRecord> {
    kv_cache(
        c.num_hidden_layers,
        c.num_key_value_heads,
        c.num_attention_heads,
        c.hidden_size,
        source,
    )
}

fn candle_err(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> LoadError {
    let context = context.into();
    move |source| LoadError::Candle { context, source }
}

pub(super) fn load_preset(name: &str, seed: u64) -> Result<Loaded, LoadError> {
    let preset = presets::find(name).ok_or_else(|| LoadError::UnknownPreset {
        name: name.to_string(),
        known: presets::names(),
    })?;
    let config = preset.config();
    let tensors = presets::random_weights(&config, seed, &Device::Cpu)
        .map_err(candle_err(format!("generating weights for preset {name}")))?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let model = Llama::load(vb, &config).map_err(candle_err(format!("building preset {name}")))?;
    Ok(Loaded {
        kv_cache: config_kv_cache(&config, "preset configuration"),
        vocab_size: config.vocab_size,
        context_limit: config.max_position_embeddings,
        parameters: Some(presets::parameter_count(&config)),
        weights: Weights::Full {
            model: Arc::new(model),
            config,
        },
        tokenizer: None,
        tokenizer_source: None,
        chat_template: None,
        eos: HashSet::new(),
        model_name: format!("preset {name} (random weights, seed {seed})"),
        architecture: "llama".into(),
        dtype: "f32".into(),
        provenance: WeightsProvenance::RandomPreset {
            preset: name.to_string(),
            seed,
        },
        conversion: None,
    })
}

/// Load a `.gguf` file (converting formats without a fast kernel as `weights` asks, into
/// `cache`) or a safetensors directory.
pub(super) fn load_path(
    path: &Path,
    weights: WeightFormat,
    cache: &Path,
) -> Result<Loaded, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound {
            path: path.to_path_buf(),
        },
        _ => LoadError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        if weights.is_explicit_target() {
            return Err(LoadError::Setting {
                what: format!(
                    "--weights {}: converts GGUF weights; {} is a safetensors directory (f32)",
                    weights.as_str(),
                    path.display()
                ),
            });
        }
        load_safetensors_dir(path)
    } else {
        load_gguf(path, weights, cache)
    }
}

fn invalid(path: &Path, what: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn load_gguf(path: &Path, weights: WeightFormat, cache: &Path) -> Result<Loaded, LoadError> {
    let unreadable = |e| LoadError::Unreadable {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| invalid(path, format!("not a readable GGUF file ({e})")))?;
    let md_str = |k: &str| {
        content
            .metadata
            .get(k)
            .and_then(|v| v.to_string().ok().cloned())
    };
    let arch = md_str("general.architecture").unwrap_or_else(|| "unknown".into());
    if arch != "llama" {
        return Err(LoadError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            found: arch,
            expected: "llama (Llama family: Llama 2/3, SmolLM2, TinyLlama, Mistral)".into(),
        });
    }
    let name = md_str("general.name").unwrap_or_else(|| path_str(path));
    let tok = tokenizer::from_gguf(&content)?;
    let eos: HashSet<u32> = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok())
        .into_iter()
        .collect();
    let vocab_size = content
        .metadata
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.to_vec().ok().map(|a| a.len()))
        .unwrap_or_else(|| tok.get_vocab_size(true));
    let ctx = content
        .metadata
        .get("llama.context_length")
        .and_then(|v| v.to_u32().ok())
        .map(|c| c as usize)
        .unwrap_or(MAX_SEQ_LEN)
        .min(MAX_SEQ_LEN);
    let parameters: u64 = content
        .tensor_infos
        .values()
        .map(|t| t.shape.elem_count() as u64)
        .sum();
    let token_str = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_u32().ok())
            .and_then(|id| tok.id_to_token(id))
            .unwrap_or_default()
    };
    let chat_template = match md_str("tokenizer.chat_template") {
        Some(t) => Some(
            ChatTemplate::new(
                &t,
                &token_str("tokenizer.ggml.bos_token_id"),
                &token_str("tokenizer.ggml.eos_token_id"),
                "gguf-metadata",
            )
            .map_err(|e| invalid(path, e))?,
        ),
        None => None,
    };
    let gguf_kv = gguf_kv_shape(&content)
        .ok()
        .map(|(layers, kv_heads, head_dim)| {
            KvCacheRecord::new(
            "f32",
            4,
            layers,
            kv_heads,
            head_dim,
            "gguf metadata (block_count, attention.head_count_kv, embedding_length ÷ head_count)",
        )
        });
    let digest = file_digest(path).map_err(unreadable)?;
    let conversion = convert::convert_gguf(path, &digest.sha256, &content, weights, cache)?;
    // The converted copy, when there is one, is what runs; its metadata is the source's.
    let (content, mut file, run_path) = match &conversion {
        Some(c) => {
            let mut f = File::open(&c.path).map_err(|e| LoadError::Unreadable {
                path: c.path.clone(),
                source: e,
            })?;
            let ct = gguf_file::Content::read(&mut f).map_err(|e| {
                invalid(
                    &c.path,
                    format!("converted copy is not a readable GGUF file ({e}); delete it to convert again"),
                )
            })?;
            (ct, f, c.path.as_path())
        }
        None => (content, file, path),
    };
    let dtypes: Vec<String> = content
        .tensor_infos
        .values()
        .map(|t| convert::dtype_name(t.ggml_dtype))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let weights = QuantizedLlama::from_gguf(content, &mut file, &Device::Cpu).map_err(|e| {
        invalid(
            run_path,
            format!("cannot load Llama weights from GGUF ({e})"),
        )
    })?;
    Ok(Loaded {
        kv_cache: gguf_kv,
        weights: Weights::Quantized(weights),
        tokenizer: Some(tok),
        tokenizer_source: Some("gguf-metadata".into()),
        chat_template,
        eos,
        vocab_size,
        context_limit: ctx,
        model_name: name,
        architecture: arch,
        dtype: format!("gguf {}", dtypes.join("+")),
        parameters: Some(parameters),
        provenance: WeightsProvenance::Files {
            format: "gguf".into(),
            files: vec![digest],
        },
        conversion,
    })
}

fn load_safetensors_dir(dir: &Path) -> Result<Loaded, LoadError> {
    let config_path = dir.join("config.json");
    let raw = std::fs::read_to_string(&config_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => invalid(
            dir,
            "directory has no config.json (expected config.json, *.safetensors and tokenizer.json)",
        ),
        _ => LoadError::Unreadable {
            path: config_path.clone(),
            source: e,
        },
    })?;
    let malformed = |what: String| LoadError::MalformedConfig {
        path: config_path.clone(),
        what,
    };
    let value: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| malformed(e.to_string()))?;
    if let Some(mt) = value.get("model_type").and_then(|v| v.as_str()) {
        if mt != "llama" {
            return Err(LoadError::UnsupportedArchitecture {
                path: config_path.clone(),
                found: mt.to_string(),
                expected: "llama".into(),
            });
        }
    }
    let llama_cfg: LlamaConfig = serde_json::from_value(value)
        .map_err(|e| malformed(format!("{e} (expected a Llama config)")))?;
    if llama_cfg.num_attention_heads == 0
        || !llama_cfg
            .hidden_size
            .is_multiple_of(llama_cfg.num_attention_heads)
    {
        return Err(malformed(
            "hidden_size must be a positive multiple of num_attention_heads".into(),
        ));
    }
    let eos: HashSet<u32> = match &llama_cfg.eos_token_id {
        Some(LlamaEosToks::Single(t)) => [*t].into_iter().collect(),
        Some(LlamaEosToks::Multiple(v)) => v.iter().copied().collect(),
        None => HashSet::new(),
    };
    let config = llama_cfg.into_config(false);

    let mut st_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LoadError::Unreadable {
            path: dir.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    st_files.sort();
    if st_files.is_empty() {
        return Err(invalid(dir, "directory has no *.safetensors files"));
    }
    // candle's Llama::load panics on a missing tensor: check names and shapes first.
    // SAFETY: the files are memory-mapped read-only; charter does not modify them while loaded.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&st_files) }
        .map_err(|e| invalid(dir, format!("cannot read safetensors ({e})")))?;
    for (name, shape) in presets::llama_tensor_shapes(&config) {
        let view = st
            .get(&name)
            .map_err(|_| invalid(dir, format!("safetensors has no tensor `{name}`")))?;
        if view.shape() != shape.as_slice() {
            return Err(invalid(
                dir,
                format!(
                    "tensor `{name}` has shape {:?}, config.json implies {:?}",
                    view.shape(),
                    shape
                ),
            ));
        }
    }
    drop(st);
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(invalid(dir, "directory has no tokenizer.json"));
    }
    let tok = tokenizer::from_file(&tok_path)?;
    let chat_template = chat_template_from_config(&dir.join("tokenizer_config.json"))?;
    // SAFETY: as above.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&st_files, DType::F32, &Device::Cpu) }
        .map_err(|e| invalid(dir, format!("cannot map safetensors ({e})")))?;
    let model =
        Llama::load(vb, &config).map_err(|e| invalid(dir, format!("cannot build Llama ({e})")))?;
    let mut digests = Vec::new();
    for f in &st_files {
        digests.push(file_digest(f).map_err(|e| LoadError::Unreadable {
            path: f.clone(),
            source: e,
        })?);
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path_str(dir));
    Ok(Loaded {
        kv_cache: config_kv_cache(&config, "config.json"),
        vocab_size: config.vocab_size,
        context_limit: config.max_position_embeddings,
        parameters: Some(presets::parameter_count(&config)),
        weights: Weights::Full {
            model: Arc::new(model),
            config,
        },
        tokenizer: Some(tok),
        tokenizer_source: Some(path_str(&tok_path)),
        chat_template,
        eos,
        model_name: name,
        architecture: "llama".into(),
        dtype: "f32 (from safetensors)".into(),
        provenance: WeightsProvenance::Files {
            format: "safetensors".into(),
            files: digests,
        },
        conversion: None,
    })
}

/// The `chat_template` of a Hugging Face `tokenizer_config.json`, if the file has one.
pub(crate) fn chat_template_from_config(path: &Path) -> Result<Option<ChatTemplate>, LoadError> {
    let Ok(raw) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let v: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| LoadError::MalformedConfig {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    let Some(t) = v.get("chat_template").and_then(|t| t.as_str()) else {
        return Ok(None);
    };
    let special = |k: &str| match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    };
    ChatTemplate::new(
        t,
        &special("bos_token"),
        &special("eos_token"),
        &path_str(path),
    )
    .map(Some)
    .map_err(|e| invalid(path, e))
}

/// Write a safetensors model directory (config.json + model.safetensors, plus tokenizer.json
/// when given) with a preset-like config and random weights: used by tests and examples.
pub fn write_random_llama_dir(
    dir: &Path,
    cfg: &LlamaConfig,
    seed: u64,
    tokenizer: Option<&Tokenizer>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    std::fs::create_dir_all(dir)?;
    let config = cfg.clone().into_config(false);
    let tensors = presets::random_weights(&config, seed, &Device::Cpu)?;
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let mut json = serde_json::json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
    });
    if let Some(LlamaEosToks::Single(e)) = &cfg.eos_token_id {
        json["eos_token_id"] = serde_json::json!(e);
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    if let Some(t) = tokenizer {
        t.save(dir.join("tokenizer.json"), false)?;
    }
    Ok(())
}
