//! `swerl merge`: folds a LoRA adapter (PEFT layout, e.g. what `swerl rft --lora` or a
//! `swerl train` checkpoint wrote) into its base model and writes a plain Hugging Face model
//! directory that transformers, vLLM and `--policy embedded:DIR` load without knowing LoRA.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

/// Merge a LoRA adapter into its base model.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The base model the adapter was trained on: a Hugging Face model directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The adapter: adapter_config.json + adapter_model.safetensors.
    #[arg(long, value_name = "DIR")]
    adapter: PathBuf,
    /// Output model directory (must not exist yet): config, weights, the base's tokenizer files.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write the merged weights as float32 or bfloat16 (default: the base's dtype).
    #[arg(long)]
    dtype: Option<String>,
    /// Compute device of the merge: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        bail!(
            "--out {} already exists; give a new directory (merging never overwrites a model)",
            args.out.display()
        );
    }
    let device = swerl_model::device::resolve_device(&args.device)?;
    let kind = args
        .dtype
        .as_deref()
        .map(swerl_model::weights::kind_from_dtype)
        .transpose()?;
    let adapter = merge_into(&args.model, &args.adapter, &args.out, device, kind)?;
    println!(
        "merged the rank-{} adapter ({} projections per layer) of {} into {}: {}",
        adapter.rank,
        adapter.target_modules.len(),
        args.adapter.display(),
        args.model.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads `base` with `adapter`, merges, and writes the result (with the base's tokenizer
/// files) into a temporary sibling of `out` that is renamed into place once complete.
pub fn merge_into(
    base: &Path,
    adapter: &Path,
    out: &Path,
    device: tch::Device,
    kind: Option<tch::Kind>,
) -> anyhow::Result<swerl_model::lora::LoraConfig> {
    let mut model =
        swerl_model::lora::load_adapted(base, adapter, device, kind).with_context(|| {
            format!(
                "loading {} with the adapter in {}",
                base.display(),
                adapter.display()
            )
        })?;
    let lora = model
        .merge_lora()
        .expect("load_adapted attaches the adapter");
    let tmp = out.with_extension("merging.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    swerl_model::weights::save_model(&model, &tmp, swerl_model::weights::DEFAULT_SHARD_BYTES)
        .with_context(|| format!("writing {}", tmp.display()))?;
    swerl_train::rft::copy_tokenizer_files(base, &tmp)
        .with_context(|| format!("copying the tokenizer files of {}", base.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(lora.config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swerl_model::lora::load_adapted;
    use swerl_model::weights::load_model;
    use tch::{Device, Kind, Tensor};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/fixtures")
            .join(name)
    }

    fn logprobs(model: &swerl_model::qwen2::Qwen2) -> Tensor {
        let ids = Tensor::from_slice(&[22i64, 506, 217, 201, 137, 437, 489, 451]).unsqueeze(0);
        tch::no_grad(|| {
            swerl_model::logprobs::token_logprobs(
                model,
                &ids.narrow(1, 0, 7),
                &ids.narrow(1, 1, 7),
                4,
            )
        })
    }

    #[test]
    fn merged_directory_scores_as_the_adapted_model_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("merged");
        let (base, adapter) = (fixture("tiny-qwen2"), fixture("tiny-qwen2-lora"));
        let cli = |out: &Path| Args {
            model: base.clone(),
            adapter: adapter.clone(),
            out: out.to_path_buf(),
            dtype: None,
            device: "cpu".into(),
        };
        run(cli(&out)).unwrap();
        let merged = load_model(&out, Device::Cpu, None).unwrap();
        let adapted = load_adapted(&base, &adapter, Device::Cpu, None).unwrap();
        let err = (logprobs(&merged) - logprobs(&adapted))
            .abs()
            .max()
            .double_value(&[]);
        assert!(err < 1e-5, "merged vs adapted log-probs differ by {err}");
        assert_eq!(merged.kind(), Kind::Float);
        let again = run(cli(&out)).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        assert!(!out.with_extension("merging.tmp").exists());
    }
}
