//! Training checkpoints, written atomically: a crash at any moment leaves either the previous
//! complete checkpoint or the new complete one, never a torn one.
//!
//! Layout of `<run>/checkpoints/iter-000012/`:
//! - `model/` — the policy in Hugging Face layout (config.json + safetensors), loadable by
//!   transformers and vLLM as it is; or, when only a LoRA adapter trains, `adapter/` instead:
//!   the adapter alone in PEFT's layout (PEFT and vLLM load it over the base model; `swerl
//!   merge` folds it in), never a copy of the frozen base;
//! - `optimizer.safetensors` — AdamW moments (`exp_avg.{i}`, `exp_avg_sq.{i}`, in parameter
//!   order, which `state.json` lists by name) and, for a run with bf16 working weights, the
//!   f32 master weights (`master.{i}`): `model/` holds their bf16 rounding (what serving
//!   loads), and a resume continues from the masters, bit for bit;
//! - `state.json` — iteration, optimizer step, data cursor, seed and parameter names.
//!
//! Randomness is derived from `(seed, iteration, ...)` everywhere in the loop, so the seed and
//! the iteration are the whole RNG state: nothing stateful needs saving for a bit-for-bit
//! resume. The directory is built as `iter-000012.tmp`, every file fsynced, then renamed;
//! `latest` (a one-line file, replaced by rename) names the newest complete checkpoint.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::learner::Learner;

/// The policy's folder in a checkpoint of a full-training run.
pub const MODEL_DIR: &str = "model";
/// The policy's folder in a checkpoint of a LoRA run.
pub const ADAPTER_DIR: &str = "adapter";

/// Where checkpoint `dir` keeps what `learner` trains: `adapter/` for a LoRA learner, else
/// `model/`. The weight sync of an iteration loads this folder.
pub fn policy_dir(dir: &Path, learner: &Learner) -> PathBuf {
    dir.join(if learner.is_lora() {
        ADAPTER_DIR
    } else {
        MODEL_DIR
    })
}

/// Everything besides tensors that a resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Completed iterations (or RFT epochs' steps).
    pub iteration: u64,
    pub optimizer_step: u64,
    /// Position in the task stream / dataset for the next iteration.
    pub data_cursor: u64,
    pub seed: u64,
    /// Parameter names in optimizer-slot order.
    pub param_names: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {message}")]
    Invalid { path: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, message: impl ToString) -> CheckpointError {
    CheckpointError::Invalid {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Writes a checkpoint of `learner` and `state` under `root` and points `latest` at it.
/// Returns the checkpoint directory.
pub fn save(
    root: &Path,
    learner: &Learner,
    state: &TrainState,
) -> Result<PathBuf, CheckpointError> {
    save_with_files(root, learner, state, &[])
}

/// [`save`], with `model_files` (tokenizer and chat-template files) copied into the
/// checkpoint's `model/` before it becomes visible, so every checkpoint is a complete model
/// directory that `swerl eval --policy embedded:...`, transformers or vLLM can load.
pub fn save_with_files(
    root: &Path,
    learner: &Learner,
    state: &TrainState,
    model_files: &[PathBuf],
) -> Result<PathBuf, CheckpointError> {
    let name = format!("iter-{:06}", state.iteration);
    let (tmp, done) = (root.join(format!("{name}.tmp")), root.join(&name));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    save_policy(learner, &tmp, model_files)?;
    let opt_path = tmp.join("optimizer.safetensors");
    Tensor::write_safetensors(&learner.trainable.state(), &opt_path)
        .map_err(|e| invalid(&opt_path, e))?;
    let state_json = serde_json::to_vec_pretty(state).expect("state serialises");
    std::fs::write(tmp.join("state.json"), state_json).map_err(io(&tmp))?;
    sync_tree(&tmp)?;
    if done.exists() {
        std::fs::remove_dir_all(&done).map_err(io(&done))?;
    }
    std::fs::rename(&tmp, &done).map_err(io(&done))?;
    write_atomic(&root.join("latest"), format!("{name}\n").as_bytes())?;
    sync_dir(root)?;
    Ok(done)
}

/// Writes the policy folder of `learner` into checkpoint `tmp`: the adapter alone (LoRA),
/// else the model with `model_files` beside it.
fn save_policy(
    learner: &Learner,
    tmp: &Path,
    model_files: &[PathBuf],
) -> Result<(), CheckpointError> {
    let dir = policy_dir(tmp, learner);
    if let Some(lora) = learner.model.lora() {
        return lora.save(&dir).map_err(|e| invalid(&dir, e));
    }
    swerl_model::weights::save_model(&learner.model, &dir, 2 << 30).map_err(|e| invalid(tmp, e))?;
    for file in model_files {
        let name = file
            .file_name()
            .ok_or_else(|| invalid(file, "not a file name"))?;
        std::fs::copy(file, dir.join(name)).map_err(io(file))?;
    }
    Ok(())
}

/// The newest complete checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let pointer = root.join("latest");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = root.join(name.trim());
            if !dir.join("state.json").is_file() {
                return Err(invalid(
                    &pointer,
                    format!("names {} which is not a complete checkpoint", dir.display()),
                ));
            }
            Ok(Some(dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&pointer)(e)),
    }
}

/// Restores weights and optimizer state (f32 masters included) into `learner` from checkpoint
/// `dir`.
pub fn load(dir: &Path, learner: &mut Learner) -> Result<TrainState, CheckpointError> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| invalid(&state_path, e))?;
    if state.param_names != learner.trainable.names() {
        let lora_saved = dir.join(ADAPTER_DIR).is_dir();
        let problem = match (lora_saved, learner.is_lora()) {
            (true, false) => {
                "the checkpoint trained a LoRA adapter; resume with the run's LoRA settings"
            }
            (false, true) => "the checkpoint trained the full model; resume without LoRA",
            _ => {
                "parameter names differ from the model being resumed (another model or LoRA config)"
            }
        };
        return Err(invalid(&state_path, problem));
    }
    load_policy(dir, learner)?;
    let opt_path = dir.join("optimizer.safetensors");
    let moments = Tensor::read_safetensors(&opt_path).map_err(|e| invalid(&opt_path, e))?;
    learner
        .trainable
        .load_state(state.optimizer_step, &moments)
        .map_err(|e| invalid(&opt_path, e))?;
    Ok(state)
}

/// Loads the policy folder of checkpoint `dir` into `learner`: the adapter's factors (LoRA),
/// else the model's weights.
fn load_policy(dir: &Path, learner: &Learner) -> Result<(), CheckpointError> {
    let policy = policy_dir(dir, learner);
    let Some(lora) = learner.model.lora() else {
        return swerl_model::weights::load_weights(&learner.model, &policy)
            .map_err(|e| invalid(dir, e));
    };
    let saved =
        swerl_model::lora::LoraAdapter::load(&policy, &learner.model.config, tch::Device::Cpu)
            .map_err(|e| invalid(&policy, e))?;
    if saved.config != lora.config {
        return Err(invalid(
            &policy,
            format!(
                "the saved adapter is {:?}, the run's is {:?}; resume with the run's LoRA settings",
                saved.config, lora.config
            ),
        ));
    }
    let tensors: Vec<(String, Tensor)> = saved.named_tensors().into_iter().collect();
    lora.copy_from(&tensors).map_err(|e| invalid(&policy, e))
}

/// Replaces `path` with `bytes` through a fsynced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn sync_tree(dir: &Path) -> Result<(), CheckpointError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}
