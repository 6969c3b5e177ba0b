//! How an episode ended, and how one assistant turn can be malformed.

use serde::{Deserialize, Serialize};

/// The one explicit reason an episode ended. Limits are real outcomes (the trajectory keeps
/// its low reward); `EnvError` and `PolicyError` are infrastructure failures that must never
/// become a reward (docs/method.md section 10, point 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeStatus {
    /// The agent ran `submit`.
    Submitted,
    /// The agent used all `max_turns` turns without submitting.
    TurnLimit,
    /// The next generation would not fit into `max_context_tokens`.
    ContextLimit,
    /// The per-episode wall-clock limit passed.
    WallTime,
    /// The environment (sandbox) failed; the episode says nothing about the policy.
    EnvError,
    /// The policy backend failed after its own retries.
    PolicyError,
}

impl EpisodeStatus {
    /// Every status, in a fixed order (for tables and tests).
    pub const ALL: [EpisodeStatus; 6] = [
        EpisodeStatus::Submitted,
        EpisodeStatus::TurnLimit,
        EpisodeStatus::ContextLimit,
        EpisodeStatus::WallTime,
        EpisodeStatus::EnvError,
        EpisodeStatus::PolicyError,
    ];

    /// True for endings caused by infrastructure, not by the agent: such episodes are
    /// retried or excluded, never scored. (A grading infra error is checked separately on
    /// the trajectory, see [`crate::Trajectory::is_infra_failure`].)
    pub fn is_infra_failure(self) -> bool {
        matches!(self, EpisodeStatus::EnvError | EpisodeStatus::PolicyError)
    }

    /// The snake_case name used in JSON and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeStatus::Submitted => "submitted",
            EpisodeStatus::TurnLimit => "turn_limit",
            EpisodeStatus::ContextLimit => "context_limit",
            EpisodeStatus::WallTime => "wall_time",
            EpisodeStatus::EnvError => "env_error",
            EpisodeStatus::PolicyError => "policy_error",
        }
    }
}

impl std::fmt::Display for EpisodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no command could be taken from an assistant turn. Such a turn is answered with an
/// error observation, counts as a turn, and is flagged so RFT can mask it out of the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatError {
    /// No complete ```` ```command ```` block (none at all, an empty one, or one never closed).
    NoCommand,
    /// Two or more ```` ```command ```` blocks.
    MultipleCommands,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_env_and_policy_errors_are_infra_failures() {
        let infra: Vec<_> = EpisodeStatus::ALL
            .into_iter()
            .filter(|s| s.is_infra_failure())
            .collect();
        assert_eq!(infra, [EpisodeStatus::EnvError, EpisodeStatus::PolicyError]);
    }

    #[test]
    fn status_serialises_as_its_snake_case_name() {
        for s in EpisodeStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
