//! OpenAI-compatible servers (SGLang, vLLM, `swerl serve`) as `swerl train`'s sampler.
//! Episodes talk to the servers token-in/token-out through `HttpPolicy`; weights sync by
//! the checkpoint the loop has just written plus one reload call per server
//! (`swerl_policy::http::reload`): `--reload`, by default SGLang's
//! `POST /update_weights_from_disk {"model_path": "{path}"}`, which `swerl serve` answers too.
//!
//! LoRA runs sync one of two ways (`--lora-sync`): `adapter` loads the checkpoint's adapter
//! through vLLM's `POST /v1/load_lora_adapter` under `--model-name`, which the episodes' requests
//! name (the initial adapter is loaded before the first rollout); `merged` writes the merged
//! model next to the checkpoint and loads it through `--reload` like a full checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use swerl_model::chat::ChatTokenizer;
use swerl_policy::http::reload::{
    vllm_lora_reload, ReloadCall, ReloadConfig, Reloader, SGLANG_RELOAD,
};
use swerl_policy::{EpisodeSeed, HttpBackend, HttpConfig, HttpPolicy};
use swerl_rollout::DynPolicy;
use swerl_train::dapo_loop::BackendError;
use swerl_train::Learner;

use super::backend::Sampler;
use super::{Args, LoraSync};

pub(super) struct Http {
    backend: Arc<HttpBackend>,
    chat: Arc<ChatTokenizer>,
    reloader: Reloader,
    /// LoRA with `--lora-sync merged`: write the merged model, with these tokenizer files.
    merged: Option<Vec<std::path::PathBuf>>,
}

impl Http {
    /// Clients for `urls` serving `--model-name`, with `--model`'s tokenizer and chat template.
    /// A LoRA run syncing adapters loads `learner`'s initial adapter first, so that the
    /// first rollouts can name it.
    pub(super) fn start(args: &Args, urls: Vec<String>, learner: &Learner) -> anyhow::Result<Self> {
        let Some(name) = &args.model_name else {
            anyhow::bail!("--policy http:... needs --model-name (the servers' served model name)");
        };
        let chat = ChatTokenizer::from_dir(&args.model).with_context(|| {
            format!(
                "loading the tokenizer and chat template from {}",
                args.model.display()
            )
        })?;
        let mut config = HttpConfig::new(urls.clone(), name.clone());
        config.max_concurrency = args.concurrency.max(1);
        let adapter_sync = learner.is_lora() && args.lora_sync == LoraSync::Adapter;
        let call = match (&args.reload, adapter_sync) {
            (Some(call), _) => call.clone(),
            (None, true) => vllm_lora_reload(name),
            (None, false) => SGLANG_RELOAD.to_string(),
        };
        let reload = ReloadConfig {
            call: ReloadCall::parse(&call)?,
            timeout: Duration::from_secs(args.reload_timeout),
            max_retries: args.reload_retries,
            ..ReloadConfig::default()
        };
        let mut http = Http {
            backend: Arc::new(HttpBackend::new(config)?),
            chat: Arc::new(chat),
            reloader: Reloader::new(urls, reload)?,
            merged: (learner.is_lora() && args.lora_sync == LoraSync::Merged)
                .then(|| swerl_train::rft::tokenizer_files(&args.model)),
        };
        if adapter_sync {
            let initial = args.out.join("lora-initial");
            let lora = learner.model.lora().expect("a LoRA learner");
            lora.save(&initial)
                .with_context(|| format!("writing the initial adapter to {}", initial.display()))?;
            http.sync(learner, &initial).map_err(|e| {
                anyhow::anyhow!("loading the initial adapter into the servers: {e}")
            })?;
        }
        Ok(http)
    }
}

impl Sampler for Http {
    fn policy(&self, seed: EpisodeSeed) -> DynPolicy {
        DynPolicy(Box::new(HttpPolicy::new(
            self.backend.clone(),
            self.chat.clone(),
            seed,
        )))
    }

    /// The servers load the checkpoint by absolute path (they need not share our working
    /// directory, only the filesystem); with `--lora-sync merged`, the merged model written
    /// beside the checkpoint's adapter.
    fn sync(&mut self, learner: &Learner, checkpoint: &Path) -> Result<(), BackendError> {
        let merged;
        let checkpoint = match &self.merged {
            None => checkpoint,
            Some(files) => {
                merged = write_merged(learner, checkpoint, files)?;
                merged.as_path()
            }
        };
        let dir = std::fs::canonicalize(checkpoint).map_err(|e| {
            format!(
                "the checkpoint {} to reload is not there: {e}",
                checkpoint.display()
            )
        })?;
        Ok(self.reloader.reload(&dir)?)
    }

    fn shutdown(self: Box<Self>) {}
}

/// Writes the merged model of LoRA `learner` into `merged/` beside the checkpoint's policy
/// folder `adapter_dir` (so it goes when the checkpoint is pruned), with the tokenizer `files`.
fn write_merged(
    learner: &Learner,
    adapter_dir: &Path,
    files: &[std::path::PathBuf],
) -> Result<std::path::PathBuf, BackendError> {
    let parent = adapter_dir.parent().unwrap_or(adapter_dir);
    let (tmp, dir) = (parent.join("merged.tmp"), parent.join("merged"));
    for old in [&tmp, &dir] {
        if old.exists() {
            std::fs::remove_dir_all(old)?;
        }
    }
    let shard = swerl_model::weights::DEFAULT_SHARD_BYTES;
    swerl_model::weights::save_merged(&learner.model, &tmp, shard)?;
    for file in files {
        if let Some(name) = file.file_name() {
            std::fs::copy(file, tmp.join(name))?;
        }
    }
    // Complete or absent: a server never loads a half-written merged model.
    std::fs::rename(&tmp, &dir)?;
    Ok(dir)
}
