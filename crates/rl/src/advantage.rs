//! Per-trajectory advantages from the rewards of one group (G rollouts of the same problem).
//!
//! Every estimator maps a group's rewards `R_1..R_G` to one scalar `A_i` per trajectory. The
//! trainer puts that same scalar on every action token of trajectory `i`; this module knows
//! nothing about tokens.
//!
//! A group whose rewards are all equal gets advantages that are exactly `0.0` (not a rounding
//! residue such as `1e-17`), so that [`crate::filter::drop_zero_advantage`] can test `A == 0`
//! exactly and drop such samples as the paper does.

use serde::{Deserialize, Serialize};

/// Default `delta` added to the group standard deviation by [`grpo`] (docs/method.md section 9).
///
/// Small enough that a group with rewards {0, 1} gets advantages of +-1 to six digits, large
/// enough that it never divides by zero.
pub const DEFAULT_STD_DELTA: f64 = 1e-6;

/// Which advantage estimator turns a group's rewards into per-trajectory advantages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AdvantageEstimator {
    /// GRPO group normalisation, `A_i = (R_i - mean(R)) / (std(R) + delta)` with the
    /// population std (divide by G); see [`grpo`]. The paper's choice.
    Grpo {
        /// Added to the std so constant groups do not divide by zero; [`DEFAULT_STD_DELTA`].
        delta: f64,
    },
    /// Dr.GRPO, `A_i = R_i - mean(R)`: no std division, so low-variance groups are not
    /// up-weighted; see [`dr_grpo`].
    DrGrpo,
    /// RLOO, `A_i = R_i - mean_{j != i}(R_j)`: the baseline excludes the sample itself;
    /// see [`rloo`].
    Rloo,
}

impl Default for AdvantageEstimator {
    fn default() -> Self {
        AdvantageEstimator::Grpo {
            delta: DEFAULT_STD_DELTA,
        }
    }
}

/// Why advantages could not be computed for a group.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdvantageError {
    /// The group has no rewards at all.
    #[error("advantage group is empty: every group needs at least one reward (check the grouping of trajectories by problem)")]
    EmptyGroup,
    /// RLOO needs at least two samples: with one there is no "other" to form a baseline.
    #[error("RLOO needs at least 2 rewards per group, got {size}: use grpo or dr_grpo, or sample more rollouts per problem")]
    GroupTooSmall {
        /// The group size that was given.
        size: usize,
    },
    /// A reward is NaN or infinite.
    #[error("reward {index} of the group is {value}, not a finite number: check the grading and reward shaping")]
    NonFiniteReward {
        /// Position of the offending reward in the group.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// GRPO's delta must be positive so that constant groups do not divide by zero.
    #[error("GRPO std delta is {delta}, it must be a finite number > 0 (default 1e-6)")]
    InvalidDelta {
        /// The delta that was given.
        delta: f64,
    },
}

impl AdvantageEstimator {
    /// Advantages of one group of rewards, one per trajectory, in the same order.
    pub fn compute(&self, rewards: &[f64]) -> Result<Vec<f64>, AdvantageError> {
        check_rewards(rewards)?;
        match *self {
            AdvantageEstimator::Grpo { delta } => grpo(rewards, delta),
            AdvantageEstimator::DrGrpo => Ok(dr_grpo(rewards)),
            AdvantageEstimator::Rloo => rloo(rewards),
        }
    }
}

/// GRPO: `A_i = (R_i - mean) / (std + delta)`, `mean = sum(R) / G`,
/// `std = sqrt(sum((R_j - mean)^2) / G)` (population std, not the G-1 sample std).
///
/// The population std is what docs/method.md section 9 fixes; with binary rewards and G = 10 it
/// makes a group with one success give that success `A = 3.0` (to 1e-5).
pub fn grpo(rewards: &[f64], delta: f64) -> Result<Vec<f64>, AdvantageError> {
    if !(delta.is_finite() && delta > 0.0) {
        return Err(AdvantageError::InvalidDelta { delta });
    }
    check_rewards(rewards)?;
    let centred = dr_grpo(rewards);
    let variance = centred.iter().map(|d| d * d).sum::<f64>() / rewards.len() as f64;
    let scale = variance.sqrt() + delta;
    Ok(centred.into_iter().map(|d| d / scale).collect())
}

/// Dr.GRPO: `A_i = R_i - mean(R)`. Exactly zero for every sample of a constant group.
pub fn dr_grpo(rewards: &[f64]) -> Vec<f64> {
    if is_constant(rewards) {
        return vec![0.0; rewards.len()];
    }
    let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
    rewards.iter().map(|r| r - mean).collect()
}

/// RLOO: `A_i = R_i - (sum(R) - R_i) / (G - 1)`, the reward minus the mean of the others.
///
/// Equals `G / (G - 1) * (R_i - mean(R))`; computed directly for clarity.
pub fn rloo(rewards: &[f64]) -> Result<Vec<f64>, AdvantageError> {
    check_rewards(rewards)?;
    let size = rewards.len();
    if size < 2 {
        return Err(AdvantageError::GroupTooSmall { size });
    }
    if is_constant(rewards) {
        return Ok(vec![0.0; size]);
    }
    let total: f64 = rewards.iter().sum();
    let others = (size - 1) as f64;
    Ok(rewards.iter().map(|r| r - (total - r) / others).collect())
}

/// Rejects empty groups and non-finite rewards.
fn check_rewards(rewards: &[f64]) -> Result<(), AdvantageError> {
    if rewards.is_empty() {
        return Err(AdvantageError::EmptyGroup);
    }
    match rewards.iter().position(|r| !r.is_finite()) {
        Some(index) => Err(AdvantageError::NonFiniteReward {
            index,
            value: rewards[index],
        }),
        None => Ok(()),
    }
}

/// True when every reward equals the first. Such groups are special-cased because
/// `sum(R) / G` need not round back to `R` exactly (e.g. three rewards of 0.1), which would
/// leave tiny non-zero advantages that the zero-advantage filter would then keep.
fn is_constant(rewards: &[f64]) -> bool {
    rewards.iter().all(|r| *r == rewards[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "index {i}: got {g}, want {w} (all: {got:?})"
            );
        }
    }

    #[test]
    fn grpo_one_success_in_four() {
        // R = [1, 0, 0, 0]: mean = 0.25; deviations 0.75, -0.25 x3;
        // population variance = (0.5625 + 3 * 0.0625) / 4 = 0.75 / 4 = 0.1875;
        // std = sqrt(0.1875) = 0.4330127018922193; scale = std + 1e-6 = 0.4330137018922193.
        // A_0 = 0.75 / 0.4330137018922193 = 1.7320468...; A_other = -0.25 / scale = -0.5773489...
        let got = grpo(&[1.0, 0.0, 0.0, 0.0], 1e-6).unwrap();
        let scale = 0.1875_f64.sqrt() + 1e-6;
        assert_close(
            &got,
            &[0.75 / scale, -0.25 / scale, -0.25 / scale, -0.25 / scale],
            1e-15,
        );
        // Without delta these would be sqrt(3) and -1/sqrt(3); delta shifts them by ~4e-6.
        assert_close(
            &got,
            &[3f64.sqrt(), -1.0 / 3f64.sqrt(), -0.5773502, -0.5773502],
            1e-5,
        );
    }

    #[test]
    fn grpo_uses_population_std_not_sample_std() {
        // R = [0, 1]: mean 0.5, population std = sqrt((0.25 + 0.25) / 2) = 0.5, so A = +-1
        // (up to delta). The sample std would be sqrt(0.5) = 0.7071 and give +-0.7071.
        let got = grpo(&[0.0, 1.0], 1e-6).unwrap();
        assert_close(&got, &[-0.5 / 0.500001, 0.5 / 0.500001], 1e-15);
    }

    #[test]
    fn grpo_one_success_in_ten_gives_three() {
        // G = 10, one success: mean 0.1, var = (0.81 + 9 * 0.01) / 10 = 0.09, std = 0.3;
        // A_success = 0.9 / 0.3 = 3, A_fail = -0.1 / 0.3 = -1/3 (up to delta).
        let mut rewards = vec![0.0; 10];
        rewards[3] = 1.0;
        let got = grpo(&rewards, DEFAULT_STD_DELTA).unwrap();
        assert!((got[3] - 3.0).abs() < 1e-4, "{got:?}");
        assert!((got[0] + 1.0 / 3.0).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn constant_groups_give_exact_zeros_for_every_estimator() {
        // Three rewards of 0.1: 0.1 + 0.1 + 0.1 = 0.30000000000000004 and / 3 is not 0.1,
        // so without the special case R - mean would be ~1.4e-17, not 0.
        let rewards = [0.1, 0.1, 0.1];
        assert_ne!(rewards.iter().sum::<f64>() / 3.0, 0.1);
        for est in [
            AdvantageEstimator::default(),
            AdvantageEstimator::DrGrpo,
            AdvantageEstimator::Rloo,
        ] {
            assert_eq!(
                est.compute(&rewards).unwrap(),
                vec![0.0, 0.0, 0.0],
                "{est:?}"
            );
        }
    }

    #[test]
    fn dr_grpo_is_centred_reward() {
        // R = [1, 0, 0.5, -0.5]: mean = 1 / 4 = 0.25; A = [0.75, -0.25, 0.25, -0.75].
        assert_close(
            &dr_grpo(&[1.0, 0.0, 0.5, -0.5]),
            &[0.75, -0.25, 0.25, -0.75],
            1e-15,
        );
    }

    #[test]
    fn rloo_subtracts_mean_of_others() {
        // R = [1, 0, 0, 1, 1]: total 3. A_i = R_i - (3 - R_i) / 4:
        // success: 1 - 2/4 = 0.5; failure: 0 - 3/4 = -0.75.
        let got = rloo(&[1.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
        assert_close(&got, &[0.5, -0.75, -0.75, 0.5, 0.5], 1e-15);
        // Identity: RLOO = G / (G - 1) * Dr.GRPO; mean 0.6, 5/4 * (1 - 0.6) = 0.5.
        let scaled: Vec<f64> = dr_grpo(&[1.0, 0.0, 0.0, 1.0, 1.0])
            .iter()
            .map(|a| a * 1.25)
            .collect();
        assert_close(&got, &scaled, 1e-15);
    }

    #[test]
    fn bad_groups_are_errors() {
        assert_eq!(
            AdvantageEstimator::Rloo.compute(&[1.0]),
            Err(AdvantageError::GroupTooSmall { size: 1 })
        );
        assert_eq!(
            AdvantageEstimator::DrGrpo.compute(&[]),
            Err(AdvantageError::EmptyGroup)
        );
        assert!(matches!(
            AdvantageEstimator::default().compute(&[0.0, f64::NAN]),
            Err(AdvantageError::NonFiniteReward { index: 1, .. })
        ));
        assert_eq!(
            grpo(&[0.0, 1.0], 0.0),
            Err(AdvantageError::InvalidDelta { delta: 0.0 })
        );
        // A single-sample GRPO group is valid and carries no signal.
        assert_eq!(
            AdvantageEstimator::default().compute(&[0.7]).unwrap(),
            vec![0.0]
        );
    }

    #[test]
    fn estimator_config_round_trips_and_rejects_unknown_fields() {
        let est: AdvantageEstimator = serde_json::from_str(r#"{"grpo":{"delta":1e-6}}"#).unwrap();
        assert_eq!(est, AdvantageEstimator::default());
        let est: AdvantageEstimator = serde_json::from_str(r#""rloo""#).unwrap();
        assert_eq!(est, AdvantageEstimator::Rloo);
        assert!(
            serde_json::from_str::<AdvantageEstimator>(r#"{"grpo":{"delta":1e-6,"x":1}}"#).is_err()
        );
    }
}
