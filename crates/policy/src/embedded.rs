//! [`EmbeddedPolicy`]: the in-process model behind `swerl_agent::Policy`, one cheap handle
//! per episode, all sharing one batching [`Engine`](crate::engine::Engine).

use std::sync::Arc;

use swerl_agent::{Generation, Policy, PolicyFailure};
use swerl_model::chat::ChatTokenizer;
use swerl_model::sampling::SamplingParams;

use crate::conversation::Conversation;
use crate::engine::{EngineHandle, GenerateJob};
use crate::seed::EpisodeSeed;

/// One episode's handle to the embedded engine. Clone it (or call
/// [`EmbeddedPolicy::for_episode`]) per episode; clones are cheap and `Send`.
#[derive(Debug, Clone)]
pub struct EmbeddedPolicy {
    engine: EngineHandle,
    conversation: Conversation,
    sampling: SamplingParams,
    seed: EpisodeSeed,
    /// Assistant turns sampled since the last `prompt()`: part of each request's seed.
    turn: u64,
    model_name: String,
}

impl EmbeddedPolicy {
    /// A policy sampling with `sampling` (warns loudly when it truncates the distribution:
    /// docs/method.md section 6); seeds come from `seed` (run seed, task, sample) and the turn.
    pub fn new(
        engine: EngineHandle,
        chat: Arc<ChatTokenizer>,
        sampling: SamplingParams,
        seed: EpisodeSeed,
        model_name: impl Into<String>,
    ) -> Self {
        crate::warn_rollout_sampling(&sampling);
        EmbeddedPolicy {
            engine,
            conversation: Conversation::new(chat),
            sampling,
            seed,
            turn: 0,
            model_name: model_name.into(),
        }
    }

    /// A fresh handle for another episode (same engine and sampling, new seed).
    pub fn for_episode(&self, seed: EpisodeSeed) -> Self {
        EmbeddedPolicy {
            conversation: Conversation::new(self.conversation.chat().clone()),
            seed,
            turn: 0,
            ..self.clone()
        }
    }

    /// The engine this policy samples from.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }
}

impl Policy for EmbeddedPolicy {
    fn prompt(&mut self, system: &str, user: &str) -> Result<Vec<u32>, PolicyFailure> {
        self.turn = 0;
        self.conversation.start(system, user)
    }

    fn generate(
        &mut self,
        context: &[u32],
        max_new_tokens: usize,
    ) -> Result<Generation, PolicyFailure> {
        let job = GenerateJob {
            prompt: context.to_vec(),
            seed: self.seed.for_turn(self.turn),
            max_new_tokens,
            sampling: self.sampling.clone(),
            stop_token_ids: self.conversation.chat().stop_ids().to_vec(),
            adapter: None,
        };
        self.turn += 1;
        let out = self
            .engine
            .generate(job)
            .map_err(|e| PolicyFailure(e.to_string()))?;
        self.conversation.generation(out.tokens, out.logprobs)
    }

    fn observation_delta(
        &mut self,
        context: &[u32],
        last: &Generation,
        observation: &str,
    ) -> Result<Vec<u32>, PolicyFailure> {
        self.conversation
            .observation_delta(context, last, observation)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": "embedded",
            "model": self.model_name,
            "sampling": crate::sampling_json(&self.sampling),
            "seed": {"run_seed": self.seed.run_seed, "task": self.seed.task, "sample": self.seed.sample},
            "weight_version": self.engine.stats().weight_version,
        })
    }
}
