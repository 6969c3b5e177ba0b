//! The two small protocols the scaffold is generic over.

/// One sampled assistant turn, token-in/token-out: the exact ids the sampler produced and
/// each one's log-prob under the full, untruncated distribution at the sampling temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// Decoded text of `token_ids` (for parsing the action; never re-tokenised).
    pub text: String,
    pub finish: FinishReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-turn token (or a stop string) was sampled.
    Stop,
    /// `max_new_tokens` was reached first.
    Length,
}

/// A policy failure (server down, timeout, out of memory) after the backend's own retries.
/// It ends the episode with status `policy_error`; it is never a reward.
#[derive(Debug, thiserror::Error)]
#[error("policy failed: {0}")]
pub struct PolicyFailure(pub String);

/// An environment failure (sandbox lost, disk full). Ends the episode with `env_error`.
#[derive(Debug, thiserror::Error)]
#[error("environment failed: {0}")]
pub struct EnvFailure(pub String);

/// What the agent samples from. Token bookkeeping lives here so that nothing is re-tokenised:
/// the scaffold only ever appends the ids these methods return.
pub trait Policy {
    /// Token ids of the rendered chat prefix `[system, user]` followed by the opening of
    /// the first assistant turn (the generation prompt).
    fn prompt(&mut self, system: &str, user: &str) -> Result<Vec<u32>, PolicyFailure>;
    /// Samples one assistant turn continuing `context`.
    fn generate(
        &mut self,
        context: &[u32],
        max_new_tokens: usize,
    ) -> Result<Generation, PolicyFailure>;
    /// The exact token delta that follows a finished assistant turn: whatever closes it
    /// (e.g. the end-of-turn token if the sampler stopped without one), the observation as a
    /// user message, and the opening of the next assistant turn.
    fn observation_delta(
        &mut self,
        context: &[u32],
        last: &Generation,
        observation: &str,
    ) -> Result<Vec<u32>, PolicyFailure>;
    /// A short description for trajectory records (model name, sampling parameters).
    fn describe(&self) -> serde_json::Value;
}

/// The answer to one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Output (or error) followed by the prompt line
    /// `(Current directory: <dir>, current file: <file or none>) bash-$`.
    pub observation: String,
    /// True when the command was `submit`.
    pub submitted: bool,
}

/// Where the agent acts: one SWE task's live workspace.
pub trait Environment {
    /// The issue text, shown as the first observation.
    fn problem_statement(&self) -> String;
    /// Runs one command (an ACI tool or any shell command).
    fn step(&mut self, command: &str) -> Result<Step, EnvFailure>;
    /// The current patch: `git diff` of the working tree.
    fn diff(&mut self) -> Result<String, EnvFailure>;
    /// The system prompt describing this environment's tools (the default states the
    /// 100-line file window of SWE-agent).
    fn system_prompt(&self) -> String {
        crate::prompts::SYSTEM_PROMPT.to_string()
    }
}
