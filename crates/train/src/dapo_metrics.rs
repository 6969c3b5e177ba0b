//! The metrics row of one DAPO iteration (names from `swerl_rl::metrics`): what the rollouts
//! looked like, what was dropped or truncated, what the optimizer steps did, and where the
//! wall time went.

use swerl_rl::metrics as m;
use swerl_trajectory::{EpisodeStatus, Trajectory};

use crate::batch::Truncation;
use crate::dapo::PolicyStepStats;
use crate::dapo_loop::Rollouts;
use crate::data::Selection;
use crate::metrics_log::MetricsRow;

/// What the training epoch of one iteration did.
#[derive(Debug, Clone, Default)]
pub struct TrainSummary {
    pub steps: Vec<PolicyStepStats>,
    pub trained_tokens: usize,
    pub seconds: f64,
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Mean of `f` over the steps, weighted by each step's action tokens.
fn weighted(steps: &[PolicyStepStats], f: impl Fn(&PolicyStepStats) -> f64) -> f64 {
    let total: f64 = steps.iter().map(|s| s.action_tokens).sum();
    if total <= 0.0 {
        return f64::NAN;
    }
    steps.iter().map(|s| f(s) * s.action_tokens).sum::<f64>() / total
}

/// The whole row of one iteration (sync and total time are added by the loop).
pub fn iteration_row(
    iteration: u64,
    rollouts: &Rollouts,
    selection: &Selection,
    truncation: &Truncation,
    train: &TrainSummary,
) -> MetricsRow {
    let mut row = MetricsRow::new(iteration);
    rollout_values(&mut row, &rollouts.trajectories);
    row.set(m::DROPPED_ZERO_ADV, selection.rejected as f64);
    row.set(m::DROPPED_INFRA, selection.infra_failures as f64);
    row.set("dropped/empty", selection.empty as f64);
    row.set(m::SAMPLES_TRAINED, selection.kept as f64);
    row.set(m::TOKENS_TRUNCATED, truncation.tokens as f64);
    row.set("truncated/sequences", truncation.sequences as f64);
    row.set("truncated/trained_tokens", truncation.trained_tokens as f64);
    train_values(&mut row, train);
    row.set(m::TIME_GENERATION, rollouts.generation_s);
    row.set(m::TIME_ENV, rollouts.env_s);
    row.set(m::TIME_GRADING, rollouts.grading_s);
    row.set(m::TIME_TRAINING, train.seconds);
    row
}

/// Reward, resolved rate, turns, tokens and submit share over the scored trajectories
/// (infrastructure failures say nothing about the policy and are left out).
fn rollout_values(row: &mut MetricsRow, trajs: &[Trajectory]) {
    let scored: Vec<&Trajectory> = trajs.iter().filter(|t| !t.is_infra_failure()).collect();
    let rewards = || scored.iter().filter_map(|t| t.reward);
    row.set(m::REWARD_MEAN, mean(rewards().map(|r| r.total)));
    row.set(m::REWARD_OUTCOME_MEAN, mean(rewards().map(|r| r.resolved)));
    row.set(
        m::REWARD_LENGTH_MEAN,
        mean(rewards().map(|r| r.length_penalty)),
    );
    row.set(
        m::RESOLVED_RATE,
        mean(scored.iter().map(|t| f64::from(u8::from(t.resolved())))),
    );
    row.set(
        m::TURNS_MEAN,
        mean(scored.iter().map(|t| t.turns.len() as f64)),
    );
    let max_turns = scored.iter().map(|t| t.turns.len()).max();
    row.set(m::TURNS_MAX, max_turns.map_or(f64::NAN, |x| x as f64));
    row.set(
        m::TOKENS_ACTION_MEAN,
        mean(scored.iter().map(|t| t.sampled_tokens() as f64)),
    );
    row.set(
        m::TOKENS_TOTAL_MEAN,
        mean(scored.iter().map(|t| t.token_ids.len() as f64)),
    );
    let submitted = scored
        .iter()
        .map(|t| f64::from(u8::from(t.status == EpisodeStatus::Submitted)));
    row.set(m::SUBMIT_SHARE, mean(submitted));
    row.set("rollouts", trajs.len() as f64);
}

fn train_values(row: &mut MetricsRow, train: &TrainSummary) {
    let s = &train.steps;
    row.set("optimizer_steps", s.len() as f64);
    row.set(m::TOKENS_TRAINED, train.trained_tokens as f64);
    row.set(m::LOSS, mean(s.iter().map(|x| x.loss)));
    row.set(m::GRAD_NORM, mean(s.iter().map(|x| x.grad_norm)));
    row.set(m::LR, s.last().map_or(f64::NAN, |x| x.lr));
    row.set(m::CLIP_LOW, weighted(s, |x| x.metrics.clip_low));
    row.set(m::CLIP_HIGH, weighted(s, |x| x.metrics.clip_high));
    row.set(m::RATIO_MEAN, weighted(s, |x| x.metrics.ratio_mean));
    let ratio_min = s
        .iter()
        .map(|x| x.metrics.ratio_min)
        .fold(f64::NAN, f64::min);
    let ratio_max = s
        .iter()
        .map(|x| x.metrics.ratio_max)
        .fold(f64::NAN, f64::max);
    row.set(m::RATIO_MIN, ratio_min);
    row.set(m::RATIO_MAX, ratio_max);
    row.set(
        m::ENTROPY,
        weighted(s, |x| x.metrics.entropy.unwrap_or(f64::NAN)),
    );
    let kl = |x: &PolicyStepStats| x.metrics.kl_sampler_trainer_k3.unwrap_or(f64::NAN);
    row.set(m::KL_SAMPLER_TRAINER, weighted(s, kl));
}

/// `eval/reward_mean` and `eval/resolved_rate` of an evaluation collection.
pub fn eval_values(trajs: &[Trajectory]) -> Vec<(String, f64)> {
    let scored: Vec<&Trajectory> = trajs.iter().filter(|t| !t.is_infra_failure()).collect();
    vec![
        (
            "eval/reward_mean".to_string(),
            mean(scored.iter().filter_map(|t| t.reward).map(|r| r.total)),
        ),
        (
            "eval/resolved_rate".to_string(),
            mean(scored.iter().map(|t| f64::from(u8::from(t.resolved())))),
        ),
        (
            "eval/infra_failures".to_string(),
            (trajs.len() - scored.len()) as f64,
        ),
    ]
}
