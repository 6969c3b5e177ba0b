//! The LoRA flags of `swerl rft` and `swerl train`, and the learner they build: a base
//! model (frozen) wearing a fresh adapter, or the whole model when no adapter is asked for.

use std::path::Path;

use anyhow::{bail, Context};
use swerl_model::lora::{LoraAdapter, LoraConfig, Target};
use swerl_train::{AdamWConfig, Learner};

/// Train a LoRA adapter instead of the whole model.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LoraArgs {
    /// Train a LoRA adapter of this rank on the frozen model (checkpoints and outputs hold
    /// the adapter alone, in PEFT's layout; `swerl merge` folds it in).
    #[arg(long, value_name = "RANK")]
    pub lora: Option<i64>,
    /// The adapter's alpha: its update is scaled by alpha / rank (default 2 x rank).
    #[arg(long, value_name = "ALPHA", requires = "lora")]
    pub lora_alpha: Option<f64>,
    /// Dropout on the adapter's input while training (needs activation checkpointing off).
    #[arg(long, value_name = "P", requires = "lora")]
    pub lora_dropout: Option<f64>,
    /// Projections to adapt, comma-separated (default all: q_proj,k_proj,v_proj,o_proj,
    /// gate_proj,up_proj,down_proj).
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "lora")]
    pub lora_targets: Vec<String>,
}

impl LoraArgs {
    /// The adapter the flags ask for, if any.
    pub fn config(&self) -> anyhow::Result<Option<LoraConfig>> {
        let Some(rank) = self.lora else {
            return Ok(None);
        };
        let mut config = LoraConfig::new(rank);
        config.alpha = self.lora_alpha.unwrap_or(config.alpha);
        config.dropout = self.lora_dropout.unwrap_or(config.dropout);
        if !self.lora_targets.is_empty() {
            config.target_modules = self
                .lora_targets
                .iter()
                .map(|name| {
                    Target::from_name(name.trim()).with_context(|| {
                        format!("--lora-targets: `{name}` is not a Qwen2 projection (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            config.target_modules.sort();
            config.target_modules.dedup();
        }
        config.validate()?;
        Ok(Some(config))
    }
}

/// Loads `dir` as a model to train with fresh AdamW state (the paper's betas, eps and
/// wd 0.1): the whole model, or, with `lora`, a fresh adapter (A drawn from `seed`) on the
/// frozen model.
pub fn load_learner(
    dir: &Path,
    device: &str,
    dtype: Option<&str>,
    lora: Option<&LoraConfig>,
    seed: u64,
) -> anyhow::Result<Learner> {
    let device = swerl_model::device::resolve_device(device)?;
    let kind = dtype
        .map(swerl_model::weights::kind_from_dtype)
        .transpose()?;
    let mut model = swerl_model::weights::load_model(dir, device, kind)
        .with_context(|| format!("loading the model in {}", dir.display()))?;
    if model.kind() == tch::Kind::Half {
        // f16 gradients underflow without loss scaling, which swerl does not do.
        bail!(
            "{}: float16 weights cannot be trained here (float16 training needs loss scaling); \
             pass --dtype bfloat16 or --dtype float32",
            dir.display()
        );
    }
    if let Some(config) = lora {
        tch::manual_seed(seed as i64);
        let mut adapter = LoraAdapter::new(config.clone(), &model.config, device);
        adapter.base_model = Some(dir.display().to_string());
        model.attach_lora(adapter)?;
    }
    Ok(Learner::new(model, AdamWConfig::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_the_adapter_config_and_name_bad_targets() {
        let none = LoraArgs::default();
        assert!(none.config().unwrap().is_none());
        let args = LoraArgs {
            lora: Some(8),
            lora_targets: vec!["v_proj".into(), "q_proj".into()],
            ..LoraArgs::default()
        };
        let c = args.config().unwrap().unwrap();
        assert_eq!((c.rank, c.alpha, c.dropout), (8, 16.0, 0.0));
        assert_eq!(c.target_modules, vec![Target::QProj, Target::VProj]);
        let bad = LoraArgs {
            lora: Some(8),
            lora_targets: vec!["lm_head".into()],
            ..LoraArgs::default()
        };
        let err = bad.config().unwrap_err().to_string();
        assert!(
            err.contains("lm_head") && err.contains("--lora-targets"),
            "{err}"
        );
        let zero = LoraArgs {
            lora: Some(0),
            ..LoraArgs::default()
        };
        assert!(zero.config().unwrap_err().to_string().contains("rank is 0"));
    }
}
