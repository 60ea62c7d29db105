//! The quantized Llama that runs dense GGUF models: candle-transformers 0.11.1's
//! `quantized_llama` (MIT OR Apache-2.0, by the candle authors), trimmed to the dense Llama
//! charter loads, with three changes for speed on a CPU:
//!
//! - Prefill: candle's quantized matmul computes every (prompt row, weight row) dot product on
//!   its own, so prefilling 128 tokens costs about as much as decoding 128 (on a CPU without
//!   AVX-VNNI candle has no tiled q8_0 kernel, and none for rows that are not a multiple of
//!   256, like SmolLM2's 576). A forward of at least [`PREFILL_F32_MIN_ROWS`] rows therefore
//!   dequantizes each weight matrix to f32 as it reaches it and multiplies through candle's
//!   f32 matmul (the `gemm` crate), reusing each weight over all rows; the f32 copy is dropped
//!   after the matmul, so RAM stays the quantized size plus one matrix.
//! - Decode: q8_0 matrices run on `charter-kernels`' tiled kernel; other formats on candle's.
//! - Decode attention: the query heads that share a KV head are that head's rows, so the KV
//!   cache is read in place instead of copied per query head (`repeat_kv`).
//!
//! Mixture-of-experts GGUF files keep candle's own model ([`QuantizedLlama::Experts`]).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;
use candle_transformers::utils::{build_causal_mask, repeat_kv};

use charter_kernels::Q8Matrix;

/// Longest context (candle's `quantized_llama::MAX_SEQ_LEN`).
pub const MAX_SEQ_LEN: usize = candle_transformers::models::quantized_llama::MAX_SEQ_LEN;

/// Forwards with at least this many rows (batch × positions) multiply by f32 weights.
pub const PREFILL_F32_MIN_ROWS: usize = 16;

/// One weight matrix: q8_0 in charter's decode layout ([`Q8Matrix`]), or any other format
/// through candle's quantized matmul (with the tensor kept to dequantize for many-row
/// forwards).
#[derive(Debug, Clone)]
enum Linear {
    Q8(Arc<Q8Matrix>),
    Candle {
        quantized: QMatMul,
        weight: Arc<QTensor>,
    },
}

impl Linear {
    fn new(weight: QTensor) -> Result<Self> {
        if let (GgmlDType::Q8_0, &[rows, cols]) = (weight.dtype(), weight.shape().dims()) {
            // A matrix the kernel refuses (a value of -128) runs on candle's kernel.
            if let Ok(m) = Q8Matrix::from_q8_0_bytes(rows, cols, &weight.data()?) {
                return Ok(Self::Q8(Arc::new(m)));
            }
        }
        let weight = Arc::new(weight);
        Ok(Self::Candle {
            quantized: QMatMul::from_arc(weight.clone())?,
            weight,
        })
    }

    /// `xs` times this matrix transposed; f32 weights when `xs` has at least `f32_min_rows` rows.
    fn forward(&self, xs: &Tensor, f32_min_rows: usize) -> Result<Tensor> {
        let rows = xs.elem_count() / xs.dim(candle_core::D::Minus1)?;
        let w = match self {
            Self::Q8(m) if rows < f32_min_rows => {
                let out = m.matmul(&xs.flatten_all()?.to_vec1::<f32>()?);
                let mut shape = xs.dims().to_vec();
                *shape.last_mut().expect("a matrix input") = m.rows();
                return Tensor::from_vec(out, shape, xs.device());
            }
            Self::Candle { quantized, .. }
                if rows < f32_min_rows || !matches!(quantized, QMatMul::QTensor(_)) =>
            {
                return quantized.forward(xs)
            }
            Self::Q8(m) => Tensor::from_vec(m.dequantize(), (m.rows(), m.cols()), xs.device())?,
            Self::Candle { weight, .. } => weight.dequantize(xs.device())?,
        };
        let w = match *xs.dims() {
            [b1, b2, _, _] => w.broadcast_left((b1, b2))?.t()?,
            [b, _, _] => w.broadcast_left(b)?.t()?,
            _ => w.t()?,
        };
        xs.matmul(&w)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    down: Linear,
    up: Linear,
}

impl Mlp {
    fn forward(&self, xs: &Tensor, f32_min_rows: usize) -> Result<Tensor> {
        let gate = self.gate.forward(xs, f32_min_rows)?;
        let up = self.up.forward(xs, f32_min_rows)?;
        self.down
            .forward(&(candle_nn::ops::silu(&gate)? * up)?, f32_min_rows)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    attention_norm: RmsNorm,
    mlp: Mlp,
    ffn_norm: RmsNorm,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    cos: Tensor,
    sin: Tensor,
    neg_inf: Tensor,
    kv_cache: Option<(Tensor, Tensor)>,
}

impl Layer {
    fn rotary(&self, x: &Tensor, index_pos: usize) -> Result<Tensor> {
        let (_b, _h, seq_len, _d) = x.dims4()?;
        let cos = self.cos.narrow(0, index_pos, seq_len)?;
        let sin = self.sin.narrow(0, index_pos, seq_len)?;
        // GGUF Llama weights are permuted for the interleaved ("NORM") rotary convention.
        candle_nn::rotary_emb::rope_i(&x.contiguous()?, &cos, &sin)
    }

    fn attention(
        &mut self,
        x: &Tensor,
        mask: Option<&Tensor>,
        index_pos: usize,
        f32_min_rows: usize,
    ) -> Result<Tensor> {
        let (b, seq_len, n_embd) = x.dims3()?;
        let q = self.wq.forward(x, f32_min_rows)?;
        let k = self.wk.forward(x, f32_min_rows)?;
        let v = self.wv.forward(x, f32_min_rows)?;
        let q = q
            .reshape((b, seq_len, self.n_head, self.head_dim))?
            .transpose(1, 2)?;
        let k = k
            .reshape((b, seq_len, self.n_kv_head, self.head_dim))?
            .transpose(1, 2)?;
        let v = v
            .reshape((b, seq_len, self.n_kv_head, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.rotary(&q, index_pos)?;
        let k = self.rotary(&k, index_pos)?;
        let (k, v) = match &self.kv_cache {
            Some((k_cache, v_cache)) if index_pos > 0 => (
                Tensor::cat(&[k_cache, &k], 2)?,
                Tensor::cat(&[v_cache, &v], 2)?,
            ),
            _ => (k, v),
        };
        self.kv_cache = Some((k.clone(), v.clone()));
        let n_rep = self.n_head / self.n_kv_head;
        let scale = (self.head_dim as f64).sqrt();
        if seq_len == 1 {
            // One query per head: the n_rep query heads sharing a KV head are that head's rows,
            // so the cache is read in place instead of copied n_rep times (`repeat_kv`).
            let q = q.reshape((b, self.n_kv_head, n_rep, self.head_dim))?;
            let att = (q.matmul(&k.t()?)? / scale)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att.matmul(&v)?.reshape((b, seq_len, n_embd))?;
            return self.wo.forward(&y, f32_min_rows);
        }
        let k = repeat_kv(k, n_rep)?;
        let v = repeat_kv(v, n_rep)?;
        let att = (q.matmul(&k.t()?)? / scale)?;
        let att = match mask {
            None => att,
            Some(mask) => {
                let mask = mask.broadcast_as(att.shape())?;
                mask.where_cond(&self.neg_inf.broadcast_as(att.shape().dims())?, &att)?
            }
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v.contiguous()?)?;
        let y = y.transpose(1, 2)?.reshape(&[b, seq_len, n_embd])?;
        self.wo.forward(&y, f32_min_rows)
    }
}

/// A dense Llama from GGUF; clones share the weights and start with an empty KV cache of
/// their own once [`GgufLlama::clear_kv_cache`] is called.
#[derive(Debug, Clone)]
pub struct GgufLlama {
    embeddings: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    masks: HashMap<(usize, usize), Tensor>,
    f32_min_rows: usize,
}

fn rotary_tables(head_dim: usize, freq_base: f32, device: &Device) -> Result<(Tensor, Tensor)> {
    let theta: Vec<_> = (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / freq_base.powf(i as f32 / head_dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?;
    let idx_theta = Tensor::arange(0, MAX_SEQ_LEN as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((MAX_SEQ_LEN, 1))?
        .matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((idx_theta.cos()?, idx_theta.sin()?))
}

impl GgufLlama {
    /// Loads a dense `llama` GGUF (no experts).
    pub fn from_gguf<R: std::io::Seek + std::io::Read>(
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let md = |s: &str| match ct.metadata.get(s) {
            None => candle_core::bail!("cannot find {s} in metadata"),
            Some(v) => Ok(v),
        };
        let head_count = md("llama.attention.head_count")?.to_u32()? as usize;
        let head_count_kv = md("llama.attention.head_count_kv")?.to_u32()? as usize;
        let block_count = md("llama.block_count")?.to_u32()? as usize;
        let embedding_length = md("llama.embedding_length")?.to_u32()? as usize;
        let rope_dim = md("llama.rope.dimension_count")?.to_u32()? as usize;
        let rms_norm_eps = md("llama.attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let rope_freq_base = md("llama.rope.freq_base")
            .and_then(|m| m.to_f32())
            .unwrap_or(10000f32);
        let (cos, sin) = rotary_tables(rope_dim, rope_freq_base, device)?;
        let neg_inf = Tensor::new(f32::NEG_INFINITY, device)?;
        let embeddings_q = ct.tensor(reader, "token_embd.weight", device)?;
        let embeddings = embeddings_q.dequantize(device)?;
        let norm = RmsNorm::from_qtensor(
            ct.tensor(reader, "output_norm.weight", device)?,
            rms_norm_eps,
        )?;
        let output = match ct.tensor(reader, "output.weight", device) {
            Ok(tensor) => tensor,
            Err(_) => embeddings_q,
        };
        let mut layers = Vec::with_capacity(block_count);
        for i in 0..block_count {
            let mut tensor = |name: &str| ct.tensor(reader, &format!("blk.{i}.{name}"), device);
            layers.push(Layer {
                wq: Linear::new(tensor("attn_q.weight")?)?,
                wk: Linear::new(tensor("attn_k.weight")?)?,
                wv: Linear::new(tensor("attn_v.weight")?)?,
                wo: Linear::new(tensor("attn_output.weight")?)?,
                mlp: Mlp {
                    gate: Linear::new(tensor("ffn_gate.weight")?)?,
                    down: Linear::new(tensor("ffn_down.weight")?)?,
                    up: Linear::new(tensor("ffn_up.weight")?)?,
                },
                attention_norm: RmsNorm::from_qtensor(tensor("attn_norm.weight")?, rms_norm_eps)?,
                ffn_norm: RmsNorm::from_qtensor(tensor("ffn_norm.weight")?, rms_norm_eps)?,
                n_head: head_count,
                n_kv_head: head_count_kv,
                head_dim: embedding_length / head_count,
                cos: cos.clone(),
                sin: sin.clone(),
                neg_inf: neg_inf.clone(),
                kv_cache: None,
            });
        }
        Ok(Self {
            embeddings: Embedding::new(embeddings, embedding_length),
            layers,
            norm,
            output: Linear::new(output)?,
            masks: HashMap::new(),
            f32_min_rows: PREFILL_F32_MIN_ROWS,
        })
    }

    /// Forwards of at least `rows` rows multiply by f32 weights (default
    /// [`PREFILL_F32_MIN_ROWS`]; `usize::MAX`: the quantized kernel everywhere, as candle).
    pub fn set_f32_min_rows(&mut self, rows: usize) {
        self.f32_min_rows = rows;
    }

    /// Empties every layer's KV cache.
    pub fn clear_kv_cache(&mut self) {
        for layer in &mut self.layers {
            layer.kv_cache = None;
        }
    }

    /// Logits (batch, vocab) of the last position of `x` (batch, positions), placed at
    /// `index_pos`.
    pub fn forward(&mut self, x: &Tensor, index_pos: usize) -> Result<Tensor> {
        let (_b, seq_len) = x.dims2()?;
        let mask = if seq_len == 1 {
            None
        } else {
            let key = (seq_len, index_pos + seq_len);
            Some(match self.masks.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
                std::collections::hash_map::Entry::Vacant(e) => e
                    .insert(build_causal_mask(seq_len, index_pos, x.device())?)
                    .clone(),
            })
        };
        let mut hidden = self.embeddings.forward(x)?;
        for layer in &mut self.layers {
            let normed = layer.attention_norm.forward(&hidden)?;
            let attn = layer.attention(&normed, mask.as_ref(), index_pos, self.f32_min_rows)?;
            let x = (attn + &hidden)?;
            hidden = (layer
                .mlp
                .forward(&layer.ffn_norm.forward(&x)?, self.f32_min_rows)?
                + x)?;
        }
        let x = self.norm.forward(&hidden)?;
        self.output
            .forward(&x.i((.., seq_len - 1, ..))?, self.f32_min_rows)
    }
}

/// A quantized GGUF Llama: dense ones run on [`GgufLlama`], mixture-of-experts ones on
/// candle's own `quantized_llama`.
#[derive(Debug, Clone)]
pub enum QuantizedLlama {
    Dense(GgufLlama),
    Experts(candle_transformers::models::quantized_llama::ModelWeights),
}

impl QuantizedLlama {
    /// Loads either model, by the file's `llama.expert_count`.
    pub fn from_gguf<R: std::io::Seek + std::io::Read>(
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let experts = ct
            .metadata
            .get("llama.expert_count")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0);
        Ok(if experts > 1 {
            Self::Experts(
                candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
                    ct, reader, device,
                )?,
            )
        } else {
            Self::Dense(GgufLlama::from_gguf(ct, reader, device)?)
        })
    }

    /// How the prefill matmuls run, for the record.
    pub fn prefill_method(&self) -> String {
        match self {
            Self::Dense(m) => format!(
                "f32 gemm on weights dequantized per matrix for forwards of ≥ {} rows; quantized kernel below",
                m.f32_min_rows
            ),
            Self::Experts(_) => "candle quantized kernel (mixture-of-experts model)".into(),
        }
    }

    pub fn clear_kv_cache(&mut self) {
        match self {
            Self::Dense(m) => m.clear_kv_cache(),
            Self::Experts(m) => m.clear_kv_cache(),
        }
    }

    pub fn forward(&mut self, x: &Tensor, index_pos: usize) -> Result<Tensor> {
        match self {
            Self::Dense(m) => m.forward(x, index_pos),
            Self::Experts(m) => m.forward(x, index_pos),
        }
    }
}
