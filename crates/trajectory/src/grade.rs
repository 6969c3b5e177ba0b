//! The result of grading one patch against one task, as SWE-bench defines it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Status of one test after parsing a log (SWE-bench's `TestStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TestStatus {
    Passed,
    Failed,
    Skipped,
    Error,
    Xfail,
}

impl TestStatus {
    /// SWE-bench counts PASSED and XFAIL as passing; everything else (and a missing test)
    /// as failing.
    pub fn is_pass(self) -> bool {
        matches!(self, TestStatus::Passed | TestStatus::Xfail)
    }
}

/// How grading ended. Only `Graded` carries a real outcome that may become a reward;
/// `InfraError` means the grade is unknown and the episode must be retried or excluded,
/// never scored as 0 (docs/method.md section 10, point 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GradeOutcome {
    /// Tests ran (or the patch was rejected for a reason that is the model's fault).
    Graded,
    /// The grader itself failed (sandbox did not start, disk full, ...).
    InfraError { message: String },
    /// The environment, not the patch, decided the test run: a missing interpreter, the
    /// project imported from outside the repository, a log naming none of the listed tests.
    /// Unknown like `InfraError`, and reported apart so a broken environment is seen as one.
    EnvironmentError { message: String },
}

impl GradeOutcome {
    /// Whether the grade is unknown (retry or exclude; never a reward).
    pub fn is_unknown(&self) -> bool {
        !matches!(self, GradeOutcome::Graded)
    }
}

/// Per-task grading report (SWE-bench's report, plus reasons and timings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeReport {
    pub instance_id: String,
    pub outcome: GradeOutcome,
    /// All FAIL_TO_PASS and PASS_TO_PASS tests pass.
    pub resolved: bool,
    /// Why the task is not resolved (or "resolved"): e.g. "patch does not apply: ...",
    /// "test run timed out after 300 s", "2 of 3 FAIL_TO_PASS tests failed".
    pub reason: String,
    /// Whether the model patch applied (an empty patch counts as applied).
    pub patch_applied: bool,
    pub fail_to_pass: BTreeMap<String, Option<TestStatus>>,
    pub pass_to_pass: BTreeMap<String, Option<TestStatus>>,
    /// Wall-clock seconds per grading phase ("setup", "apply", "tests", "total").
    pub timings: BTreeMap<String, f64>,
    /// Tail of the raw test log, for people.
    pub log_tail: String,
    /// The whole test log, capped with a marker (reports of `validate` and `grade`; empty in
    /// trajectories, which keep only the tail).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub test_log: String,
    /// Every status the log parser found, listed tests or not (kept with `test_log`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, TestStatus>,
}
