//! Weight formats without a fast candle CPU kernel, converted once at load.
//!
//! candle's CPU matmul has SIMD paths (AVX2, and AVX-512 VNNI repacking) for Q4_0, Q8_0 and the
//! K-quants, but runs Q4_1, Q5_0 and Q5_1 through scalar code: a Q4_1 GGUF decodes several times
//! slower than the same model in Q8_0, so charter's per-instance cores, throughput and cost
//! would describe a kernel, not the model. By default such tensors are converted to Q8_0 with
//! candle's own quantizer (dequantize, then quantize: Q8_0 holds a Q4_1 block's 16 levels with
//! at most half a step of 1/127 of the block's range as extra error). The converted file is
//! cached next to the project's other downloads, keyed by the source file's sha256, the target
//! and [`CONVERSION_VERSION`], and written deterministically (metadata sorted by key, tensors in
//! their file order), so the same source always gives the same bytes. The user's file is never
//! touched.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::LoadError;

/// Bumped whenever the conversion's output for the same input would change.
pub const CONVERSION_VERSION: u32 = 1;

/// `--weights`: what to do with weight formats that lack a fast kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// Convert tensors without a SIMD kernel (Q4_1, Q5_0, Q5_1) to Q8_0; keep the rest.
    #[default]
    Auto,
    /// Run the file's formats as they are (scalar kernels included).
    Keep,
    /// Convert every quantized matrix without a SIMD kernel to Q8_0 (as auto).
    #[value(name = "q8_0")]
    #[serde(rename = "q8_0")]
    Q8_0,
    /// Convert them to Q4_K instead (smaller than Q8_0; more quantization error).
    #[value(name = "q4_k")]
    #[serde(rename = "q4_k")]
    Q4K,
}

impl WeightFormat {
    /// The format converted tensors get, or `None` to keep every tensor.
    fn target(self) -> Option<GgmlDType> {
        match self {
            WeightFormat::Keep => None,
            WeightFormat::Auto | WeightFormat::Q8_0 => Some(GgmlDType::Q8_0),
            WeightFormat::Q4K => Some(GgmlDType::Q4K),
        }
    }
}

/// Whether candle's CPU kernel for `dtype` has a SIMD path (see the module docs).
pub fn has_fast_kernel(dtype: GgmlDType) -> bool {
    !matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// `q4_1` for a dtype, as the record spells formats.
pub fn dtype_name(dtype: GgmlDType) -> String {
    format!("{dtype:?}").to_lowercase()
}

/// What a conversion did, for the run record.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The converted file that was loaded (in the cache).
    pub path: PathBuf,
    /// Formats converted away, e.g. `q4_1`.
    pub from: Vec<String>,
    /// The format they became.
    pub to: String,
    /// Tensors converted / kept.
    pub converted_tensors: usize,
    pub kept_tensors: usize,
    /// Seconds spent converting (0 when the cached copy was reused).
    pub convert_s: f64,
    /// Whether the cached copy was reused.
    pub cached: bool,
}

/// Tensors of `content` that `format` converts, by name.
fn to_convert(content: &gguf_file::Content, target: GgmlDType) -> Vec<String> {
    let mut names: Vec<String> = content
        .tensor_infos
        .iter()
        .filter(|(_, t)| {
            !has_fast_kernel(t.ggml_dtype)
                && t.shape.dims().len() == 2
                && t.shape.dims()[1] % target.block_size() == 0
        })
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names
}

/// Where converted copies are kept: `$CHARTER_CACHE/converted`, else `.cache/converted` in the
/// current directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CHARTER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("converted")
}

/// Convert the GGUF at `path` (whose sha256 is `sha256`) as `format` asks, or say that nothing
/// needs converting (`Ok(None)`). Reuses a cached copy when there is one.
pub fn convert_gguf(
    path: &Path,
    sha256: &str,
    content: &gguf_file::Content,
    format: WeightFormat,
    cache: &Path,
) -> Result<Option<Conversion>, LoadError> {
    let Some(target) = format.target() else {
        return Ok(None);
    };
    let names = to_convert(content, target);
    if names.is_empty() {
        return Ok(None);
    }
    let mut from: Vec<String> = names
        .iter()
        .map(|n| dtype_name(content.tensor_infos[n].ggml_dtype))
        .collect();
    from.sort();
    from.dedup();
    let to = dtype_name(target);
    let out = cache.join(format!(
        "{}-{to}-v{CONVERSION_VERSION}.gguf",
        &sha256[..sha256.len().min(32)]
    ));
    let kept_tensors = content.tensor_infos.len() - names.len();
    let done = |convert_s: f64, cached: bool| Conversion {
        path: out.clone(),
        from: from.clone(),
        to: to.clone(),
        converted_tensors: names.len(),
        kept_tensors,
        convert_s,
        cached,
    };
    if out.is_file() {
        return Ok(Some(done(0.0, true)));
    }
    let started = std::time::Instant::now();
    let invalid = |what: String| LoadError::Invalid {
        path: path.to_path_buf(),
        what,
    };
    let mut reader = File::open(path).map_err(|e| LoadError::Unreadable {
        path: path.to_path_buf(),
        source: e,
    })?;
    // Tensors in their file order, so the copy mirrors the original.
    let mut order: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    order.sort_by_key(|(_, t)| t.offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(order.len());
    for (name, _) in order {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| invalid(format!("reading tensor {name}: {e}")))?;
        let q = if names.binary_search(name).is_ok() {
            let f = q
                .dequantize(&Device::Cpu)
                .map_err(|e| invalid(format!("dequantizing {name}: {e}")))?;
            QTensor::quantize(&f, target)
                .map_err(|e| invalid(format!("quantizing {name} to {to}: {e}")))?
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }
    let mut metadata: Vec<(&String, &gguf_file::Value)> = content.metadata.iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    std::fs::create_dir_all(cache).map_err(|e| LoadError::Setting {
        what: format!("cache directory {}: {e}", cache.display()),
    })?;
    // Write beside the final name, then rename: a crash never leaves a half-written copy.
    let tmp = out.with_extension(format!("gguf.tmp{}", std::process::id()));
    let write = || -> Result<(), String> {
        let mut w = BufWriter::new(File::create(&tmp).map_err(|e| e.to_string())?);
        gguf_file::write(&mut w, &md, &ts).map_err(|e| e.to_string())?;
        w.into_inner()
            .map_err(|e| e.to_string())?
            .sync_all()
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &out).map_err(|e| e.to_string())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(LoadError::Setting {
            what: format!("writing the converted copy {}: {e}", out.display()),
        });
    }
    Ok(Some(done(started.elapsed().as_secs_f64(), false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_formats_without_simd_are_converted() {
        for slow in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1] {
            assert!(!has_fast_kernel(slow));
        }
        for fast in [
            GgmlDType::F32,
            GgmlDType::Q4_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            assert!(has_fast_kernel(fast));
        }
        assert_eq!(WeightFormat::Keep.target(), None);
        assert_eq!(WeightFormat::Auto.target(), Some(GgmlDType::Q8_0));
    }
}
