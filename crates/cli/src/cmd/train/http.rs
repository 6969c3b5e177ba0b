//! OpenAI-compatible servers (SGLang, vLLM, `swerl serve`) as `swerl train`'s sampler.
//! Episodes talk to the servers token-in/token-out through `HttpPolicy`; weights sync by
//! the checkpoint the loop has just written plus one reload call per server
//! (`swerl_policy::http::reload`): `--reload`, by default SGLang's
//! `POST /update_weights_from_disk {"model_path": "{path}"}`, which `swerl serve` answers too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use swerl_model::chat::ChatTokenizer;
use swerl_policy::http::reload::{ReloadCall, ReloadConfig, Reloader};
use swerl_policy::{EpisodeSeed, HttpBackend, HttpConfig, HttpPolicy};
use swerl_rollout::DynPolicy;
use swerl_train::dapo_loop::BackendError;
use swerl_train::Learner;

use super::backend::Sampler;
use super::Args;

pub(super) struct Http {
    backend: Arc<HttpBackend>,
    chat: Arc<ChatTokenizer>,
    reloader: Reloader,
}

impl Http {
    /// Clients for `urls` serving `--model-name`, with `--model`'s tokenizer and chat template.
    pub(super) fn start(args: &Args, urls: Vec<String>) -> anyhow::Result<Self> {
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
        let reload = ReloadConfig {
            call: ReloadCall::parse(&args.reload)?,
            timeout: Duration::from_secs(args.reload_timeout),
            max_retries: args.reload_retries,
            ..ReloadConfig::default()
        };
        Ok(Http {
            backend: Arc::new(HttpBackend::new(config)?),
            chat: Arc::new(chat),
            reloader: Reloader::new(urls, reload)?,
        })
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
    /// directory, only the filesystem).
    fn sync(&mut self, _learner: &Learner, checkpoint: &Path) -> Result<(), BackendError> {
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
