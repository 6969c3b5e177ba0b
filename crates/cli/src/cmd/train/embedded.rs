//! The embedded engine as `swerl train`'s sampler: one in-process engine thread batches every
//! episode's requests; weights sync by copying the trainer's tensors in memory.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
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
    /// Loads `--model` into an engine on `--device` with `--concurrency` as its batch size.
    pub(super) fn start(args: &Args, seed: u64) -> anyhow::Result<Self> {
        let device = swerl_model::device::resolve_device(&args.device)?;
        let engine_config = args.engine.config(args.concurrency);
        let (engine, state) =
            server::load_model_dir(&args.model, device, engine_config, None, seed)
                .with_context(|| format!("loading the policy from {}", args.model.display()))?;
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
        let tensors = learner.model.vs.variables().into_iter().collect();
        Ok(self.state.engine.load_named_tensors(tensors)?)
    }

    fn shutdown(self: Box<Self>) {
        self.engine.shutdown();
    }
}
