//! Policy backends behind `swerl_agent::Policy`:
//!
//! - [`embedded`]: the in-process model; one engine thread batches every episode's requests
//!   ([`engine`]) and reuses the keys and values of earlier turns ([`prefix_cache`]).
//! - [`http`]: an OpenAI-compatible client for vLLM / SGLang / `swerl serve`, token ids in and
//!   out, every sampling parameter sent explicitly, load balancing, retries, a concurrency limit.
//! - [`server`]: the OpenAI-compatible server over the embedded engine (`swerl serve`).
//! - [`bench`]: many concurrent HTTP clients against an in-process server.
//!
//! All backends share the token bookkeeping of [`conversation`]: sampled ids are kept
//! verbatim and only template deltas are tokenised. Sampling is seeded per request from
//! (run seed, task, sample, turn) ([`seed`]).

pub mod bench;
pub mod conversation;
pub mod embedded;
pub mod engine;
pub mod http;
pub mod prefix_cache;
pub mod scripted;
pub mod seed;
pub mod server;

pub use embedded::EmbeddedPolicy;
pub use engine::{Engine, EngineConfig, EngineError, EngineHandle, EngineStats};
pub use http::{HttpBackend, HttpConfig, HttpPolicy};
pub use scripted::ScriptedChatPolicy;
pub use seed::EpisodeSeed;

use swerl_model::sampling::SamplingParams;

/// Logs each of `sampling`'s rollout warnings (truncation, temperature != 1) at warn level:
/// a truncating rollout config silently corrupts the RL importance ratio (docs/method.md
/// section 6).
pub fn warn_rollout_sampling(sampling: &SamplingParams) {
    for warning in sampling.warnings() {
        tracing::warn!("{warning}");
    }
}

/// The sampling parameters as recorded in trajectories.
pub fn sampling_json(s: &SamplingParams) -> serde_json::Value {
    serde_json::json!({
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "min_p": s.min_p,
        "repetition_penalty": 1.0,
    })
}
