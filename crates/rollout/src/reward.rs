//! The terminal reward of docs/method.md section 4, `R_final = R + R_length`, with the shaping
//! itself (turn penalty, DAPO's soft overlong punishment, none) from `swerl_rl::reward`.
//! This module only decides *whether* an episode has a reward: infrastructure failures and
//! unknown grades never do.

use swerl_rl::reward::{EpisodeLength, LengthShaping};
use swerl_trajectory::{GradeOutcome, GradeReport, RewardParts};

/// The reward of a graded episode of `turns` agent turns and `response_tokens` sampled
/// tokens, or `None` when the grade is unknown (not graded, or the grader failed).
pub fn reward(
    grade: Option<&GradeReport>,
    turns: usize,
    response_tokens: usize,
    shaping: &LengthShaping,
) -> Option<RewardParts> {
    let grade = grade.filter(|g| g.outcome == GradeOutcome::Graded)?;
    let resolved = if grade.resolved { 1.0 } else { 0.0 };
    let length = EpisodeLength {
        turns: u32::try_from(turns).unwrap_or(u32::MAX),
        response_tokens: response_tokens as u64,
    };
    let length_penalty = shaping.penalty(length);
    Some(RewardParts {
        resolved,
        length_penalty,
        total: resolved + length_penalty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swerl_rl::reward::{SoftOverlong, TurnPenalty};

    fn grade(outcome: GradeOutcome, resolved: bool) -> GradeReport {
        GradeReport {
            instance_id: "t".into(),
            outcome,
            resolved,
            reason: String::new(),
            patch_applied: true,
            fail_to_pass: Default::default(),
            pass_to_pass: Default::default(),
            timings: Default::default(),
            log_tail: String::new(),
            test_log: String::new(),
            statuses: Default::default(),
        }
    }

    #[test]
    fn reward_adds_resolution_and_turn_penalty() {
        let c = LengthShaping::TurnPenalty(TurnPenalty::stage1());
        let r = reward(Some(&grade(GradeOutcome::Graded, true)), 25, 0, &c).unwrap();
        assert_eq!((r.resolved, r.length_penalty, r.total), (1.0, -0.5, 0.5));
        let r = reward(Some(&grade(GradeOutcome::Graded, false)), 3, 0, &c).unwrap();
        assert_eq!(r.total, 0.0);
        let r = reward(Some(&grade(GradeOutcome::Graded, true)), 9, 0, &c).unwrap();
        assert_eq!(r.total, 1.0);
    }

    #[test]
    fn soft_overlong_uses_the_sampled_tokens() {
        let c = LengthShaping::SoftOverlong(SoftOverlong::dapo());
        let r = reward(Some(&grade(GradeOutcome::Graded, true)), 70, 18_432, &c).unwrap();
        assert_eq!((r.length_penalty, r.total), (-0.5, 0.5));
    }

    #[test]
    fn unknown_grades_give_no_reward() {
        let c = LengthShaping::default();
        assert_eq!(reward(None, 3, 0, &c), None);
        let infra = grade(
            GradeOutcome::InfraError {
                message: "disk".into(),
            },
            false,
        );
        assert_eq!(reward(Some(&infra), 3, 0, &c), None);
    }
}
