//! The embedded engine as `swerl train`'s sampler: one in-process engine thread batches every
//! episode's requests; weights sync by copying the trainer's tensors in memory.
//!
//! LoRA: the engine's model shares the trainer's frozen base tensors (one copy of the base
//! for both) and wears a copy of the adapter, applied unmerged; a sync copies the factors.
//! Merging into a copy of the base instead was measured slower per iteration on the tiny
//! model, on top of the second copy of the base it needs (BENCHMARKS.md, `bench lora`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use swerl_model::chat::ChatTokenizer;
use swerl_model::sampling::SamplingParams;
use swerl_policy::server::{self, ServerState};
use swerl_policy::{EmbeddedPolicy, Engine, EpisodeSeed};
use swerl_rollout::DynPolicy;
use swerl_train::dapo_loop::BackendError;
use swerl_train::Learner;

use super::backend::Sampler;
use super::Args;

pub(super) struct Embedded {
    engine: Engine,
    state: Arc<ServerState>,
    sampling: SamplingParams,
}

impl Embedded {
    /// An engine on `--device` with `--concurrency` as its batch size over `--model`: loaded
    /// again for full training, or `learner`'s shared base wearing a copy of its adapter.
    pub(super) fn start(args: &Args, seed: u64, learner: &Learner) -> anyhow::Result<Self> {
        let device = swerl_model::device::resolve_device(&args.device)?;
        let engine_config = args.engine.config(args.concurrency);
        let loading = || format!("loading the policy from {}", args.model.display());
        let (engine, state) = match learner.model.lora() {
            None => server::load_model_dir(&args.model, device, engine_config, None, seed)
                .with_context(loading)?,
            Some(lora) => {
                let mut model = learner.model.share_base();
                model.attach_lora(lora.copy_to(device))?;
                let chat = ChatTokenizer::from_dir(&args.model).with_context(loading)?;
                let shown = args.model.display().to_string();
                let name = args
                    .model
                    .file_name()
                    .map_or("model".into(), |n| n.to_string_lossy().into_owned());
                server::start_engine(model, chat, &shown, name, engine_config, seed)
                    .with_context(loading)?
            }
        };
        Ok(Embedded {
            engine,
            state,
            sampling: SamplingParams::rollout_default(),
        })
    }
}

impl Sampler for Embedded {
    fn policy(&self, seed: EpisodeSeed) -> DynPolicy {
        DynPolicy(Box::new(EmbeddedPolicy::new(
            self.state.engine.clone(),
            self.state.chat.clone(),
            self.sampling.clone(),
            seed,
            self.state.model_name.clone(),
        )))
    }

    fn sync(&mut self, learner: &Learner, _checkpoint: &Path) -> Result<(), BackendError> {
        let engine = &self.state.engine;
        match learner.model.lora() {
            Some(lora) => {
                Ok(engine.load_adapter_tensors(lora.named_tensors().into_iter().collect())?)
            }
            None => Ok(
                engine.load_named_tensors(learner.model.vs.variables().into_iter().collect())?
            ),
        }
    }

    fn shutdown(self: Box<Self>) {
        self.engine.shutdown();
    }
}
