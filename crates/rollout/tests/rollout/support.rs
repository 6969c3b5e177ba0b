//! Shared builders for the tests.

use std::collections::BTreeMap;
use swerl_trajectory::{
    EpisodeStatus, EpisodeTimings, GradeOutcome, GradeReport, Trajectory, SCHEMA_VERSION,
};

/// A small valid trajectory of `task` / `sample`, with `pad` extra tokens to vary its size.
pub fn trajectory(task: &str, sample: u32, pad: usize) -> Trajectory {
    Trajectory {
        schema_version: SCHEMA_VERSION,
        task_id: task.into(),
        sample_index: sample,
        attempt: 1,
        policy: serde_json::json!({"model": "test"}),
        prompt_len: pad,
        turns: vec![],
        token_ids: (0..pad as u32).collect(),
        loss_mask: vec![0; pad],
        sampler_logprobs: vec![0.0; pad],
        status: EpisodeStatus::Submitted,
        error: None,
        final_patch: Some(format!("diff for {task}")),
        grade: None,
        reward: None,
        timings: EpisodeTimings::default(),
        versions: BTreeMap::new(),
        created_at_unix_s: 0,
    }
}

/// A graded report that resolves the task iff `resolved`.
pub fn grade(instance_id: &str, resolved: bool) -> GradeReport {
    GradeReport {
        instance_id: instance_id.into(),
        outcome: GradeOutcome::Graded,
        resolved,
        reason: if resolved {
            "resolved".into()
        } else {
            "tests failed".into()
        },
        patch_applied: true,
        fail_to_pass: Default::default(),
        pass_to_pass: Default::default(),
        timings: Default::default(),
        log_tail: String::new(),
        test_log: String::new(),
        statuses: Default::default(),
    }
}
