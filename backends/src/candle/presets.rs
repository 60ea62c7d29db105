//! Named Llama-architecture shapes with deterministic random weights (no download needed).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_transformers::models::llama::{Config, LlamaConfig};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// A named architecture preset.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub rope_theta: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

/// The presets charter knows. The first is the default.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny-15m",
        description: "llama2.c stories15M shape: 6 layers, dim 288, 32k vocab, tied embeddings (~15M parameters)",
        hidden_size: 288,
        intermediate_size: 768,
        vocab_size: 32000,
        layers: 6,
        heads: 6,
        kv_heads: 6,
        rope_theta: 10_000.0,
        max_position_embeddings: 2048,
        tie_word_embeddings: true,
    },
    Preset {
        name: "small-110m",
        description: "llama2.c stories110M shape: 12 layers, dim 768, 32k vocab, tied embeddings (~110M parameters)",
        hidden_size: 768,
        intermediate_size: 2048,
        vocab_size: 32000,
        layers: 12,
        heads: 12,
        kv_heads: 12,
        rope_theta: 10_000.0,
        max_position_embeddings: 2048,
        tie_word_embeddings: true,
    },
    Preset {
        name: "smollm2-135m",
        description: "SmolLM2-135M shape: 30 layers, dim 576, GQA 9/3 heads, 49k vocab, tied embeddings (~135M parameters)",
        hidden_size: 576,
        intermediate_size: 1536,
        vocab_size: 49152,
        layers: 30,
        heads: 9,
        kv_heads: 3,
        rope_theta: 100_000.0,
        max_position_embeddings: 8192,
        tie_word_embeddings: true,
    },
];

pub const DEFAULT_PRESET: &str = "tiny-15m";

/// Look a preset up by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Names of all presets, comma-separated (for error messages and help).
pub fn names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Preset {
    /// The Hugging Face style config of this shape.
    pub fn llama_config(&self) -> LlamaConfig {
        LlamaConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            vocab_size: self.vocab_size,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            num_key_value_heads: Some(self.kv_heads),
            rms_norm_eps: 1e-5,
            rope_theta: self.rope_theta,
            bos_token_id: None,
            eos_token_id: None,
            rope_scaling: None,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: Some(self.tie_word_embeddings),
        }
    }

    pub fn config(&self) -> Config {
        self.llama_config().into_config(false)
    }
}

/// Names and shapes of the tensors candle's Llama reads, in a fixed order.
pub fn llama_tensor_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden_size;
    let head_dim = h / cfg.num_attention_heads;
    let kv = head_dim * cfg.num_key_value_heads;
    let i = cfg.intermediate_size;
    let mut v = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
    )];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        v.push((format!("{p}.self_attn.q_proj.weight"), vec![h, h]));
        v.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
        v.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
        v.push((format!("{p}.self_attn.o_proj.weight"), vec![h, h]));
        v.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
        v.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
        v.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
        v.push((format!("{p}.input_layernorm.weight"), vec![h]));
        v.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
    }
    v.push(("model.norm.weight".to_string(), vec![h]));
    if !cfg.tie_word_embeddings {
        v.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, h]));
    }
    v
}

/// Deterministic random weights: N(0, 0.02) for matrices, ones for norms, from `seed`.
///
/// The tensors are plain constants (not `Var`s), so no autograd graph is ever built on them.
pub fn random_weights(
    cfg: &Config,
    seed: u64,
    device: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
    let mut out = HashMap::new();
    for (name, shape) in llama_tensor_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if shape.len() == 1 {
            vec![1.0; n]
        } else {
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        };
        let t = Tensor::from_vec(data, shape, device)?.detach();
        out.insert(name, t);
    }
    Ok(out)
}

/// Parameter count of a Llama config (tied embeddings counted once).
pub fn parameter_count(cfg: &Config) -> u64 {
    llama_tensor_shapes(cfg)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_sizes_match_their_names() {
        let count = |n: &str| parameter_count(&find(n).unwrap().config());
        let m = |n: &str| count(n) as f64 / 1e6;
        assert!((14.0..17.0).contains(&m("tiny-15m")), "{}", m("tiny-15m"));
        assert!(
            (100.0..120.0).contains(&m("small-110m")),
            "{}",
            m("small-110m")
        );
        assert!(
            (130.0..140.0).contains(&m("smollm2-135m")),
            "{}",
            m("smollm2-135m")
        );
        assert_eq!(PRESETS[0].name, DEFAULT_PRESET);
    }

    #[test]
    fn random_weights_are_deterministic_and_detached() {
        let cfg = find("tiny-15m").unwrap().config();
        let a = random_weights(&cfg, 7, &Device::Cpu).unwrap();
        let b = random_weights(&cfg, 7, &Device::Cpu).unwrap();
        let c = random_weights(&cfg, 8, &Device::Cpu).unwrap();
        let key = "model.layers.3.mlp.up_proj.weight";
        let v =
            |m: &HashMap<String, Tensor>| m[key].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&a), v(&b));
        assert_ne!(v(&a), v(&c));
        assert!(a.values().all(|t| !t.is_variable()));
    }
}
