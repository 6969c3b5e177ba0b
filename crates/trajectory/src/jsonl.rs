//! The versioned JSON-lines form of [`Trajectory`]: one record per line, each carrying
//! `"schema_version"` so that a reader meets an unknown layout with a clear error rather
//! than silently misreading it.

use crate::Trajectory;
use serde::Deserialize;

/// The record layout this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A record line that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invalid trajectory record: {0} (the line is not a complete JSON record)")]
    Json(#[from] serde_json::Error),
    #[error(
        "trajectory record has schema_version {found}, but this build reads only version \
         {SCHEMA_VERSION}; use the swerl version that wrote it or convert the file"
    )]
    UnsupportedVersion { found: u32 },
    #[error("trajectory record has no schema_version field; it was not written by swerl")]
    MissingVersion,
    #[error(
        "trajectory {task_id} #{sample_index} has a non-finite sampler log-prob at token \
         {index}; the policy backend returned NaN or infinity and must be fixed"
    )]
    NonFiniteLogprob {
        task_id: String,
        sample_index: u32,
        index: usize,
    },
}

/// The fields that identify a record, read without parsing the whole trajectory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordKey {
    pub schema_version: u32,
    pub task_id: String,
    pub sample_index: u32,
}

/// Serialises one trajectory as a single JSON line, including the trailing newline.
/// Fails on non-finite log-probs (a broken backend): JSON would write them as `null` and
/// the record could not be read back.
pub fn to_json_line(trajectory: &Trajectory) -> Result<String, RecordError> {
    if let Some(index) = trajectory
        .sampler_logprobs
        .iter()
        .position(|x| !x.is_finite())
    {
        return Err(RecordError::NonFiniteLogprob {
            task_id: trajectory.task_id.clone(),
            sample_index: trajectory.sample_index,
            index,
        });
    }
    let mut line = serde_json::to_string(trajectory)?;
    line.push('\n');
    Ok(line)
}

/// Parses one line into a trajectory, checking the schema version first.
pub fn from_json_line(line: &str) -> Result<Trajectory, RecordError> {
    check_version(line)?;
    Ok(serde_json::from_str(line)?)
}

/// Parses only the identifying fields of one line (still validating the whole line as JSON).
pub fn key_from_json_line(line: &str) -> Result<RecordKey, RecordError> {
    check_version(line)?;
    Ok(serde_json::from_str(line)?)
}

fn check_version(line: &str) -> Result<(), RecordError> {
    #[derive(Deserialize)]
    struct Versioned {
        schema_version: Option<u32>,
    }
    match serde_json::from_str::<Versioned>(line)?.schema_version {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) => Err(RecordError::UnsupportedVersion { found }),
        None => Err(RecordError::MissingVersion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EpisodeStatus, EpisodeTimings, FormatError, RewardParts, Turn, TurnTimings};

    fn turn(start: usize, ids: Vec<u32>, format_error: Option<FormatError>) -> Turn {
        Turn {
            assistant_start: start,
            assistant_logprobs: vec![-0.5; ids.len()],
            assistant_ids: ids,
            assistant_text: "text".into(),
            truncated: false,
            action: None,
            format_error,
            observation_ids: vec![9],
            observation_text: "obs".into(),
            timings: TurnTimings::default(),
        }
    }

    /// prompt [1, 2], turn 0 [3, 4] + obs [9], turn 1 (format error) [5] + obs [9].
    fn sample() -> Trajectory {
        Trajectory {
            schema_version: SCHEMA_VERSION,
            task_id: "repo__x-1".into(),
            sample_index: 3,
            attempt: 1,
            policy: serde_json::json!({"model": "m", "temperature": 1.0}),
            prompt_len: 2,
            turns: vec![
                turn(2, vec![3, 4], None),
                turn(5, vec![5], Some(FormatError::NoCommand)),
            ],
            token_ids: vec![1, 2, 3, 4, 9, 5, 9],
            loss_mask: vec![0, 0, 1, 1, 0, 1, 0],
            sampler_logprobs: vec![0.0, 0.0, -0.5, -0.5, 0.0, -0.5, 0.0],
            status: EpisodeStatus::Submitted,
            error: None,
            final_patch: Some("diff".into()),
            grade: None,
            reward: Some(RewardParts {
                resolved: 0.0,
                length_penalty: 0.0,
                total: 0.0,
            }),
            timings: EpisodeTimings::default(),
            versions: [("swerl".to_string(), "0.1.0".to_string())].into(),
            created_at_unix_s: 1_700_000_000,
        }
    }

    #[test]
    fn a_record_round_trips_through_one_line() {
        let t = sample();
        let line = to_json_line(&t).unwrap();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "one record, one line");
        assert_eq!(from_json_line(&line).unwrap(), t);
        let key = key_from_json_line(&line).unwrap();
        assert_eq!((key.task_id.as_str(), key.sample_index), ("repo__x-1", 3));
    }

    #[test]
    fn a_newer_schema_version_is_a_clear_error() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["schema_version"] = 99.into();
        let err = from_json_line(&v.to_string()).unwrap_err();
        assert!(matches!(err, RecordError::UnsupportedVersion { found: 99 }));
        assert!(err.to_string().contains("schema_version 99"), "{err}");
    }

    #[test]
    fn a_line_without_version_is_rejected() {
        let err = from_json_line(r#"{"task_id": "a"}"#).unwrap_err();
        assert!(matches!(err, RecordError::MissingVersion), "{err}");
    }

    #[test]
    fn a_truncated_line_is_a_json_error() {
        let line = to_json_line(&sample()).unwrap();
        let err = from_json_line(&line[..line.len() / 2]).unwrap_err();
        assert!(matches!(err, RecordError::Json(_)), "{err}");
    }

    #[test]
    fn nan_logprobs_are_an_error_not_a_panic() {
        let mut t = sample();
        t.sampler_logprobs[2] = f32::NAN;
        assert!(to_json_line(&t).is_err());
    }

    #[test]
    fn rft_mask_drops_format_error_turns_only() {
        let t = sample();
        assert_eq!(t.loss_mask_without_format_errors(), [0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(t.sampled_tokens(), 3);
    }

    #[test]
    fn grading_infra_errors_count_as_infra_failures() {
        let mut t = sample();
        assert!(!t.is_infra_failure());
        t.grade = Some(crate::GradeReport {
            instance_id: "repo__x-1".into(),
            outcome: crate::GradeOutcome::InfraError {
                message: "disk full".into(),
            },
            resolved: false,
            reason: "grader failed".into(),
            patch_applied: false,
            fail_to_pass: Default::default(),
            pass_to_pass: Default::default(),
            timings: Default::default(),
            log_tail: String::new(),
            test_log: String::new(),
            statuses: Default::default(),
        });
        assert!(t.is_infra_failure());
        assert!(!t.resolved());
    }
}
