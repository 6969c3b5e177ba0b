//! Hugging Face model directories in and out: `config.json` plus `model.safetensors`, or
//! shards `model-0000i-of-0000n.safetensors` listed in `model.safetensors.index.json`.
//!
//! Loading copies each stored tensor into the [`Qwen2`] parameter of the same name, converting
//! to the model's dtype; every key must match in both directions and every shape must agree.
//! Saving writes the layout transformers' `save_pretrained` writes, so transformers and vLLM
//! load a checkpoint we trained.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::config::{ConfigError, Qwen2Config};
use crate::qwen2::Qwen2;

/// Name of the single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the shard index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// transformers' default shard size (5 GB).
pub const DEFAULT_SHARD_BYTES: u64 = 5_000_000_000;

/// What went wrong loading or saving a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file: {message}")]
    Format { path: String, message: String },
    #[error("model directory {dir} has neither {SINGLE_FILE} nor {INDEX_FILE}")]
    NoWeights { dir: String },
    #[error("{path}: unexpected tensor `{key}` (no such parameter in a Qwen2 model with this config.json)")]
    Unexpected { path: String, key: String },
    #[error("{path}: tensor `{key}` has shape {found:?}, but the config gives {expected:?}")]
    Shape {
        path: String,
        key: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("{path}: tensor `{key}` has dtype {dtype:?}; only F32, BF16 and F16 are supported")]
    Dtype {
        path: String,
        key: String,
        dtype: String,
    },
    #[error("checkpoint in {dir} lacks {} parameter(s): {}", missing.len(), missing.join(", "))]
    Missing { dir: String, missing: Vec<String> },
    #[error("unsupported dtype {0:?}: use float32 or bfloat16")]
    UnsupportedKind(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The tensor kind for a `torch_dtype` string (`float32`, `bfloat16`, `float16`).
pub fn kind_from_dtype(dtype: &str) -> Result<Kind, WeightsError> {
    match dtype {
        "float32" | "float" => Ok(Kind::Float),
        "bfloat16" => Ok(Kind::BFloat16),
        "float16" | "half" => Ok(Kind::Half),
        other => Err(WeightsError::UnsupportedKind(other.to_string())),
    }
}

fn dtype_name(kind: Kind) -> Result<&'static str, WeightsError> {
    match kind {
        Kind::Float => Ok("float32"),
        Kind::BFloat16 => Ok("bfloat16"),
        Kind::Half => Ok("float16"),
        other => Err(WeightsError::UnsupportedKind(format!("{other:?}"))),
    }
}

/// Loads the model in `dir` onto `device`, in `kind` or else the dtype its config names
/// (f32 when it names none).
pub fn load_model(dir: &Path, device: Device, kind: Option<Kind>) -> Result<Qwen2, WeightsError> {
    let config = Qwen2Config::from_file(&dir.join("config.json"))?;
    let kind = match (kind, config.torch_dtype.as_deref()) {
        (Some(kind), _) => kind,
        (None, Some(dtype)) => kind_from_dtype(dtype)?,
        (None, None) => Kind::Float,
    };
    let model = Qwen2::new(config, device, kind);
    load_weights(&model, dir)?;
    Ok(model)
}

/// Copies the checkpoint tensors in `dir` into `model`'s parameters. Every file's header is
/// checked first (names, shapes, dtypes, sizes, nothing missing), so a checkpoint that does
/// not fit changes no parameter: a server reloading weights keeps serving the old ones.
pub fn load_weights(model: &Qwen2, dir: &Path) -> Result<(), WeightsError> {
    let files = weight_files(dir)?;
    check_headers(model, dir, &files)?;
    let params = model.vs.variables();
    let mut loaded = HashSet::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(io_err(&file))?;
        let shown = file.display().to_string();
        let st = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let mut tensors = st.tensors();
        tensors.sort_by(|a, b| a.0.cmp(&b.0)); // the first error is then the same every run
        for (key, view) in tensors {
            if is_ignored(&key, &model.config) {
                continue;
            }
            let param = params.get(&key).ok_or_else(|| WeightsError::Unexpected {
                path: shown.clone(),
                key: key.clone(),
            })?;
            copy_into(param, &view, &shown, &key)?;
            loaded.insert(key);
        }
    }
    all_present(&params, &loaded, dir)
}

/// Checks what [`load_weights`] would copy from the files' headers alone (the 8-byte length
/// and the JSON header of each safetensors file), without reading any tensor data.
fn check_headers(model: &Qwen2, dir: &Path, files: &[PathBuf]) -> Result<(), WeightsError> {
    use std::io::Read;
    let params = model.vs.variables();
    let mut seen = HashSet::new();
    for file in files {
        let shown = file.display().to_string();
        let format = |message: String| WeightsError::Format {
            path: shown.clone(),
            message,
        };
        let mut f = std::fs::File::open(file).map_err(io_err(file))?;
        let size = f.metadata().map_err(io_err(file))?.len();
        let mut len = [0u8; 8];
        f.read_exact(&mut len).map_err(io_err(file))?;
        let n = u64::from_le_bytes(len);
        if n > 100_000_000 || 8 + n > size {
            return Err(format(format!(
                "header length {n} does not fit a {size}-byte file"
            )));
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header).map_err(io_err(file))?;
        let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
            .map_err(|e| format(format!("header is not a JSON object: {e}")))?;
        let mut end = 0u64;
        let mut entries: Vec<_> = header.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0)); // the first error is then the same every run
        for (key, info) in entries {
            if key == "__metadata__" {
                continue;
            }
            let offsets = info["data_offsets"]
                .as_array()
                .and_then(|o| o.get(1)?.as_u64());
            end = end.max(offsets.ok_or_else(|| format(format!("`{key}` has no data_offsets")))?);
            if is_ignored(key, &model.config) {
                continue;
            }
            let param = params.get(key).ok_or_else(|| WeightsError::Unexpected {
                path: shown.clone(),
                key: key.clone(),
            })?;
            let found: Vec<i64> = info["shape"]
                .as_array()
                .map(|d| d.iter().filter_map(|x| x.as_i64()).collect())
                .unwrap_or_default();
            if found != param.size() {
                return Err(WeightsError::Shape {
                    path: shown.clone(),
                    key: key.clone(),
                    expected: param.size(),
                    found,
                });
            }
            let dtype = info["dtype"].as_str().unwrap_or("?");
            if !matches!(dtype, "F32" | "BF16" | "F16") {
                return Err(WeightsError::Dtype {
                    path: shown.clone(),
                    key: key.clone(),
                    dtype: dtype.to_string(),
                });
            }
            seen.insert(key.clone());
        }
        if 8 + n + end != size {
            return Err(format(format!(
                "the header describes {} bytes but the file has {size} (truncated or corrupt)",
                8 + n + end
            )));
        }
    }
    all_present(&params, &seen, dir)
}

/// `Ok` when every parameter is in `found`, else the sorted list of those that are not.
fn all_present(
    params: &HashMap<String, Tensor>,
    found: &HashSet<String>,
    dir: &Path,
) -> Result<(), WeightsError> {
    let mut missing: Vec<String> = params
        .keys()
        .filter(|k| !found.contains(*k))
        .cloned()
        .collect();
    missing.sort();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(WeightsError::Missing {
            dir: dir.display().to_string(),
            missing,
        })
    }
}

/// Keys that checkpoints may carry but the model has no parameter for: old rotary buffers,
/// and `lm_head.weight` written next to tied embeddings (it equals `embed_tokens`).
fn is_ignored(key: &str, config: &Qwen2Config) -> bool {
    key.ends_with("rotary_emb.inv_freq") || (config.tie_word_embeddings && key == "lm_head.weight")
}

/// The safetensors files of `dir`: the shards named by the index, else the single file.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, WeightsError> {
    let index = dir.join(INDEX_FILE);
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| WeightsError::Format {
                path: index.display().to_string(),
                message: e.to_string(),
            })?;
        let map = parsed
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| WeightsError::Format {
                path: index.display().to_string(),
                message: "no `weight_map` object".to_string(),
            })?;
        let files: std::collections::BTreeSet<&str> =
            map.values().filter_map(|v| v.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join(SINGLE_FILE);
    if single.exists() {
        Ok(vec![single])
    } else {
        Err(WeightsError::NoWeights {
            dir: dir.display().to_string(),
        })
    }
}

/// Checks shape and dtype, then copies `view` into `param` (converting dtype and device).
pub(crate) fn copy_into(
    param: &Tensor,
    view: &safetensors::tensor::TensorView<'_>,
    path: &str,
    key: &str,
) -> Result<(), WeightsError> {
    let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    let expected = param.size();
    if found != expected {
        return Err(WeightsError::Shape {
            path: path.to_string(),
            key: key.to_string(),
            expected,
            found,
        });
    }
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        other => {
            return Err(WeightsError::Dtype {
                path: path.to_string(),
                key: key.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    };
    let source = Tensor::from_data_size(view.data(), &found, kind);
    tch::no_grad(|| {
        let mut target = param.shallow_clone();
        target.copy_(&source.to_device(param.device()).to_kind(param.kind()));
    });
    Ok(())
}

/// One tensor's bytes ready for the safetensors writer.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_host(tensor: &Tensor) -> Result<HostTensor, WeightsError> {
    let dtype = match tensor.kind() {
        Kind::Float => Dtype::F32,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        other => return Err(WeightsError::UnsupportedKind(format!("{other:?}"))),
    };
    let host = tensor.detach().to_device(Device::Cpu).contiguous();
    let numel = host.numel();
    let mut bytes = vec![0u8; numel * host.kind().elt_size_in_bytes()];
    host.copy_data_u8(&mut bytes, numel);
    let shape = host.size().iter().map(|&d| d as usize).collect();
    Ok(HostTensor {
        dtype,
        shape,
        bytes,
    })
}

/// Saves `model` into `dir` (created if needed) as transformers would: `config.json` and one
/// `model.safetensors`, or shards of at most `max_shard_bytes` plus the index.
pub fn save_model(model: &Qwen2, dir: &Path, max_shard_bytes: u64) -> Result<(), WeightsError> {
    save_with(model, dir, max_shard_bytes, &|_, t| t.shallow_clone())
}

/// [`save_model`] of the merged model: every weight the attached LoRA adapter targets is
/// written as W + s B A ([`Qwen2::merged_weight`]), computed one tensor at a time and copied
/// to host memory at once, so neither the model nor the device holds a merged copy.
pub fn save_merged(model: &Qwen2, dir: &Path, max_shard_bytes: u64) -> Result<(), WeightsError> {
    let merged = |name: &str, t: &Tensor| {
        model
            .merged_weight(name)
            .unwrap_or_else(|| t.shallow_clone())
    };
    save_with(model, dir, max_shard_bytes, &merged)
}

/// The tensor written under a name (the parameter itself, or a merged weight).
type Written<'a> = &'a dyn Fn(&str, &Tensor) -> Tensor;

fn save_with(
    model: &Qwen2,
    dir: &Path,
    max_shard_bytes: u64,
    written: Written<'_>,
) -> Result<(), WeightsError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let config = model.config.to_hf_json(dtype_name(model.kind())?);
    let config_path = dir.join("config.json");
    let pretty = serde_json::to_string_pretty(&config).expect("a JSON value serialises");
    std::fs::write(&config_path, pretty + "\n").map_err(io_err(&config_path))?;
    let tensors: BTreeMap<String, Tensor> = model.vs.variables().into_iter().collect();
    let shards = plan_shards(&tensors, max_shard_bytes);
    if shards.len() == 1 {
        return write_shard(&tensors, &shards[0], &dir.join(SINGLE_FILE), written);
    }
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0u64;
    for (i, names) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards.len());
        write_shard(&tensors, names, &dir.join(&file), written)?;
        for name in names {
            total_size += byte_size(&tensors[name]);
            weight_map.insert(name.clone(), file.clone());
        }
    }
    let index =
        serde_json::json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
    let index_path = dir.join(INDEX_FILE);
    let text = serde_json::to_string_pretty(&index).expect("a JSON value serialises");
    std::fs::write(&index_path, text + "\n").map_err(io_err(&index_path))
}

fn byte_size(t: &Tensor) -> u64 {
    (t.numel() * t.kind().elt_size_in_bytes()) as u64
}

/// Groups names (in sorted order) into shards of at most `max_bytes` each; a tensor larger
/// than the limit gets a shard of its own, as in transformers.
fn plan_shards(tensors: &BTreeMap<String, Tensor>, max_bytes: u64) -> Vec<Vec<String>> {
    let mut shards: Vec<Vec<String>> = vec![Vec::new()];
    let mut current = 0u64;
    for (name, tensor) in tensors {
        let size = byte_size(tensor);
        if current > 0 && current + size > max_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        shards
            .last_mut()
            .expect("one shard at least")
            .push(name.clone());
        current += size;
    }
    shards
}

fn write_shard(
    tensors: &BTreeMap<String, Tensor>,
    names: &[String],
    path: &Path,
    written: Written<'_>,
) -> Result<(), WeightsError> {
    // Each written tensor goes to host memory at once, so a merged weight lives on the
    // device only while it is copied out.
    let host: Vec<(&str, HostTensor)> = names
        .iter()
        .map(|n| Ok((n.as_str(), to_host(&written(n, &tensors[n]))?)))
        .collect::<Result<_, WeightsError>>()?;
    write_host(host, path)
}

/// Writes `tensors` into one safetensors file at `path`, with the `format: pt` metadata
/// transformers and PEFT require.
pub(crate) fn write_safetensors<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    path: &Path,
) -> Result<(), WeightsError> {
    let host: Vec<(&str, HostTensor)> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, to_host(t)?)))
        .collect::<Result<_, WeightsError>>()?;
    write_host(host, path)
}

fn write_host(host: Vec<(&str, HostTensor)>, path: &Path) -> Result<(), WeightsError> {
    // transformers refuses safetensors files without `format: pt` metadata.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(host.iter().map(|(n, t)| (*n, t)), Some(metadata), path)
        .map_err(|e| WeightsError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}
