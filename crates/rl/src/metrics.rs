//! Metric names shared by the trainer, the metrics JSONL writer, plots and the `rl loss`
//! command, so one metric has one spelling everywhere.
//!
//! Names are `/`-separated paths; the part before the first `/` groups related metrics in
//! plots. Rates and fractions are in [0, 1]; times are seconds of wall clock.

/// Mean shaped reward `R_final` over the iteration's graded trajectories.
pub const REWARD_MEAN: &str = "reward/mean";
/// Mean outcome reward `R` (before length shaping).
pub const REWARD_OUTCOME_MEAN: &str = "reward/outcome_mean";
/// Mean length penalty `R_length`.
pub const REWARD_LENGTH_MEAN: &str = "reward/length_mean";
/// Fraction of graded trajectories whose patch resolves the task.
pub const RESOLVED_RATE: &str = "resolved_rate";
/// Mean agent turns per trajectory.
pub const TURNS_MEAN: &str = "turns/mean";
/// Largest turn count in the iteration.
pub const TURNS_MAX: &str = "turns/max";
/// Mean sampled (action) tokens per trajectory.
pub const TOKENS_ACTION_MEAN: &str = "tokens/action_mean";
/// Mean total tokens (prompt + observations + actions) per trajectory.
pub const TOKENS_TOTAL_MEAN: &str = "tokens/total_mean";
/// Action tokens that entered the loss this iteration (sum of the loss mask).
pub const TOKENS_TRAINED: &str = "tokens/trained";
/// Tokens cut off by context or length limits (never silently: docs/method.md section 10, point 7).
pub const TOKENS_TRUNCATED: &str = "tokens/truncated";
/// Share of episodes that ended with the agent's `submit` action.
pub const SUBMIT_SHARE: &str = "submit_share";
/// Samples dropped because their advantage was exactly 0.
pub const DROPPED_ZERO_ADV: &str = "dropped/zero_adv";
/// Samples dropped by DAPO's group filter (groups all correct or all wrong).
pub const DROPPED_GROUP_FILTER: &str = "dropped/group_filter";
/// Trajectories excluded because of an infrastructure failure (not scored as reward 0).
pub const DROPPED_INFRA: &str = "dropped/infra";
/// Trajectories the iteration trained on (after every filter).
pub const SAMPLES_TRAINED: &str = "samples/trained";
/// Dynamic sampling: problems sampled beyond P to refill the batch with informative groups.
pub const REFILL_PROBLEMS: &str = "dynamic/refill_problems";
/// Fraction of action tokens whose ratio was clipped below (`A < 0`, `rho < 1 - eps_low`).
pub const CLIP_LOW: &str = "clip/low";
/// Fraction of action tokens whose ratio was clipped above (`A > 0`, `rho > 1 + eps_high`).
pub const CLIP_HIGH: &str = "clip/high";
/// Mean importance ratio `rho` over action tokens.
pub const RATIO_MEAN: &str = "ratio/mean";
/// Smallest importance ratio over action tokens.
pub const RATIO_MIN: &str = "ratio/min";
/// Largest importance ratio over action tokens.
pub const RATIO_MAX: &str = "ratio/max";
/// Mean per-token policy entropy over action tokens.
pub const ENTROPY: &str = "entropy";
/// k3 estimate of KL(sampler || trainer) over action tokens (the sampler/trainer gap).
pub const KL_SAMPLER_TRAINER: &str = "kl/sampler_trainer";
/// k1 estimate (mean log-prob difference) of KL(sampler || trainer) over action tokens.
pub const KL_SAMPLER_TRAINER_K1: &str = "kl/sampler_trainer_k1";
/// k3 estimate of KL(current policy || reference) when a KL penalty is used.
pub const KL_REFERENCE: &str = "kl/reference";
/// Global gradient norm before clipping.
pub const GRAD_NORM: &str = "grad_norm";
/// Learning rate of the step.
pub const LR: &str = "lr";
/// The policy loss value.
pub const LOSS: &str = "loss";
/// Wall time spent generating rollouts.
pub const TIME_GENERATION: &str = "time/generation";
/// Wall time spent in the environment (tool calls in sandboxes).
pub const TIME_ENV: &str = "time/env";
/// Wall time spent grading patches.
pub const TIME_GRADING: &str = "time/grading";
/// Wall time spent in forward/backward and optimizer steps.
pub const TIME_TRAINING: &str = "time/training";
/// Wall time spent syncing weights into the policy backend.
pub const TIME_SYNC: &str = "time/sync";
/// Wall time of the whole iteration.
pub const TIME_ITERATION: &str = "time/iteration";

/// Every name above, for writers that want a fixed column order and for uniqueness tests.
pub const ALL: &[&str] = &[
    REWARD_MEAN,
    REWARD_OUTCOME_MEAN,
    REWARD_LENGTH_MEAN,
    RESOLVED_RATE,
    TURNS_MEAN,
    TURNS_MAX,
    TOKENS_ACTION_MEAN,
    TOKENS_TOTAL_MEAN,
    TOKENS_TRAINED,
    TOKENS_TRUNCATED,
    SUBMIT_SHARE,
    DROPPED_ZERO_ADV,
    DROPPED_GROUP_FILTER,
    DROPPED_INFRA,
    SAMPLES_TRAINED,
    REFILL_PROBLEMS,
    CLIP_LOW,
    CLIP_HIGH,
    RATIO_MEAN,
    RATIO_MIN,
    RATIO_MAX,
    ENTROPY,
    KL_SAMPLER_TRAINER,
    KL_SAMPLER_TRAINER_K1,
    KL_REFERENCE,
    GRAD_NORM,
    LR,
    LOSS,
    TIME_GENERATION,
    TIME_ENV,
    TIME_GRADING,
    TIME_TRAINING,
    TIME_SYNC,
    TIME_ITERATION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_path_shaped() {
        let mut seen = std::collections::HashSet::new();
        for name in ALL {
            assert!(seen.insert(*name), "duplicate metric name {name}");
            assert!(
                !name.is_empty() && !name.starts_with('/') && !name.ends_with('/'),
                "{name}"
            );
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_/".contains(c)),
                "metric name {name} should be lowercase ascii, digits, '_' and '/'"
            );
        }
    }
}
