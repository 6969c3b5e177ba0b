//! Which sampled trajectories reach the optimizer.
//!
//! Two policies, chosen by [`SampleFilter`]:
//! - [`drop_zero_advantage`] (the paper): drop every sample whose advantage is exactly 0 and do
//!   not refill, so an iteration trains on fewer samples when groups are uniform.
//! - [`filter_groups`] (DAPO's dynamic sampling): keep a group only if
//!   `0 < #correct < G` and report how many more groups the trainer must sample to refill
//!   the batch; [`groups_to_request`] turns that into an oversampled request.
//!
//! Both are generic over the sample type: callers pass accessors, so this crate stays free of
//! trajectory types. Both return counts of what was dropped and why, for the metrics.

use serde::{Deserialize, Serialize};

/// Which filter to apply between advantage computation and the update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleFilter {
    /// Drop samples with `A == 0`, no refill (docs/method.md section 6). The default.
    #[default]
    ZeroAdvantage,
    /// Keep groups with `0 < #correct < G` and refill the batch by sampling more groups
    /// (DAPO's dynamic sampling).
    DynamicSampling,
}

/// Result of [`drop_zero_advantage`].
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroAdvantageOutcome<T> {
    /// Samples with a non-zero advantage, in their original order.
    pub kept: Vec<T>,
    /// How many samples had `A == 0` and were dropped (metric `dropped/zero_adv`).
    pub dropped_zero_advantage: usize,
}

/// Drops samples whose advantage is exactly `0.0`: `keep i  <=>  A_i != 0`.
///
/// Exact comparison is intended: the estimators in [`crate::advantage`] return exact zeros
/// for constant groups, and a sample with `A == 0` contributes no policy gradient anyway.
pub fn drop_zero_advantage<T>(
    samples: Vec<T>,
    advantage: impl Fn(&T) -> f64,
) -> ZeroAdvantageOutcome<T> {
    let total = samples.len();
    let kept: Vec<T> = samples
        .into_iter()
        .filter(|s| advantage(s) != 0.0)
        .collect();
    ZeroAdvantageOutcome {
        dropped_zero_advantage: total - kept.len(),
        kept,
    }
}

/// Result of [`filter_groups`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFilterOutcome<T> {
    /// Groups with `0 < #correct < G`, in their original order.
    pub kept: Vec<Vec<T>>,
    /// Groups dropped because every sample was correct.
    pub dropped_all_correct: usize,
    /// Groups dropped because no sample was correct.
    pub dropped_all_wrong: usize,
    /// Empty groups (no samples at all) that were dropped.
    pub dropped_empty: usize,
    /// Samples inside the dropped groups (metric `dropped/group_filter`).
    pub dropped_samples: usize,
    /// `max(0, target_groups - kept.len())`: groups the trainer still has to sample.
    pub still_needed: usize,
}

/// DAPO's group filter: keep group `g` iff `0 < #{i in g : correct(i)} < |g|`.
///
/// `target_groups` is the number of informative groups the batch should hold;
/// `still_needed` says how far short this call fell (the refill the caller samples next).
pub fn filter_groups<T>(
    groups: Vec<Vec<T>>,
    correct: impl Fn(&T) -> bool,
    target_groups: usize,
) -> GroupFilterOutcome<T> {
    let mut out = GroupFilterOutcome {
        kept: Vec::new(),
        dropped_all_correct: 0,
        dropped_all_wrong: 0,
        dropped_empty: 0,
        dropped_samples: 0,
        still_needed: 0,
    };
    for group in groups {
        let size = group.len();
        let n_correct = group.iter().filter(|s| correct(s)).count();
        match n_correct {
            _ if size == 0 => out.dropped_empty += 1,
            n if n == size => out.dropped_all_correct += 1,
            0 => out.dropped_all_wrong += 1,
            _ => {
                out.kept.push(group);
                continue;
            }
        }
        out.dropped_samples += size;
    }
    out.still_needed = target_groups.saturating_sub(out.kept.len());
    out
}

/// How many groups to sample to obtain `needed` informative groups when a fraction
/// `keep_rate` of groups survives [`filter_groups`]:
/// `min(ceil(needed / keep_rate), needed * max_factor)`.
///
/// `keep_rate` is typically the observed rate of the previous iteration; a rate of 0 (or
/// anything non-positive or NaN) asks for the cap, `needed * max_factor`, so a run whose
/// groups are all solved or all failed does not request unboundedly many rollouts.
pub fn groups_to_request(needed: usize, keep_rate: f64, max_factor: usize) -> usize {
    let cap = needed.saturating_mul(max_factor.max(1));
    if keep_rate.is_nan() || keep_rate <= 0.0 {
        return cap;
    }
    let wanted = (needed as f64 / keep_rate.min(1.0)).ceil() as usize;
    wanted.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_advantage_drops_exact_zeros_only() {
        let samples = vec![
            ("a", 0.5),
            ("b", 0.0),
            ("c", -0.0),
            ("d", -1e-300),
            ("e", 0.0),
        ];
        let out = drop_zero_advantage(samples, |s| s.1);
        // 0.0 and -0.0 both compare equal to 0; a tiny non-zero value is kept.
        assert_eq!(out.kept, vec![("a", 0.5), ("d", -1e-300)]);
        assert_eq!(out.dropped_zero_advantage, 3);
    }

    #[test]
    fn uniform_groups_lose_every_sample_after_grpo() {
        // Group 0 = [1, 0]: A = +-0.5 / (0.5 + 1e-6), both kept. Group 1 = [0.5, 0.5, 0.5]:
        // constant, A = 0 exactly, all three dropped (no refill).
        let estimator = crate::advantage::AdvantageEstimator::default();
        let mut samples = Vec::new();
        for (group, rewards) in [vec![1.0, 0.0], vec![0.5, 0.5, 0.5]]
            .into_iter()
            .enumerate()
        {
            let advantages = estimator.compute(&rewards).unwrap();
            samples.extend(advantages.into_iter().map(|a| (group, a)));
        }
        let out = drop_zero_advantage(samples, |s| s.1);
        assert_eq!(out.dropped_zero_advantage, 3);
        assert_eq!(out.kept.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 0]);
    }

    #[test]
    fn group_filter_keeps_mixed_groups_and_counts_the_rest() {
        let groups = vec![
            vec![true, false, false],         // mixed: kept
            vec![true, true, true],           // all correct
            vec![false, false],               // all wrong
            vec![],                           // empty
            vec![false, true],                // mixed: kept
            vec![false, false, false, false], // all wrong
        ];
        let out = filter_groups(groups, |c| *c, 5);
        assert_eq!(out.kept, vec![vec![true, false, false], vec![false, true]]);
        assert_eq!(out.dropped_all_correct, 1);
        assert_eq!(out.dropped_all_wrong, 2);
        assert_eq!(out.dropped_empty, 1);
        // 3 + 2 + 0 + 4 samples lived in dropped groups.
        assert_eq!(out.dropped_samples, 9);
        // 5 wanted, 2 kept: 3 more to sample.
        assert_eq!(out.still_needed, 3);
    }

    #[test]
    fn group_filter_needs_nothing_when_target_is_met() {
        let out = filter_groups(vec![vec![1, 0], vec![0, 1], vec![1, 1]], |c| *c == 1, 2);
        assert_eq!(out.kept.len(), 2);
        assert_eq!(out.still_needed, 0);
    }

    #[test]
    fn groups_to_request_oversamples_by_keep_rate_with_a_cap() {
        // 3 needed, 40% of groups survive: ceil(3 / 0.4) = ceil(7.5) = 8.
        assert_eq!(groups_to_request(3, 0.4, 10), 8);
        // Cap: 3 * 2 = 6 < 8.
        assert_eq!(groups_to_request(3, 0.4, 2), 6);
        // Nothing survived last time: ask for the cap.
        assert_eq!(groups_to_request(3, 0.0, 4), 12);
        assert_eq!(groups_to_request(3, f64::NAN, 4), 12);
        // Rates above 1 are treated as 1.
        assert_eq!(groups_to_request(3, 1.5, 4), 3);
        assert_eq!(groups_to_request(0, 0.5, 4), 0);
    }

    #[test]
    fn filter_choice_parses_from_config() {
        let f: SampleFilter = serde_json::from_str(r#""dynamic_sampling""#).unwrap();
        assert_eq!(f, SampleFilter::DynamicSampling);
        assert_eq!(SampleFilter::default(), SampleFilter::ZeroAdvantage);
    }
}
