//! Weight formats without a fast candle CPU kernel, converted once at load.
//!
//! candle's CPU matmul has SIMD paths (AVX2, and AVX-512 VNNI repacking) for Q4_0, Q8_0 and the
//! K-quants, but runs Q4_1, Q5_0 and Q5_1 through scalar code: a Q4_1 GGUF decodes several times
//! slower than the same model in Q8_0, so charter's per-instance cores, throughput and cost
//! would describe a kernel, not the model. By default such tensors are converted to Q8_0 with
//! candle's own quantizer (dequantize, then quantize: Q8_0 holds a Q4_1 block's 16 levels with
//! at most half a step of 1/127 of the block's largest magnitude as extra error). With
//! `--weights q4_k` they become Q4_K instead, except tensors whose rows are not a multiple of
//! Q4_K's 256-element super-block, which become Q8_0 (counted as fallbacks).
//!
//! The converted file is cached (see [`cache_dir`]) under a name made of the source file's
//! sha256, the target and [`CONVERSION_VERSION`], and written deterministically (metadata sorted
//! by key, tensors in their file order, candle's scalar quantizers), so the same source always
//! gives the same bytes. Its metadata says what it is (`general.file_type` of the target, plus
//! `charter.conversion.source_sha256` and `charter.conversion.version`). The user's file is
//! never touched; a copy is written beside its final name and renamed into place, so a crash or
//! a concurrent conversion never leaves a partial file under that name.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use charter_record::FileDigest;

use crate::{file_digest, LoadError};

/// Bumped whenever the conversion's output for the same input would change.
pub const CONVERSION_VERSION: u32 = 2;

/// `--weights`: what to do with weight formats that lack a fast kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// Convert tensors without a SIMD kernel (Q4_1, Q5_0, Q5_1) to Q8_0; keep the rest.
    #[default]
    Auto,
    /// Run the file's formats as they are (scalar kernels included).
    Keep,
    /// Convert tensors without a SIMD kernel to Q8_0 (what auto does today, stated explicitly).
    #[value(name = "q8_0")]
    #[serde(rename = "q8_0")]
    Q8_0,
    /// Convert them to Q4_K instead (smaller than Q8_0, more quantization error); rows that are
    /// not a multiple of 256 become Q8_0.
    #[value(name = "q4_k")]
    #[serde(rename = "q4_k")]
    Q4K,
}

impl WeightFormat {
    /// The format converted tensors get, or `None` to keep every tensor.
    pub fn target(self) -> Option<GgmlDType> {
        match self {
            WeightFormat::Keep => None,
            WeightFormat::Auto | WeightFormat::Q8_0 => Some(GgmlDType::Q8_0),
            WeightFormat::Q4K => Some(GgmlDType::Q4K),
        }
    }

    /// The value as `--weights` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightFormat::Auto => "auto",
            WeightFormat::Keep => "keep",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::Q4K => "q4_k",
        }
    }

    /// Whether this value asks for a conversion by name (meaningless for weights that are not
    /// a GGUF file).
    pub fn is_explicit_target(self) -> bool {
        matches!(self, WeightFormat::Q8_0 | WeightFormat::Q4K)
    }
}

/// Whether candle's CPU kernel for `dtype` has a SIMD path (see the module docs).
pub fn has_fast_kernel(dtype: GgmlDType) -> bool {
    !matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// `q4_1` for a dtype, as the record spells formats.
pub fn dtype_name(dtype: GgmlDType) -> String {
    match dtype {
        GgmlDType::Q4K => "q4_k".into(),
        GgmlDType::Q5K => "q5_k".into(),
        GgmlDType::Q6K => "q6_k".into(),
        GgmlDType::Q2K => "q2_k".into(),
        GgmlDType::Q3K => "q3_k".into(),
        GgmlDType::Q8K => "q8_k".into(),
        d => format!("{d:?}").to_lowercase(),
    }
}

/// llama.cpp's `general.file_type` for a file whose converted tensors are `target`.
fn file_type(target: GgmlDType) -> u32 {
    match target {
        GgmlDType::Q4K => 14, // LLAMA_FTYPE_MOSTLY_Q4_K_S
        _ => 7,               // LLAMA_FTYPE_MOSTLY_Q8_0
    }
}

/// What a conversion did, for the run record.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The converted file that was loaded (in the cache), with its size and sha256.
    pub file: FileDigest,
    pub path: PathBuf,
    /// Formats converted away, e.g. `q4_1`.
    pub from: Vec<String>,
    /// The format they became.
    pub to: String,
    /// Tensors converted (fallbacks included) / of those, converted to Q8_0 instead of the
    /// target / kept.
    pub converted_tensors: usize,
    pub fallback_tensors: usize,
    pub kept_tensors: usize,
    /// Seconds spent converting and writing; `None` when the cached copy was reused.
    pub convert_s: Option<f64>,
    /// Whether the cached copy was reused.
    pub cached: bool,
}

impl Conversion {
    /// The run record's entry; `requested` is the `--weights` value.
    pub fn record(&self, requested: WeightFormat) -> charter_record::WeightsConversionRecord {
        charter_record::WeightsConversionRecord {
            requested: requested.as_str().into(),
            from: self.from.clone(),
            to: self.to.clone(),
            tensors_converted: self.converted_tensors as u32,
            tensors_fallback_q8_0: self.fallback_tensors as u32,
            tensors_kept: self.kept_tensors as u32,
            file: self.file.clone(),
            reused_from_cache: self.cached,
            convert_s: self.convert_s,
            conversion_version: CONVERSION_VERSION,
        }
    }
}

/// Tensors of `content` to convert, by name (sorted), each with the format it becomes.
fn plan(content: &gguf_file::Content, target: GgmlDType) -> Vec<(String, GgmlDType)> {
    let mut out: Vec<(String, GgmlDType)> = content
        .tensor_infos
        .iter()
        .filter(|(_, t)| !has_fast_kernel(t.ggml_dtype) && t.shape.dims().len() == 2)
        .filter_map(|(n, t)| {
            // Blocks run along the last (contiguous) dimension.
            let row = t.shape.dims()[1];
            let to = if row.is_multiple_of(target.block_size()) {
                target
            } else if row.is_multiple_of(GgmlDType::Q8_0.block_size()) {
                GgmlDType::Q8_0
            } else {
                return None;
            };
            Some((n.clone(), to))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Where converted copies are kept: `$CHARTER_CACHE/converted` when `CHARTER_CACHE` is set;
/// else `.cache/converted` when the current directory has a `.cache` directory (a charter
/// checkout, where the fetch scripts keep models); else `$XDG_CACHE_HOME/charter/converted`
/// (`~/.cache/charter/converted`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHARTER_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("converted");
    }
    if Path::new(".cache").is_dir() {
        return PathBuf::from(".cache").join("converted");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("charter").join("converted")
}

/// A name beside `out` that no other conversion (thread or process) writes at the same time.
fn temp_name(out: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    out.with_extension(format!(
        "gguf.tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
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
    let plan = plan(content, target);
    if plan.is_empty() {
        return Ok(None);
    }
    let mut from: Vec<String> = plan
        .iter()
        .map(|(n, _)| dtype_name(content.tensor_infos[n].ggml_dtype))
        .collect();
    from.sort();
    from.dedup();
    let to = dtype_name(target);
    let out = cache.join(format!(
        "{}-{to}-v{CONVERSION_VERSION}.gguf",
        &sha256[..sha256.len().min(32)]
    ));
    let fallback_tensors = plan.iter().filter(|(_, d)| *d != target).count();
    let kept_tensors = content.tensor_infos.len() - plan.len();
    let unreadable = |p: &Path| {
        let p = p.to_path_buf();
        move |e| LoadError::Unreadable { path: p, source: e }
    };
    let done = |convert_s: Option<f64>| -> Result<Conversion, LoadError> {
        Ok(Conversion {
            file: file_digest(&out).map_err(unreadable(&out))?,
            path: out.clone(),
            from: from.clone(),
            to: to.clone(),
            converted_tensors: plan.len(),
            fallback_tensors,
            kept_tensors,
            convert_s,
            cached: convert_s.is_none(),
        })
    };
    if out.is_file() {
        return done(None).map(Some);
    }
    let started = std::time::Instant::now();
    let invalid = |what: String| LoadError::Invalid {
        path: path.to_path_buf(),
        what,
    };
    let mut reader = File::open(path).map_err(unreadable(path))?;
    // Tensors in their file order, so the copy mirrors the original.
    let mut order: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    order.sort_by_key(|(_, t)| t.offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(order.len());
    for (name, _) in order {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| invalid(format!("reading tensor {name}: {e}")))?;
        let q = match plan.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => {
                let to = plan[i].1;
                let f = q
                    .dequantize(&Device::Cpu)
                    .map_err(|e| invalid(format!("dequantizing {name}: {e}")))?;
                QTensor::quantize(&f, to)
                    .map_err(|e| invalid(format!("quantizing {name} to {}: {e}", dtype_name(to))))?
            }
            Err(_) => q,
        };
        tensors.push((name.clone(), q));
    }
    let mut metadata: Vec<(String, gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| !k.starts_with("charter.conversion."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(ft) = metadata.iter_mut().find(|(k, _)| k == "general.file_type") {
        ft.1 = gguf_file::Value::U32(file_type(target));
    }
    metadata.push((
        "charter.conversion.source_sha256".into(),
        gguf_file::Value::String(sha256.to_string()),
    ));
    metadata.push((
        "charter.conversion.version".into(),
        gguf_file::Value::U32(CONVERSION_VERSION),
    ));
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    std::fs::create_dir_all(cache).map_err(|e| LoadError::Setting {
        what: format!(
            "cache directory for converted weights {}: {e}",
            cache.display()
        ),
    })?;
    let tmp = temp_name(&out);
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
    done(Some(started.elapsed().as_secs_f64())).map(Some)
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
        assert_eq!(dtype_name(GgmlDType::Q4K), "q4_k");
        assert_eq!(dtype_name(GgmlDType::Q4_1), "q4_1");
    }

    #[test]
    fn temp_names_differ_within_a_process() {
        let out = Path::new("/x/a.gguf");
        assert_ne!(temp_name(out), temp_name(out));
    }
}
