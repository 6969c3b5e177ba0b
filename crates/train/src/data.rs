//! From trajectory records to training sequences: which trajectories are trained on, with
//! which mask and which advantage. Every exclusion is counted (docs/method.md section 10,
//! point 2: an infrastructure failure is excluded, never scored as 0).

use std::collections::BTreeMap;

use swerl_rl::advantage::AdvantageEstimator;
use swerl_trajectory::Trajectory;

use crate::batch::Sequence;

/// Why trajectories were or were not turned into training sequences.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Selection {
    pub kept: usize,
    /// Excluded because the episode or its grading failed for infrastructure reasons.
    pub infra_failures: usize,
    /// RFT: not resolved. DAPO: advantage exactly 0 (the group had equal rewards).
    pub rejected: usize,
    /// Kept trajectories whose mask had no trained token left.
    pub empty: usize,
}

fn sequence(t: &Trajectory, mask: Vec<u8>, advantage: f32, source: usize) -> Sequence {
    Sequence {
        ids: t.token_ids.clone(),
        loss_mask: mask.iter().map(|&m| m != 0).collect(),
        sampler_logprobs: t.sampler_logprobs.clone(),
        advantage,
        source,
    }
}

/// Which graded trajectories supervised fine-tuning learns from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Resolved ones only: rejection fine-tuning (docs/method.md section 5).
    #[default]
    Resolved,
    /// Every graded one, resolved or not: plain SFT, e.g. on demonstrations whose mistakes
    /// the model is meant to learn as well (the demo's stand-in base model).
    All,
}

/// Rejection fine-tuning data (docs/method.md section 5): resolved trajectories only (or every
/// graded one with [`Keep::All`]), loss on assistant tokens, assistant turns with a format
/// error masked out (kept in context). Infrastructure failures are never kept.
pub fn rft_sequences(trajs: &[Trajectory], keep: Keep) -> (Vec<Sequence>, Selection) {
    let mut sel = Selection::default();
    let mut out = Vec::new();
    for (i, t) in trajs.iter().enumerate() {
        if t.is_infra_failure() {
            sel.infra_failures += 1;
        } else if keep == Keep::Resolved && !t.resolved() {
            sel.rejected += 1;
        } else {
            let s = sequence(t, t.loss_mask_without_format_errors(), 1.0, i);
            if s.trained_tokens() == 0 {
                sel.empty += 1;
            } else {
                sel.kept += 1;
                out.push(s);
            }
        }
    }
    (out, sel)
}

/// DAPO data (docs/method.md section 6): group the trajectories by task, compute advantages from
/// `reward.total` within each group, and drop samples whose advantage is exactly 0 (no
/// refill). Infrastructure failures never enter a group.
pub fn dapo_sequences(
    trajs: &[Trajectory],
    estimator: &AdvantageEstimator,
) -> Result<(Vec<Sequence>, Selection), swerl_rl::advantage::AdvantageError> {
    let mut sel = Selection::default();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in trajs.iter().enumerate() {
        match &t.reward {
            Some(_) if !t.is_infra_failure() => groups.entry(&t.task_id).or_default().push(i),
            _ => sel.infra_failures += 1,
        }
    }
    let mut out = Vec::new();
    for members in groups.values() {
        let rewards: Vec<f64> = members
            .iter()
            .map(|&i| trajs[i].reward.expect("grouped").total)
            .collect();
        let advantages = estimator.compute(&rewards)?;
        for (&i, a) in members.iter().zip(advantages) {
            if a == 0.0 {
                sel.rejected += 1;
                continue;
            }
            let s = sequence(&trajs[i], trajs[i].loss_mask.clone(), a as f32, i);
            if s.trained_tokens() == 0 {
                sel.empty += 1;
            } else {
                sel.kept += 1;
                out.push(s);
            }
        }
    }
    Ok((out, sel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use swerl_trajectory::{
        EpisodeStatus, EpisodeTimings, FormatError, GradeOutcome, GradeReport, RewardParts, Turn,
        TurnTimings,
    };

    /// A two-turn trajectory: prompt [0, 1], turn 1 sampled [2, 3] (format error if
    /// `bad_first`), observation [4], turn 2 sampled [5, 6].
    fn traj(task: &str, resolved: Option<bool>, reward: f64, bad_first: bool) -> Trajectory {
        let turn = |start: usize, ids: Vec<u32>, fe: Option<FormatError>, obs: Vec<u32>| Turn {
            assistant_start: start,
            assistant_logprobs: vec![-0.1; ids.len()],
            assistant_ids: ids,
            assistant_text: String::new(),
            truncated: false,
            action: None,
            format_error: fe,
            observation_ids: obs,
            observation_text: String::new(),
            timings: TurnTimings::default(),
        };
        let grade = resolved.map(|r| GradeReport {
            instance_id: task.into(),
            outcome: GradeOutcome::Graded,
            resolved: r,
            reason: String::new(),
            patch_applied: true,
            fail_to_pass: Default::default(),
            pass_to_pass: Default::default(),
            timings: Default::default(),
            log_tail: String::new(),
            test_log: String::new(),
            statuses: Default::default(),
        });
        Trajectory {
            schema_version: swerl_trajectory::SCHEMA_VERSION,
            task_id: task.into(),
            sample_index: 0,
            attempt: 1,
            policy: serde_json::Value::Null,
            prompt_len: 2,
            turns: vec![
                turn(
                    2,
                    vec![2, 3],
                    bad_first.then_some(FormatError::NoCommand),
                    vec![4],
                ),
                turn(5, vec![5, 6], None, vec![]),
            ],
            token_ids: (0..7).collect(),
            loss_mask: vec![0, 0, 1, 1, 0, 1, 1],
            sampler_logprobs: vec![0.0, 0.0, -0.1, -0.1, 0.0, -0.1, -0.1],
            status: if resolved.is_some() {
                EpisodeStatus::Submitted
            } else {
                EpisodeStatus::EnvError
            },
            error: None,
            final_patch: Some(String::new()),
            reward: resolved.map(|_| RewardParts {
                resolved: reward,
                length_penalty: 0.0,
                total: reward,
            }),
            grade,
            timings: EpisodeTimings::default(),
            versions: Default::default(),
            created_at_unix_s: 0,
        }
    }

    #[test]
    fn rft_keeps_resolved_and_masks_format_error_turns() {
        let trajs = vec![
            traj("a", Some(true), 1.0, true),
            traj("a", Some(false), 0.0, false),
            traj("b", None, 0.0, false),
        ];
        let (seqs, sel) = rft_sequences(&trajs, Keep::Resolved);
        assert_eq!(
            sel,
            Selection {
                kept: 1,
                infra_failures: 1,
                rejected: 1,
                empty: 0
            }
        );
        let (all, sel_all) = rft_sequences(&trajs, Keep::All);
        assert_eq!(
            (all.len(), sel_all.rejected, sel_all.infra_failures),
            (2, 0, 1)
        );
        assert_eq!(
            seqs[0].loss_mask,
            vec![false, false, false, false, false, true, true]
        );
    }

    #[test]
    fn dapo_groups_by_task_and_drops_zero_advantages() {
        let trajs = vec![
            traj("a", Some(true), 1.0, false),
            traj("a", Some(false), 0.0, false),
            traj("b", Some(true), 1.0, false),
            traj("b", Some(true), 1.0, false),
            traj("b", None, 0.0, false),
        ];
        let (seqs, sel) = dapo_sequences(&trajs, &AdvantageEstimator::default()).unwrap();
        // Group a: rewards (1, 0): mean 0.5, population std 0.5 -> advantages (+1, -1) / (1 + 2e-6).
        // Group b: equal rewards -> advantage 0 for both, dropped; the env error never entered.
        assert_eq!(
            sel,
            Selection {
                kept: 2,
                infra_failures: 1,
                rejected: 2,
                empty: 0
            }
        );
        assert!((seqs[0].advantage - 1.0).abs() < 1e-5 && (seqs[1].advantage + 1.0).abs() < 1e-5);
        // DAPO trains every sampled token, format-error turns included (they are negatives).
        assert_eq!(seqs[0].trained_tokens(), 4);
    }
}
