//! Parsing of device and dtype strings from configs and the command line.

use candle_core::{DType, Device};

use super::error::{ModelError, Result};

/// Parses `"cpu"`, `"cuda"` (= `"cuda:0"`) or `"cuda:N"`.
///
/// # Errors
/// An unknown string, or a CUDA device in a build without the `cuda` cargo feature (or when
/// the GPU cannot be opened).
pub fn parse_device(spec: &str) -> Result<Device> {
    let s = spec.trim().to_ascii_lowercase();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = if s == "cuda" {
        Some(0usize)
    } else if let Some(n) = s.strip_prefix("cuda:") {
        Some(n.parse::<usize>().map_err(|_| ModelError::Device {
            spec: spec.to_string(),
            reason: "expected cuda:N with N a GPU index".to_string(),
        })?)
    } else {
        None
    };
    let Some(ordinal) = ordinal else {
        return Err(ModelError::Device {
            spec: spec.to_string(),
            reason: "expected \"cpu\", \"cuda\" or \"cuda:N\"".to_string(),
        });
    };
    cuda_device(spec, ordinal)
}

#[cfg(feature = "cuda")]
fn cuda_device(spec: &str, ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| ModelError::Device {
        spec: spec.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(spec: &str, _ordinal: usize) -> Result<Device> {
    Err(ModelError::Device {
        spec: spec.to_string(),
        reason: "this build has no CUDA support; rebuild with `--features cuda`".to_string(),
    })
}

/// Parses `"f32"` or `"bf16"` (also `"float32"`, `"bfloat16"`).
pub fn parse_dtype(spec: &str) -> Result<DType> {
    match spec.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(ModelError::DType(other.to_string())),
    }
}

/// The name HF uses in `config.json`'s `torch_dtype` for a dtype.
pub fn torch_dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_dtypes() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert_eq!(parse_dtype("F32").unwrap(), DType::F32);
        assert!(parse_dtype("f8").is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = parse_device("cuda:1").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
