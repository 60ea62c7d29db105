//! Reference loops for charter's benchmarks.
//!
//! [`RawDecode`] is the plain candle generation loop a user would write by hand (prefill the
//! prompt, then one greedy token at a time with the KV cache), over the same preset weights that
//! `charter profile` uses: the denominator of the "harness tax" ratio.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Cache, Config, Llama};
use charter_backends::candle::presets;

/// A preset model driven directly through candle, without charter.
pub struct RawDecode {
    model: Llama,
    config: Config,
}

impl RawDecode {
    /// Build preset `name` with weights from `seed` (identical to charter's `--preset`/`--seed`).
    pub fn preset(name: &str, seed: u64) -> candle_core::Result<Self> {
        let preset = presets::find(name).expect("known preset");
        let config = preset.config();
        let tensors = presets::random_weights(&config, seed, &Device::Cpu)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = Llama::load(vb, &config)?;
        Ok(Self { model, config })
    }

    /// Prefill `prompt`, then decode `n` tokens greedily; returns the generated ids.
    pub fn generate(&self, prompt: &[u32], n: usize) -> candle_core::Result<Vec<u32>> {
        let mut cache = Cache::new(true, DType::F32, &self.config, &Device::Cpu)?;
        let mut out = Vec::with_capacity(n);
        let mut input = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
        let mut pos = 0;
        for _ in 0..n {
            let len = input.dim(1)?;
            let logits = self.model.forward(&input, pos, &mut cache)?.squeeze(0)?;
            let next = logits.argmax(0)?.to_scalar::<u32>()?;
            out.push(next);
            pos += len;
            input = Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?;
        }
        Ok(out)
    }
}
