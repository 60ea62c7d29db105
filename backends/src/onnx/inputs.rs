//! Synthesised inputs for any-model mode: what `onnxruntime_perf_test` does, from the model's
//! own input metadata.
//!
//! Shapes: fixed dimensions are used as they are; a dynamic dimension is bound, in order, by
//! `--onnx-dim NAME=N` (exact symbol name), by its name (`*batch*` → `--batch`, `*past*` → 0,
//! `*seq*`/`*len*`/`*total*`/`*token*` → `--seq-len`), or, when unnamed, by its axis (0 →
//! `--batch`, 1 → `--seq-len`). Anything else is a typed error naming the input and dimension.
//!
//! Values are deterministic from the seed: masks are ones, token-type/segment ids zeros, position
//! ids `0..n` along the last axis, other integer inputs token-like ids in `0..100` (valid for any
//! vocabulary of at least 100 tokens), floats uniform in [-1, 1), booleans true. Strings, f16,
//! bf16 and exotic element types are not synthesised.

use std::path::Path;

use ort::session::SessionInputValue;
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};
use rand::{Rng, SeedableRng};

use crate::LoadError;

/// Integer inputs that are not masks, positions or segment ids get ids below this.
pub const TOKEN_ID_RANGE: i64 = 100;
/// Largest synthesised input (elements), to turn a mistaken binding into an error, not an OOM.
const MAX_ELEMENTS: usize = 1 << 30;

/// How dynamic dimensions are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimBindings {
    pub batch: usize,
    pub seq_len: usize,
    /// Exact symbolic-dimension names with their values (`--onnx-dim NAME=N`).
    pub named: Vec<(String, usize)>,
}

/// What values an input gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Ones,
    Zeros,
    /// `0..n` along the last axis, repeated for every row.
    Positions,
    /// Seeded ids in `0..TOKEN_ID_RANGE`.
    TokenIds,
    /// Seeded uniform values in [-1, 1).
    Uniform,
}

impl Fill {
    pub fn as_str(self) -> &'static str {
        match self {
            Fill::Ones => "ones",
            Fill::Zeros => "zeros",
            Fill::Positions => "positions",
            Fill::TokenIds => "ids 0..99",
            Fill::Uniform => "uniform [-1,1)",
        }
    }
}

/// The data of one synthesised input.
#[derive(Debug, Clone, PartialEq)]
pub enum InputData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U64(Vec<u64>),
    U32(Vec<u32>),
    U16(Vec<u16>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl InputData {
    pub fn len(&self) -> usize {
        match self {
            InputData::F32(v) => v.len(),
            InputData::F64(v) => v.len(),
            InputData::I64(v) => v.len(),
            InputData::I32(v) => v.len(),
            InputData::I16(v) => v.len(),
            InputData::I8(v) => v.len(),
            InputData::U64(v) => v.len(),
            InputData::U32(v) => v.len(),
            InputData::U16(v) => v.len(),
            InputData::U8(v) => v.len(),
            InputData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as i64 (integers and booleans; floats are truncated), for tests and checks.
    pub fn as_i64(&self) -> Vec<i64> {
        match self {
            InputData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            InputData::F64(v) => v.iter().map(|&x| x as i64).collect(),
            InputData::I64(v) => v.clone(),
            InputData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            InputData::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            InputData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            InputData::U64(v) => v.iter().map(|&x| x as i64).collect(),
            InputData::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            InputData::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            InputData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            InputData::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
        }
    }
}

/// One model input, synthesised.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthInput {
    pub name: String,
    pub element_type: TensorElementType,
    pub shape: Vec<i64>,
    pub fill: Fill,
    /// Whether a dimension was bound from `--seq-len` (the input has a sequence axis).
    pub uses_seq_len: bool,
    pub data: InputData,
}

impl SynthInput {
    /// `input_ids i64[1,128] (ids 0..99)`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!(
            "{} {}[{}] ({})",
            self.name,
            type_name(self.element_type),
            dims.join(","),
            self.fill.as_str()
        )
    }

    /// A borrowed ONNX Runtime tensor over the data (no copy).
    pub fn value(&self) -> ort::Result<SessionInputValue<'_>> {
        let shape = self.shape.clone();
        Ok(match &self.data {
            InputData::F32(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::F64(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::I64(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::I32(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::I16(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::I8(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::U64(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::U32(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::U16(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::U8(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            InputData::Bool(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
        })
    }
}

/// Short element-type names for records and errors.
pub fn type_name(t: TensorElementType) -> &'static str {
    match t {
        TensorElementType::Float32 => "f32",
        TensorElementType::Float64 => "f64",
        TensorElementType::Float16 => "f16",
        TensorElementType::Bfloat16 => "bf16",
        TensorElementType::Int64 => "i64",
        TensorElementType::Int32 => "i32",
        TensorElementType::Int16 => "i16",
        TensorElementType::Int8 => "i8",
        TensorElementType::Uint64 => "u64",
        TensorElementType::Uint32 => "u32",
        TensorElementType::Uint16 => "u16",
        TensorElementType::Uint8 => "u8",
        TensorElementType::Bool => "bool",
        TensorElementType::String => "string",
        _ => "exotic",
    }
}

/// Bind every dimension of input `name`. Returns the shape and whether `--seq-len` was used.
fn bind_shape(
    model: &Path,
    name: &str,
    shape: &[i64],
    symbols: &[String],
    b: &DimBindings,
) -> Result<(Vec<i64>, bool), LoadError> {
    let mut out = Vec::with_capacity(shape.len());
    let mut uses_seq = false;
    for (axis, &d) in shape.iter().enumerate() {
        if d >= 0 {
            out.push(d);
            continue;
        }
        let sym = symbols.get(axis).map(String::as_str).unwrap_or("");
        let err = |what: String| LoadError::OnnxInput {
            path: model.to_path_buf(),
            input: name.to_string(),
            what,
        };
        let v = if let Some((_, v)) = b.named.iter().find(|(n, _)| n == sym && !sym.is_empty()) {
            *v
        } else if sym.is_empty() {
            match axis {
                0 => b.batch,
                1 => {
                    uses_seq = true;
                    b.seq_len
                }
                _ => {
                    return Err(err(format!(
                        "unnamed dynamic dimension at axis {axis} (only axes 0 = batch and 1 = sequence are bound without a name)"
                    )))
                }
            }
        } else {
            let s = sym.to_ascii_lowercase();
            if s.contains("batch") {
                b.batch
            } else if s.contains("past") {
                0
            } else if ["seq", "len", "total", "token"]
                .iter()
                .any(|k| s.contains(k))
            {
                uses_seq = true;
                b.seq_len
            } else {
                return Err(err(format!(
                    "dynamic dimension `{sym}` (axis {axis}) has no value: pass --onnx-dim {sym}=N"
                )));
            }
        };
        out.push(v as i64);
    }
    Ok((out, uses_seq))
}

fn fill_for(name: &str, t: TensorElementType) -> Fill {
    let n = name.to_ascii_lowercase();
    let float = matches!(t, TensorElementType::Float32 | TensorElementType::Float64);
    if t == TensorElementType::Bool || n.contains("mask") {
        Fill::Ones
    } else if float {
        Fill::Uniform
    } else if n.contains("token_type") || n.contains("segment") {
        Fill::Zeros
    } else if n.contains("position") {
        Fill::Positions
    } else {
        Fill::TokenIds
    }
}

fn values(fill: Fill, shape: &[i64], rng: &mut rand::rngs::StdRng) -> Vec<f64> {
    let n: usize = shape.iter().map(|&d| d as usize).product();
    let last = shape.last().copied().unwrap_or(1).max(1) as usize;
    (0..n)
        .map(|i| match fill {
            Fill::Ones => 1.0,
            Fill::Zeros => 0.0,
            Fill::Positions => (i % last) as f64,
            Fill::TokenIds => rng.random_range(0..TOKEN_ID_RANGE) as f64,
            Fill::Uniform => rng.random_range(-1.0..1.0),
        })
        .collect()
}

/// Synthesise every input of a model from its metadata. Inputs are independent of each other
/// but deterministic from `seed` (input `k` draws from stream `seed + k`).
pub fn synthesise(
    model: &Path,
    inputs: &[Outlet],
    bindings: &DimBindings,
    seed: u64,
) -> Result<Vec<SynthInput>, LoadError> {
    let mut out = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        let err = |what: String| LoadError::OnnxInput {
            path: model.to_path_buf(),
            input: input.name().to_string(),
            what,
        };
        let ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } = input.dtype()
        else {
            return Err(err(format!(
                "it is not a tensor ({}); only tensor inputs are synthesised",
                input.dtype()
            )));
        };
        let (bound, uses_seq_len) =
            bind_shape(model, input.name(), shape, dimension_symbols, bindings)?;
        let elements = bound
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| err(format!("shape {bound:?} is too large to synthesise")))?;
        let fill = fill_for(input.name(), *ty);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(k as u64));
        let v = values(fill, &bound, &mut rng);
        debug_assert_eq!(v.len(), elements);
        let data = match ty {
            TensorElementType::Float32 => InputData::F32(v.iter().map(|&x| x as f32).collect()),
            TensorElementType::Float64 => InputData::F64(v),
            TensorElementType::Int64 => InputData::I64(v.iter().map(|&x| x as i64).collect()),
            TensorElementType::Int32 => InputData::I32(v.iter().map(|&x| x as i32).collect()),
            TensorElementType::Int16 => InputData::I16(v.iter().map(|&x| x as i16).collect()),
            TensorElementType::Int8 => InputData::I8(v.iter().map(|&x| x as i8).collect()),
            TensorElementType::Uint64 => InputData::U64(v.iter().map(|&x| x as u64).collect()),
            TensorElementType::Uint32 => InputData::U32(v.iter().map(|&x| x as u32).collect()),
            TensorElementType::Uint16 => InputData::U16(v.iter().map(|&x| x as u16).collect()),
            TensorElementType::Uint8 => InputData::U8(v.iter().map(|&x| x as u8).collect()),
            TensorElementType::Bool => InputData::Bool(v.iter().map(|&x| x != 0.0).collect()),
            other => {
                return Err(err(format!(
                    "element type {} is not supported (charter synthesises bool, integer, f32 and f64 inputs)",
                    type_name(*other)
                )))
            }
        };
        out.push(SynthInput {
            name: input.name().to_string(),
            element_type: *ty,
            shape: bound,
            fill,
            uses_seq_len,
            data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> DimBindings {
        DimBindings {
            batch: 3,
            seq_len: 7,
            named: vec![("height".into(), 224)],
        }
    }

    #[test]
    fn dynamic_dims_bind_by_name_then_axis() {
        let p = Path::new("m.onnx");
        let syms = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (s, seq) = bind_shape(
            p,
            "x",
            &[-1, -1, 16],
            &syms(&["batch_size", "sequence_length", ""]),
            &b(),
        )
        .unwrap();
        assert_eq!((s, seq), (vec![3, 7, 16], true));
        let (s, seq) = bind_shape(p, "x", &[-1, -1], &syms(&["", ""]), &b()).unwrap();
        assert_eq!((s, seq), (vec![3, 7], true));
        let (s, _) = bind_shape(
            p,
            "past",
            &[-1, 2, -1, 16],
            &syms(&["batch", "", "past_sequence_length", ""]),
            &b(),
        )
        .unwrap();
        assert_eq!(s, vec![3, 2, 0, 16]);
        let (s, seq) = bind_shape(p, "img", &[1, 3, -1], &syms(&["", "", "height"]), &b()).unwrap();
        assert_eq!((s, seq), (vec![1, 3, 224], false));
    }

    #[test]
    fn unbindable_dims_are_named_in_the_error() {
        let p = Path::new("m.onnx");
        let e = bind_shape(
            p,
            "img",
            &[1, -1],
            &["width".to_string(), "width".into()],
            &b(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`img`") && e.contains("--onnx-dim width=N"),
            "{e}"
        );
        let e = bind_shape(
            p,
            "img",
            &[1, 3, -1],
            &[String::new(), "".into(), "".into()],
            &b(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("axis 2"), "{e}");
    }

    #[test]
    fn fills_follow_names_and_types() {
        assert_eq!(
            fill_for("attention_mask", TensorElementType::Int64),
            Fill::Ones
        );
        assert_eq!(
            fill_for("token_type_ids", TensorElementType::Int64),
            Fill::Zeros
        );
        assert_eq!(
            fill_for("position_ids", TensorElementType::Int64),
            Fill::Positions
        );
        assert_eq!(
            fill_for("input_ids", TensorElementType::Int32),
            Fill::TokenIds
        );
        assert_eq!(
            fill_for("pixel_values", TensorElementType::Float32),
            Fill::Uniform
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            values(Fill::Positions, &[2, 3], &mut rng),
            vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
        );
        let ids = values(Fill::TokenIds, &[4, 64], &mut rng);
        assert!(ids
            .iter()
            .all(|&x| (0.0..100.0).contains(&x) && x.fract() == 0.0));
    }
}
