//! Decoder mode: causal language models exported in Hugging Face Optimum's decoder-with-past
//! layout, driven token by token with their KV cache.
//!
//! Inputs `input_ids`, optional `attention_mask` and `position_ids`, `past_key_values.{i}.key`
//! and `.value` (f32, `[batch, kv_heads, past_len, head_dim]`), optional `use_cache_branch`
//! (merged exports); outputs `logits` (f32, `[batch, seq, vocab]`) and `present.{i}.key/value`.
//! The first call (prefill) feeds the whole prompt with an empty cache; every later call feeds
//! one token and the previous call's `present.*` values as `past_key_values.*`, never copying the
//! cache out of ONNX Runtime.

use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Outlet, Tensor, TensorElementType, TensorRef, ValueType};

/// What charter found in a decoder's signature.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderLayout {
    pub layers: usize,
    pub kv_heads: i64,
    pub head_dim: i64,
    pub value_head_dim: i64,
    pub has_attention_mask: bool,
    pub has_position_ids: bool,
    pub has_cache_branch: bool,
    /// From the logits output, when that dimension is fixed.
    pub vocab: Option<usize>,
    /// `past_key_values.0.key`, `past_key_values.0.value`, `past_key_values.1.key`, ...
    pub past_names: Vec<String>,
    /// `present.0.key`, ... in the same order.
    pub present_names: Vec<String>,
}

impl DecoderLayout {
    /// KV-cache bytes per token of context, from the cache inputs' shapes (f32; keys and
    /// values may have different head sizes).
    pub fn kv_cache(&self) -> charter_record::KvCacheRecord {
        let mut kv = charter_record::KvCacheRecord::new(
            "f32",
            4,
            self.layers as u32,
            self.kv_heads as u32,
            self.head_dim as u32,
            "ONNX graph: past_key_values input shapes",
        );
        kv.bytes_per_token =
            self.layers as u64 * (self.kv_heads * (self.head_dim + self.value_head_dim) * 4) as u64;
        kv
    }

    pub fn describe(&self) -> String {
        format!(
            "causal LM decoder (Optimum KV-cache layout): {} layers, {} KV heads × {}",
            self.layers, self.kv_heads, self.head_dim
        )
    }
}

/// Whether the signature looks like a decoder with past at all (names only).
pub fn looks_like_decoder(inputs: &[Outlet], outputs: &[Outlet]) -> bool {
    inputs.iter().any(|i| i.name() == "input_ids")
        && inputs.iter().any(|i| i.name() == "past_key_values.0.key")
        && outputs.iter().any(|o| o.name() == "logits")
        && outputs.iter().any(|o| o.name() == "present.0.key")
}

fn tensor(outlet: &Outlet) -> Option<(TensorElementType, &[i64])> {
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape)),
        _ => None,
    }
}

/// Check the full layout; the error says what does not fit.
pub fn layout(inputs: &[Outlet], outputs: &[Outlet]) -> Result<DecoderLayout, String> {
    if !looks_like_decoder(inputs, outputs) {
        let names = |v: &[Outlet]| v.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ");
        return Err(format!(
            "not in the Optimum decoder layout (expected inputs input_ids, past_key_values.{{i}}.key/value and outputs logits, present.{{i}}.key/value; found inputs [{}], outputs [{}])",
            names(inputs),
            names(outputs)
        ));
    }
    let input = |n: &str| inputs.iter().find(|i| i.name() == n);
    let output = |n: &str| outputs.iter().find(|o| o.name() == n);
    let mut layers = 0;
    while input(&format!("past_key_values.{layers}.key")).is_some() {
        layers += 1;
    }
    let mut past_names = Vec::new();
    let mut present_names = Vec::new();
    let mut dims = None;
    let mut value_head_dim = 0;
    for i in 0..layers {
        for kind in ["key", "value"] {
            let past = format!("past_key_values.{i}.{kind}");
            let present = format!("present.{i}.{kind}");
            let p = input(&past).ok_or_else(|| format!("input `{past}` is missing"))?;
            if output(&present).is_none() {
                return Err(format!("output `{present}` is missing"));
            }
            let (ty, shape) = tensor(p).ok_or_else(|| format!("`{past}` is not a tensor"))?;
            if ty != TensorElementType::Float32 {
                return Err(format!(
                    "`{past}` is {}; charter's decoder mode supports f32 KV caches",
                    super::inputs::type_name(ty)
                ));
            }
            if shape.len() != 4 || shape[1] < 1 || shape[3] < 1 {
                return Err(format!(
                    "`{past}` has shape {shape:?}; expected [batch, kv_heads, past_len, head_dim] with fixed kv_heads and head_dim"
                ));
            }
            if kind == "key" {
                match dims {
                    None => dims = Some((shape[1], shape[3])),
                    Some(d) if d != (shape[1], shape[3]) => {
                        return Err(format!("`{past}` has shape {shape:?}, unlike layer 0"))
                    }
                    _ => {}
                }
            } else {
                value_head_dim = shape[3];
            }
            past_names.push(past);
            present_names.push(present);
        }
    }
    let (kv_heads, head_dim) = dims.ok_or("no KV cache inputs")?;
    let (logits_ty, logits_shape) = output("logits")
        .and_then(tensor)
        .ok_or("output `logits` is not a tensor")?;
    if logits_ty != TensorElementType::Float32 || logits_shape.len() != 3 {
        return Err(format!(
            "output `logits` is {}{logits_shape:?}; expected f32 [batch, seq, vocab]",
            super::inputs::type_name(logits_ty)
        ));
    }
    let known = |n: &str| {
        n == "input_ids"
            || n == "attention_mask"
            || n == "position_ids"
            || n == "use_cache_branch"
            || past_names.iter().any(|p| p == n)
    };
    if let Some(extra) = inputs.iter().find(|i| !known(i.name())) {
        return Err(format!(
            "input `{}` is not part of the Optimum decoder layout",
            extra.name()
        ));
    }
    Ok(DecoderLayout {
        layers,
        kv_heads,
        head_dim,
        value_head_dim,
        has_attention_mask: input("attention_mask").is_some(),
        has_position_ids: input("position_ids").is_some(),
        has_cache_branch: input("use_cache_branch").is_some(),
        vocab: usize::try_from(logits_shape[2]).ok().filter(|&v| v > 0),
        past_names,
        present_names,
    })
}

/// The KV cache of one sequence in flight: ONNX Runtime values, owned by the calling thread
/// for the length of one request.
pub struct Cache {
    past: Vec<DynValue>,
    len: usize,
}

impl Cache {
    /// An empty cache (`past_len = 0`).
    pub fn empty(l: &DecoderLayout) -> ort::Result<Self> {
        let past = (0..l.layers * 2)
            .map(|k| {
                let d = if k % 2 == 0 {
                    l.head_dim
                } else {
                    l.value_head_dim
                };
                Ok(
                    Tensor::<f32>::from_array((vec![1i64, l.kv_heads, 0, d], Vec::new()))?
                        .into_dyn(),
                )
            })
            .collect::<ort::Result<Vec<_>>>()?;
        Ok(Self { past, len: 0 })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Run `ids` (positions `cache.len()..`) through the decoder, append to the cache, and return
/// the logits of the last position.
pub fn step(
    session: &mut Session,
    l: &DecoderLayout,
    cache: &mut Cache,
    ids: &[u32],
) -> Result<Vec<f32>, String> {
    let n = ids.len();
    let total = cache.len + n;
    let ids_data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
    let mask: Vec<i64> = vec![1; total];
    let positions: Vec<i64> = (cache.len as i64..total as i64).collect();
    let branch = [cache.len > 0];
    let e = |what: &str, err: ort::Error| format!("{what}: {err}");
    let mut feed: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(4 + cache.past.len());
    feed.push((
        "input_ids",
        TensorRef::from_array_view((vec![1i64, n as i64], ids_data.as_slice()))
            .map_err(|x| e("input_ids", x))?
            .into(),
    ));
    if l.has_attention_mask {
        feed.push((
            "attention_mask",
            TensorRef::from_array_view((vec![1i64, total as i64], mask.as_slice()))
                .map_err(|x| e("attention_mask", x))?
                .into(),
        ));
    }
    if l.has_position_ids {
        feed.push((
            "position_ids",
            TensorRef::from_array_view((vec![1i64, n as i64], positions.as_slice()))
                .map_err(|x| e("position_ids", x))?
                .into(),
        ));
    }
    if l.has_cache_branch {
        feed.push((
            "use_cache_branch",
            TensorRef::from_array_view((vec![1i64], &branch[..]))
                .map_err(|x| e("use_cache_branch", x))?
                .into(),
        ));
    }
    for (name, v) in l.past_names.iter().zip(&cache.past) {
        feed.push((name.as_str(), v.into()));
    }
    let mut out = session.run(feed).map_err(|x| e("inference", x))?;
    let logits = {
        let (shape, data) = out["logits"]
            .try_extract_tensor::<f32>()
            .map_err(|x| e("logits", x))?;
        let vocab = *shape.last().unwrap_or(&0) as usize;
        if shape.len() != 3 || shape[1] as usize != n || vocab == 0 {
            return Err(format!(
                "logits have shape {shape:?}; expected [1, {n}, vocab]"
            ));
        }
        data[(n - 1) * vocab..n * vocab].to_vec()
    };
    let mut present = Vec::with_capacity(l.present_names.len());
    for name in &l.present_names {
        present.push(
            out.remove(name.as_str())
                .ok_or_else(|| format!("output `{name}` missing"))?,
        );
    }
    drop(out);
    cache.past = present;
    cache.len = total;
    Ok(logits)
}

/// Greedy argmax (first maximum), as candle's `LogitsProcessor` does for temperature 0.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy generation WITHOUT the cache: every step recomputes the whole sequence from an empty
/// cache. Slow; it exists to check the cached path (they must choose the same tokens).
pub fn greedy_without_cache(
    session: &mut Session,
    l: &DecoderLayout,
    prompt: &[u32],
    n: usize,
) -> Result<Vec<u32>, String> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut cache = Cache::empty(l).map_err(|e| e.to_string())?;
        let next = argmax(&step(session, l, &mut cache, &seq)?);
        out.push(next);
        seq.push(next);
    }
    Ok(out)
}

/// `eos_token_id`, context length and vocabulary size from `config.json` and
/// `generation_config.json` next to the model (Optimum exports carry both).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideConfig {
    pub eos: Vec<u32>,
    pub context: Option<usize>,
    pub vocab: Option<usize>,
    /// The files that were read.
    pub sources: Vec<String>,
}

pub fn side_config(model: &Path) -> Result<SideConfig, String> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let mut cfg = SideConfig::default();
    for name in ["config.json", "generation_config.json"] {
        let p = dir.join(name);
        if !p.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        match &v["eos_token_id"] {
            serde_json::Value::Number(n) => cfg.eos.extend(n.as_u64().map(|x| x as u32)),
            serde_json::Value::Array(a) => cfg
                .eos
                .extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32)),
            _ => {}
        }
        for key in ["max_position_embeddings", "n_positions", "max_seq_len"] {
            if let Some(c) = v[key].as_u64() {
                cfg.context.get_or_insert(c as usize);
            }
        }
        if let Some(n) = v["vocab_size"].as_u64() {
            cfg.vocab.get_or_insert(n as usize);
        }
        cfg.sources.push(p.display().to_string());
    }
    cfg.eos.sort_unstable();
    cfg.eos.dedup();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[5.0]), 0);
    }

    #[test]
    fn side_config_reads_eos_lists_and_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"eos_token_id": [2, 0], "max_position_embeddings": 256, "vocab_size": 512}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("generation_config.json"),
            r#"{"eos_token_id": 7}"#,
        )
        .unwrap();
        let c = side_config(&dir.path().join("model.onnx")).unwrap();
        assert_eq!(c.eos, vec![0, 2, 7]);
        assert_eq!((c.context, c.vocab), (Some(256), Some(512)));
        assert_eq!(c.sources.len(), 2);
    }
}
