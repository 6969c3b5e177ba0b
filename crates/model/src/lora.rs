//! LoRA adapters (Hu et al. 2021, arXiv:2106.09685) on Qwen2's projections, stored the way
//! Hugging Face PEFT stores them, so PEFT, vLLM and SGLang load what we train and we load
//! what they train.
//!
//! A targeted projection `y = x W^T (+ b)` becomes `y + s * (dropout(x) A^T) B^T` with
//! A [r, in], B [out, r] and s = alpha / r. The base weights W are frozen and never copied:
//! the adapter holds only A and B, in f32 whatever the base's dtype (as PEFT keeps them),
//! and the model adds the update in its forward ([`crate::qwen2::Qwen2::attach_lora`]).
//! B starts at zero, so a fresh adapter computes exactly the base model.
//!
//! On disk (PEFT's `save_pretrained` layout): `adapter_config.json` (`peft_type: LORA`, `r`,
//! `lora_alpha`, `lora_dropout`, `target_modules`, ...) and `adapter_model.safetensors` with
//! keys `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` and so on.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};

use crate::config::Qwen2Config;
use crate::qwen2::Qwen2;

/// Name of the adapter's weights file.
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
/// Name of the adapter's configuration file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";

/// What went wrong building, loading or saving an adapter.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA config: {0}")]
    Config(String),
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("{path}: the adapter setting `{field}` = {value} is not supported: {fix}")]
    Unsupported {
        path: String,
        field: String,
        value: String,
        fix: &'static str,
    },
    #[error("adapter {path} lacks {} tensor(s) for this model: {}", missing.len(), missing.join(", "))]
    Missing { path: String, missing: Vec<String> },
    #[error("loading the base model: {0}")]
    Base(#[from] crate::weights::WeightsError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LoraError + '_ {
    move |source| LoraError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A projection an adapter can target, named as in the checkpoint and in PEFT's
/// `target_modules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl Target {
    /// Every projection of a decoder layer: the default, and PEFT's usual choice for Qwen2.
    pub const ALL: [Target; 7] = [
        Target::QProj,
        Target::KProj,
        Target::VProj,
        Target::OProj,
        Target::GateProj,
        Target::UpProj,
        Target::DownProj,
    ];

    /// The module name (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Target::QProj => "q_proj",
            Target::KProj => "k_proj",
            Target::VProj => "v_proj",
            Target::OProj => "o_proj",
            Target::GateProj => "gate_proj",
            Target::UpProj => "up_proj",
            Target::DownProj => "down_proj",
        }
    }

    /// The projection named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The block that holds it (`self_attn` or `mlp`).
    pub fn block(self) -> &'static str {
        match self {
            Target::QProj | Target::KProj | Target::VProj | Target::OProj => "self_attn",
            Target::GateProj | Target::UpProj | Target::DownProj => "mlp",
        }
    }

    /// (in, out) features of the projection in a model of config `c`.
    pub fn features(self, c: &Qwen2Config) -> (i64, i64) {
        let (h, i, d) = (
            c.hidden_size as i64,
            c.intermediate_size as i64,
            c.head_dim as i64,
        );
        let (nq, nkv) = (c.num_attention_heads as i64, c.num_key_value_heads as i64);
        match self {
            Target::QProj => (h, nq * d),
            Target::KProj | Target::VProj => (h, nkv * d),
            Target::OProj => (nq * d, h),
            Target::GateProj | Target::UpProj => (h, i),
            Target::DownProj => (i, h),
        }
    }
}

/// The adapter's shape and scale. Written in run configs as
/// `{"rank": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", ...]}`; only
/// `rank` is required (defaults: alpha = 2 x rank, dropout 0, every projection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LoraSpec")]
pub struct LoraConfig {
    /// r: the rank of the update B A.
    pub rank: i64,
    /// The update is scaled by alpha / r.
    pub alpha: f64,
    /// Dropout on the adapter's input during training (PEFT's `lora_dropout`).
    pub dropout: f64,
    /// The projections adapted in every layer, in [`Target::ALL`] order.
    pub target_modules: Vec<Target>,
}

/// [`LoraConfig`] as written, before defaults and checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoraSpec {
    rank: i64,
    alpha: Option<f64>,
    #[serde(default)]
    dropout: f64,
    target_modules: Option<Vec<Target>>,
}

impl TryFrom<LoraSpec> for LoraConfig {
    type Error = LoraError;

    fn try_from(s: LoraSpec) -> Result<Self, LoraError> {
        let mut config = LoraConfig::new(s.rank);
        config.alpha = s.alpha.unwrap_or(config.alpha);
        config.dropout = s.dropout;
        if let Some(targets) = s.target_modules {
            config.target_modules = targets;
        }
        config.validate()?;
        config.target_modules.sort();
        config.target_modules.dedup();
        Ok(config)
    }
}

impl LoraConfig {
    /// Rank `rank`, alpha = 2 x rank, no dropout, every projection.
    pub fn new(rank: i64) -> Self {
        LoraConfig {
            rank,
            alpha: 2.0 * rank as f64,
            dropout: 0.0,
            target_modules: Target::ALL.to_vec(),
        }
    }

    /// Checks the values a user may get wrong.
    pub fn validate(&self) -> Result<(), LoraError> {
        let bad = |m: String| Err(LoraError::Config(m));
        if self.rank < 1 {
            return bad(format!("rank is {}; give a rank of at least 1", self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!("alpha is {}; give a positive alpha", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "dropout is {}; give a probability in [0, 1)",
                self.dropout
            ));
        }
        if self.target_modules.is_empty() {
            return bad("target_modules is empty; name at least one projection".into());
        }
        Ok(())
    }

    /// The factor s = alpha / r of the update.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Trainable parameters of this adapter on a model of config `c`:
    /// r x (in + out) per targeted projection per layer.
    pub fn parameter_count(&self, c: &Qwen2Config) -> u64 {
        let per_layer: i64 = self
            .target_modules
            .iter()
            .map(|t| {
                let (i, o) = t.features(c);
                self.rank * (i + o)
            })
            .sum();
        per_layer as u64 * c.num_hidden_layers as u64
    }

    /// The `adapter_config.json` PEFT writes for this adapter (the fields that change the
    /// computation, and those vLLM reads).
    pub fn to_peft_json(&self, base_model: Option<&str>) -> Value {
        let targets: Vec<&str> = self.target_modules.iter().map(|t| t.name()).collect();
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": false,
            "use_dora": false,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "init_lora_weights": true,
            "inference_mode": true,
        })
    }

    /// Reads PEFT's `adapter_config.json` text; `origin` names it in errors. The file is
    /// foreign, so fields that do not change the computation are ignored; those that would
    /// change it in ways we do not implement (DoRA, rsLoRA, per-layer ranks, extra trained
    /// modules, biases) are errors.
    pub fn from_peft_json(text: &str, origin: &str) -> Result<Self, LoraError> {
        let json: Value = serde_json::from_str(text).map_err(|e| LoraError::Format {
            path: origin.into(),
            message: format!("not JSON: {e}"),
        })?;
        check_peft_settings(&json, origin)?;
        let number = |field: &str| json.get(field).and_then(Value::as_f64);
        let missing = |field: &str| LoraError::Format {
            path: origin.into(),
            message: format!("`{field}` is missing or not a number"),
        };
        let rank = number("r").ok_or_else(|| missing("r"))? as i64;
        let config = LoraConfig {
            rank,
            alpha: number("lora_alpha").ok_or_else(|| missing("lora_alpha"))?,
            dropout: number("lora_dropout").unwrap_or(0.0),
            target_modules: peft_targets(json.get("target_modules"), origin)?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Refuses PEFT settings that change the computation in ways this model does not implement.
fn check_peft_settings(json: &Value, origin: &str) -> Result<(), LoraError> {
    let unsupported = |field: &str, value: &Value, fix| {
        Err(LoraError::Unsupported {
            path: origin.into(),
            field: field.into(),
            value: value.to_string(),
            fix,
        })
    };
    let peft_type = json.get("peft_type").unwrap_or(&Value::Null);
    if peft_type != "LORA" {
        return unsupported(
            "peft_type",
            peft_type,
            "only LoRA adapters (LORA) load here",
        );
    }
    let empty = |v: &Value| match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty() || s == "none",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    let must_be_empty = [
        (
            "use_dora",
            "DoRA adapters are not implemented; train a plain LoRA",
        ),
        (
            "use_rslora",
            "rank-stabilised scaling is not implemented; train with use_rslora false",
        ),
        (
            "fan_in_fan_out",
            "only the Linear layout of Qwen2 (fan_in_fan_out false) is supported",
        ),
        (
            "bias",
            "adapters that train biases are not supported (bias must be \"none\")",
        ),
        ("lora_bias", "adapters that train biases are not supported"),
        (
            "modules_to_save",
            "adapters that carry fully trained modules are not supported",
        ),
        (
            "rank_pattern",
            "per-module ranks are not supported; use one rank",
        ),
        (
            "alpha_pattern",
            "per-module alphas are not supported; use one alpha",
        ),
        (
            "layers_to_transform",
            "adapters on a subset of layers are not supported",
        ),
        (
            "target_parameters",
            "adapters on raw parameters are not supported",
        ),
        (
            "trainable_token_indices",
            "trained token embeddings are not supported",
        ),
    ];
    for (field, fix) in must_be_empty {
        if let Some(v) = json.get(field).filter(|v| !empty(v)) {
            return unsupported(field, v, fix);
        }
    }
    Ok(())
}

/// PEFT's `target_modules`: a list of module names (or dotted paths ending in one), or
/// `"all-linear"` (every projection but the output head).
fn peft_targets(value: Option<&Value>, origin: &str) -> Result<Vec<Target>, LoraError> {
    let bad = |message: String| LoraError::Format {
        path: origin.into(),
        message,
    };
    let names: Vec<&str> = match value {
        Some(Value::String(s)) if s == "all-linear" => return Ok(Target::ALL.to_vec()),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        other => {
            return Err(bad(format!(
            "`target_modules` is {}; expected a list of Qwen2 projection names or \"all-linear\"",
            other.map_or("missing".into(), Value::to_string)
        )))
        }
    };
    let mut targets = Vec::new();
    for name in names {
        let last = name.rsplit('.').next().unwrap_or(name);
        let target = Target::from_name(last).ok_or_else(|| {
            bad(format!(
                "target module `{name}` is not a Qwen2 projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"
            ))
        })?;
        targets.push(target);
    }
    targets.sort();
    targets.dedup();
    Ok(targets)
}

/// Which of the two factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// A [r, in]: projects the input down to the rank.
    A,
    /// B [out, r]: projects back up; zero at initialisation.
    B,
}

/// PEFT's key of one factor: `base_model.model.model.layers.{layer}.{block}.{name}.lora_{A|B}.weight`.
pub fn peft_key(layer: usize, target: Target, factor: Factor) -> String {
    let f = match factor {
        Factor::A => "A",
        Factor::B => "B",
    };
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.lora_{f}.weight",
        target.block(),
        target.name()
    )
}

/// The update of one projection: the adapter's A and B (shared with its store, so optimizer
/// steps and loads are seen at once), the scale and the dropout.
#[derive(Debug)]
pub struct LoraPair {
    a: Tensor, // [r, in], f32
    b: Tensor, // [out, r], f32
    scale: f64,
    dropout: f64,
}

impl LoraPair {
    /// `y + s * (dropout(x) A^T) B^T` for the base output `y` of input `x`, computed in the
    /// adapter's f32 and cast back to `y`'s kind, in PEFT's order of operations; dropout
    /// only when `train`.
    pub fn add_to(&self, y: Tensor, x: &Tensor, train: bool) -> Tensor {
        let kind = y.kind();
        let x = x.to_kind(self.a.kind());
        let x = if train && self.dropout > 0.0 {
            x.dropout(self.dropout, true)
        } else {
            x
        };
        let update = x
            .linear::<Tensor>(&self.a, None)
            .linear::<Tensor>(&self.b, None)
            * self.scale;
        (y + update).to_kind(kind)
    }

    /// s * B A [out, in] in f32: what merging adds to the base weight.
    pub fn delta(&self) -> Tensor {
        self.b.matmul(&self.a) * self.scale
    }
}

/// A LoRA adapter: its config and its factors, f32, in a store of their own named by PEFT's
/// keys (so saving and loading are name-for-name, and the optimizer sees these names).
#[derive(Debug)]
pub struct LoraAdapter {
    pub config: LoraConfig,
    /// Decoder layers of the model it was built for.
    pub layers: usize,
    pub vs: nn::VarStore,
    /// The base model it adapts, as PEFT records it (`base_model_name_or_path`).
    pub base_model: Option<String>,
}

impl LoraAdapter {
    /// A fresh adapter for a model of config `model` on `device`, initialised as PEFT does:
    /// A uniform in +-1/sqrt(in) (PyTorch's Linear default, PEFT's `init_lora_weights=True`),
    /// B = 0. Draws from libtorch's global generator (seed it with `tch::manual_seed`).
    pub fn new(config: LoraConfig, model: &Qwen2Config, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        for layer in 0..model.num_hidden_layers {
            for &target in &config.target_modules {
                let (fan_in, fan_out) = target.features(model);
                let bound = 1.0 / (fan_in as f64).sqrt();
                let a = nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                };
                add_var(
                    &vs,
                    &peft_key(layer, target, Factor::A),
                    &[config.rank, fan_in],
                    a,
                );
                let b = nn::Init::Const(0.0);
                add_var(
                    &vs,
                    &peft_key(layer, target, Factor::B),
                    &[fan_out, config.rank],
                    b,
                );
            }
        }
        LoraAdapter {
            config,
            layers: model.num_hidden_layers,
            vs,
            base_model: None,
        }
    }

    /// Loads a PEFT adapter directory (`adapter_config.json` + `adapter_model.safetensors`)
    /// for a model of config `model`; every key the config implies must be there with its
    /// shape, and no other key may be.
    pub fn load(dir: &Path, model: &Qwen2Config, device: Device) -> Result<Self, LoraError> {
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let config = LoraConfig::from_peft_json(&text, &config_path.display().to_string())?;
        let mut adapter = LoraAdapter::new(config, model, device);
        adapter.base_model = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|j| j["base_model_name_or_path"].as_str().map(str::to_string));
        let path = dir.join(ADAPTER_FILE);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let shown = path.display().to_string();
        let st = SafeTensors::deserialize(&bytes).map_err(|e| LoraError::Format {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let params = adapter.vs.variables();
        let mut found = std::collections::BTreeSet::new();
        let mut tensors = st.tensors();
        tensors.sort_by(|a, b| a.0.cmp(&b.0)); // the first error is then the same every run
        for (key, view) in tensors {
            let param = params.get(&key).ok_or_else(|| LoraError::Format {
                path: shown.clone(),
                message: format!(
                    "unexpected tensor `{key}`: not a factor of this adapter's config on this model (PEFT's keys look like {})",
                    peft_key(0, Target::QProj, Factor::A)
                ),
            })?;
            crate::weights::copy_into(param, &view, &shown, &key).map_err(|e| {
                LoraError::Format {
                    path: shown.clone(),
                    message: e.to_string(),
                }
            })?;
            found.insert(key);
        }
        let mut missing: Vec<String> = params.into_keys().filter(|k| !found.contains(k)).collect();
        if !missing.is_empty() {
            missing.sort();
            return Err(LoraError::Missing {
                path: shown,
                missing,
            });
        }
        Ok(adapter)
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir` (created if
    /// needed), as PEFT's `save_pretrained` does.
    pub fn save(&self, dir: &Path) -> Result<(), LoraError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        let json = self.config.to_peft_json(self.base_model.as_deref());
        let text = serde_json::to_string_pretty(&json).expect("a JSON value serialises") + "\n";
        std::fs::write(&config_path, text).map_err(io_err(&config_path))?;
        let path = dir.join(ADAPTER_FILE);
        let tensors = self.named_tensors();
        let entries = tensors.iter().map(|(n, t)| (n.as_str(), t));
        crate::weights::write_safetensors(entries, &path).map_err(|e| LoraError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The factors by PEFT key, in key order.
    pub fn named_tensors(&self) -> BTreeMap<String, Tensor> {
        self.vs.variables().into_iter().collect()
    }

    /// The pair of projection `target` in layer `layer`, if the adapter targets it.
    pub fn pair(&self, layer: usize, target: Target) -> Option<LoraPair> {
        let root = self.vs.root();
        let get = |factor| lookup(&root, &peft_key(layer, target, factor));
        Some(LoraPair {
            a: get(Factor::A)?,
            b: get(Factor::B)?,
            scale: self.config.scale(),
            dropout: self.config.dropout,
        })
    }

    /// Copies `tensors` (PEFT keys, as [`LoraAdapter::named_tensors`] gives them) into this
    /// adapter's factors; names and shapes are checked first, so a bad update changes nothing.
    pub fn copy_from(&self, tensors: &[(String, Tensor)]) -> Result<(), LoraError> {
        let params = self.vs.variables();
        let mut missing: Vec<String> = params
            .keys()
            .filter(|k| !tensors.iter().any(|(n, _)| n == *k))
            .cloned()
            .collect();
        for (name, t) in tensors {
            let p = params.get(name).ok_or_else(|| {
                LoraError::Config(format!("no factor named {name:?} in this adapter"))
            })?;
            if p.size() != t.size() {
                return Err(LoraError::Config(format!(
                    "{name}: shape {:?} does not match the adapter's {:?}",
                    t.size(),
                    p.size()
                )));
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(LoraError::Missing {
                path: "the update".into(),
                missing,
            });
        }
        tch::no_grad(|| {
            for (name, t) in tensors {
                let mut p = params[name].shallow_clone();
                p.copy_(&t.to_device(p.device()).to_kind(Kind::Float));
            }
        });
        Ok(())
    }

    /// A copy of this adapter with tensors of its own (on `device`): what an inference
    /// engine holds while the trainer keeps updating the original.
    pub fn copy_to(&self, device: Device) -> LoraAdapter {
        let vs = nn::VarStore::new(device);
        for (name, t) in self.vs.variables() {
            let copy = tch::no_grad(|| t.detach().to_device(device).copy());
            add_tensor(&vs, &name, copy, false);
        }
        LoraAdapter {
            config: self.config.clone(),
            layers: self.layers,
            vs,
            base_model: self.base_model.clone(),
        }
    }

    /// Checks that the adapter was built for a model of config `model`.
    pub fn check_fits(&self, model: &Qwen2Config) -> Result<(), LoraError> {
        if self.layers != model.num_hidden_layers {
            return Err(LoraError::Config(format!(
                "the adapter has {} layers, the model {}",
                self.layers, model.num_hidden_layers
            )));
        }
        for &target in &self.config.target_modules {
            let (fan_in, fan_out) = target.features(model);
            let pair = self
                .pair(0, target)
                .ok_or_else(|| LoraError::Config(format!("the adapter lacks {}", target.name())))?;
            let want = ([self.config.rank, fan_in], [fan_out, self.config.rank]);
            if pair.a.size() != want.0 || pair.b.size() != want.1 {
                return Err(LoraError::Config(format!(
                    "{} factors are {:?} and {:?}; this model needs {:?} and {:?}",
                    target.name(),
                    pair.a.size(),
                    pair.b.size(),
                    want.0,
                    want.1
                )));
            }
        }
        Ok(())
    }
}

/// The model in `base` (in `kind`, else its config's dtype) with the PEFT adapter in
/// `adapter` attached, on `device`.
pub fn load_adapted(
    base: &Path,
    adapter: &Path,
    device: Device,
    kind: Option<Kind>,
) -> Result<Qwen2, LoraError> {
    let mut model = crate::weights::load_model(base, device, kind)?;
    let lora = LoraAdapter::load(adapter, &model.config, device)?;
    model.attach_lora(lora)?;
    Ok(model)
}

/// The store's tensor at dotted `name` (tch paths cannot take dots in one component).
fn lookup(root: &nn::Path, name: &str) -> Option<Tensor> {
    let (parent, last) = split(root, name);
    parent.get(last)
}

/// Adds a trainable variable at dotted `name`, initialised with `init` (f32).
fn add_var(vs: &nn::VarStore, name: &str, dims: &[i64], init: nn::Init) {
    let root = vs.root();
    let (parent, last) = split(&root, name);
    let _ = parent.var(last, dims, init);
}

/// Adds `tensor` itself (no copy) at dotted `name`.
pub(crate) fn add_tensor(vs: &nn::VarStore, name: &str, tensor: Tensor, trainable: bool) {
    let root = vs.root();
    let (parent, last) = split(&root, name);
    let _ = parent.add(last, tensor, trainable);
}

fn split<'a, 'n>(root: &nn::Path<'a>, name: &'n str) -> (nn::Path<'a>, &'n str) {
    let (parents, last) = name.rsplit_once('.').unwrap_or(("", name));
    let parent = parents
        .split('.')
        .filter(|c| !c.is_empty())
        .fold(root.clone(), |path, c| path.sub(c));
    (parent, last)
}
