//! One episode as the trainer reads it: the exact token sequence, its loss mask and
//! sampler log-probs, the per-turn view, and the outcome (status, patch, grade, reward).

use crate::{EpisodeStatus, FormatError, GradeOutcome, GradeReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One finished (or failed) episode of one task sample.
///
/// Invariants the scaffold guarantees: `token_ids`, `loss_mask` and `sampler_logprobs` have
/// the same length; `token_ids` = prompt ids followed by, per turn, the turn's
/// `assistant_ids` then its `observation_ids`; `loss_mask` is 1 exactly on assistant ids;
/// `sampler_logprobs` is 0.0 wherever the mask is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Version of this record layout ([`crate::SCHEMA_VERSION`] when written).
    pub schema_version: u32,
    pub task_id: String,
    /// Which of the G samples of this task this is (0-based); with k eval runs, the run.
    pub sample_index: u32,
    /// Which attempt produced this record (1-based); > 1 after infrastructure retries.
    pub attempt: u32,
    /// The policy as it described itself: model, checkpoint, sampling parameters.
    pub policy: serde_json::Value,
    /// Number of prompt tokens (system + issue + generation prompt) at the start of `token_ids`.
    pub prompt_len: usize,
    pub turns: Vec<Turn>,
    pub token_ids: Vec<u32>,
    /// 1 on tokens the sampler produced, 0 on prompt and observation tokens.
    pub loss_mask: Vec<u8>,
    /// The sampler's log-prob of each token; 0.0 where `loss_mask` is 0.
    pub sampler_logprobs: Vec<f32>,
    pub status: EpisodeStatus,
    /// What failed, for `env_error` / `policy_error` (and why a limit hit, when useful).
    pub error: Option<String>,
    /// `git diff` at the end of the episode; `None` when the environment was lost.
    pub final_patch: Option<String>,
    /// `None` when the episode was not graded (infrastructure failure).
    pub grade: Option<GradeReport>,
    /// `None` whenever the outcome is unknown: infrastructure failures are never a reward.
    pub reward: Option<RewardParts>,
    pub timings: EpisodeTimings,
    /// Versions of everything that produced this record (swerl, schema, model, dataset ...).
    pub versions: BTreeMap<String, String>,
    /// Seconds since the Unix epoch when the record was written.
    pub created_at_unix_s: u64,
}

impl Trajectory {
    /// True when this record must be retried or excluded rather than scored: the episode
    /// ended in an infrastructure failure, or the grader itself failed.
    pub fn is_infra_failure(&self) -> bool {
        let grade_failed = self.grade.as_ref().is_some_and(|g| g.outcome.is_unknown());
        self.status.is_infra_failure() || grade_failed
    }

    /// Whether the graded patch resolved the task (false when ungraded).
    pub fn resolved(&self) -> bool {
        self.grade
            .as_ref()
            .is_some_and(|g| g.outcome == GradeOutcome::Graded && g.resolved)
    }

    /// The loss mask for rejection fine-tuning: like `loss_mask`, but the assistant tokens of
    /// turns that caused a format error are 0 (they stay in context, without loss;
    /// docs/method.md section 5).
    pub fn loss_mask_without_format_errors(&self) -> Vec<u8> {
        let mut mask = self.loss_mask.clone();
        for turn in self.turns.iter().filter(|t| t.format_error.is_some()) {
            let span = turn.assistant_start..turn.assistant_start + turn.assistant_ids.len();
            mask[span].fill(0);
        }
        mask
    }

    /// Number of tokens the sampler produced in this episode.
    pub fn sampled_tokens(&self) -> usize {
        self.turns.iter().map(|t| t.assistant_ids.len()).sum()
    }
}

/// One agent turn: what was sampled, what was parsed from it, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Offset of `assistant_ids` inside the trajectory's `token_ids`.
    pub assistant_start: usize,
    /// The exact ids the sampler produced (never re-tokenised).
    pub assistant_ids: Vec<u32>,
    pub assistant_logprobs: Vec<f32>,
    pub assistant_text: String,
    /// True when the sampler hit the per-turn `max_new_tokens` instead of stopping.
    pub truncated: bool,
    /// The command taken from the turn, if exactly one ```` ```command ```` block was found.
    pub action: Option<String>,
    pub format_error: Option<FormatError>,
    /// The template delta appended after this turn (closing, observation as a user
    /// message, next generation prompt). Empty for the last turn: no generation followed.
    pub observation_ids: Vec<u32>,
    /// The observation text (command output and prompt line, or a format-error message).
    pub observation_text: String,
    pub timings: TurnTimings,
}

/// Wall-clock seconds of one turn's parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnTimings {
    /// Sampling the assistant turn.
    pub generate_s: f64,
    /// Running the command in the environment (0 for format errors).
    pub env_s: f64,
}

/// Wall-clock seconds of a whole episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeTimings {
    /// The scaffold loop, from the first prompt to the final diff.
    pub episode_s: f64,
    pub grade_s: f64,
    /// Everything, including environment setup and grading.
    pub total_s: f64,
}

/// The terminal reward and its parts (docs/method.md section 4):
/// `total = resolved + length_penalty`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardParts {
    /// R: 1.0 when the final patch resolves the task, else 0.0.
    pub resolved: f64,
    /// R_length: 0 below the turn threshold, negative above it.
    pub length_penalty: f64,
    pub total: f64,
}
