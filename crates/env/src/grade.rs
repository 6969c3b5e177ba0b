//! Grading a patch the way SWE-bench does, in a fresh sandbox (never the agent's):
//! apply the model patch, restore the test files, apply the test_patch, run the test command,
//! parse the log; resolved iff every FAIL_TO_PASS and PASS_TO_PASS test passes.
//!
//! Outcomes: a patch that does not apply or a test run that times out is a *graded* failure
//! with a reason (the model's doing). A sandbox failure, a task whose test spec cannot be
//! derived or whose test_patch does not apply is an `InfraError`: the grade is unknown and
//! must never become a reward of 0.
//!
//! Environment checks (`envcheck`) run around the tests: before the patch, that the
//! prepared interpreter runs and the repository's packages import from the repository; after
//! the run, that the log names the listed tests at all. A failed check is an
//! `EnvironmentError` (unknown grade); a log without the listed tests after a non-empty patch
//! is first attributed by a second run without the patch.
//!
//! One deliberate difference from SWE-bench's report: SWE-bench leaves a SKIPPED test out of
//! both its success and failure counts; here only PASSED and XFAIL count as passing
//! (`TestStatus::is_pass`), so a patch cannot be rewarded for making required tests skip.

use crate::envbuild::{apply_environment, Manifest};
use crate::envcheck;
use crate::spec::{test_spec, TestSpec};
use crate::task::Task;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use swerl_sandbox::{Limits, Sandbox, SandboxError, SandboxFactory, SandboxSpec};
use swerl_trajectory::grade::{GradeOutcome, GradeReport, TestStatus};

/// How grading runs.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    /// Wall-clock limit of the test command (SWE-bench uses 1800 s for its large repos).
    pub test_timeout: Duration,
    /// Limit for each of the small git steps (applying patches, restoring files).
    pub step_timeout: Duration,
    /// Where the repository appears inside the sandbox.
    pub workdir: String,
    /// A writable directory inside the sandbox, outside the repository, for the patch files
    /// and the test log (private per sandbox in the local backend).
    pub scratch_dir: String,
    pub limits: Limits,
    /// Extra environment variables for the sandbox shell.
    pub env: Vec<(String, String)>,
    /// How much of the end of the test log to keep in the report, in bytes.
    pub log_tail_bytes: usize,
    /// Keep the whole test log (capped at this many bytes, with a marker) and every parsed
    /// status in the report; 0 keeps neither (trajectories keep only the tail).
    pub keep_log_bytes: usize,
}

impl Default for GradeOptions {
    fn default() -> Self {
        GradeOptions {
            test_timeout: Duration::from_secs(300),
            step_timeout: Duration::from_secs(60),
            workdir: "/testbed".into(),
            scratch_dir: "/tmp".into(),
            limits: Limits::default(),
            env: Vec::new(),
            log_tail_bytes: 4000,
            keep_log_bytes: 0,
        }
    }
}

/// Grades `model_patch` (a unified diff; empty means "no change") for `task` in a fresh
/// sandbox made by `factory` from the prepared `env_source`. Never panics on bad input and
/// never returns a plain unresolved report for an infrastructure failure.
pub fn grade(
    task: &Task,
    model_patch: &str,
    factory: &dyn SandboxFactory,
    env_source: &Path,
    opts: &GradeOptions,
) -> GradeReport {
    let started = Instant::now();
    let mut report = empty_report(task);
    let run = |patch: &str, report: &mut GradeReport| {
        test_spec(task)
            .map_err(|e| Stop::Infra(e.to_string()))
            .and_then(|spec| {
                grade_in_sandbox(task, &spec, patch, factory, env_source, opts, report)
            })
    };
    let mut result = run(model_patch, &mut report);
    if matches!(result, Err(Stop::TestsMissing(_))) && !model_patch.trim().is_empty() {
        result = attribute_missing_tests(result, &mut |r| run("", r), task);
    }
    match result {
        Ok(()) => {}
        Err(Stop::Graded(reason)) => report.reason = reason,
        Err(Stop::Infra(message)) => {
            report.reason = format!("infrastructure error: {message}");
            report.outcome = GradeOutcome::InfraError { message };
            report.resolved = false;
        }
        Err(Stop::Environment(message) | Stop::TestsMissing(message)) => {
            report.reason = format!("environment error: {message}");
            report.outcome = GradeOutcome::EnvironmentError { message };
            report.resolved = false;
        }
    }
    report
        .timings
        .insert("total".into(), started.elapsed().as_secs_f64());
    report
}

/// Why grading stopped early.
enum Stop {
    /// A graded failure (e.g. the patch does not apply); the string is the reason.
    Graded(String),
    /// The grade is unknown.
    Infra(String),
    /// The environment failed a check before the patch was applied.
    Environment(String),
    /// The log names none of the listed tests (the patch's doing or the environment's).
    TestsMissing(String),
}

/// A log without the listed tests after a non-empty patch: run once more without the patch.
/// If the tests show up there, the patch hid them (a graded failure); if not, the
/// environment did.
fn attribute_missing_tests(
    with_patch: Result<(), Stop>,
    run_without_patch: &mut dyn FnMut(&mut GradeReport) -> Result<(), Stop>,
    task: &Task,
) -> Result<(), Stop> {
    let Err(Stop::TestsMissing(message)) = with_patch else {
        return with_patch;
    };
    let mut baseline = empty_report(task);
    match run_without_patch(&mut baseline) {
        Err(Stop::TestsMissing(_) | Stop::Environment(_)) => Err(Stop::TestsMissing(message)),
        Err(Stop::Infra(e)) => Err(Stop::Infra(e)),
        Ok(()) | Err(Stop::Graded(_)) => Err(Stop::Graded(format!(
            "the patch leaves none of the listed tests in the log (without it they run): {message}"
        ))),
    }
}

impl From<SandboxError> for Stop {
    fn from(e: SandboxError) -> Stop {
        Stop::Infra(e.to_string())
    }
}

fn empty_report(task: &Task) -> GradeReport {
    let none = |ids: &[String]| {
        ids.iter()
            .map(|id| (id.clone(), None))
            .collect::<BTreeMap<_, _>>()
    };
    GradeReport {
        instance_id: task.instance_id.clone(),
        outcome: GradeOutcome::Graded,
        resolved: false,
        reason: String::new(),
        patch_applied: false,
        fail_to_pass: none(&task.fail_to_pass),
        pass_to_pass: none(&task.pass_to_pass),
        timings: BTreeMap::new(),
        log_tail: String::new(),
        test_log: String::new(),
        statuses: Default::default(),
    }
}

/// Creates the sandbox, runs the grading steps, and always tears the sandbox down.
fn grade_in_sandbox(
    task: &Task,
    spec: &TestSpec,
    model_patch: &str,
    factory: &dyn SandboxFactory,
    env_source: &Path,
    opts: &GradeOptions,
    report: &mut GradeReport,
) -> Result<(), Stop> {
    let t = Instant::now();
    let mut sandbox_spec = SandboxSpec {
        env_source: env_source.to_path_buf(),
        workdir: opts.workdir.clone(),
        limits: opts.limits.clone(),
        env: opts.env.clone(),
        image: task.environment_image().map(str::to_string),
        ..Default::default()
    };
    let manifest = apply_environment(&mut sandbox_spec).map_err(Stop::Environment)?;
    let mut sandbox = factory
        .create(&sandbox_spec)
        .map_err(|e| Stop::Infra(format!("sandbox could not start: {e}")))?;
    report
        .timings
        .insert("setup".into(), t.elapsed().as_secs_f64());
    let mut steps = Steps {
        sb: sandbox.as_mut(),
        opts,
        report,
    };
    let result = steps.run(task, spec, model_patch, manifest.as_ref());
    if let Err(e) = sandbox.teardown() {
        tracing::warn!(instance_id = %task.instance_id, error = %e, "grading sandbox teardown failed");
    }
    result
}

/// The grading steps inside one sandbox.
struct Steps<'a> {
    sb: &'a mut dyn Sandbox,
    opts: &'a GradeOptions,
    report: &'a mut GradeReport,
}

impl Steps<'_> {
    fn run(
        &mut self,
        task: &Task,
        spec: &TestSpec,
        model_patch: &str,
        manifest: Option<&Manifest>,
    ) -> Result<(), Stop> {
        let t = Instant::now();
        if let Some(problem) = envcheck::probe(self.sb, manifest, self.opts.step_timeout)? {
            return Err(Stop::Environment(problem));
        }
        self.report
            .timings
            .insert("checks".into(), t.elapsed().as_secs_f64());
        let t = Instant::now();
        self.apply_model_patch(model_patch)?;
        self.report.patch_applied = true;
        self.restore_test_files(&spec.test_files)?;
        self.apply_test_patch(&task.test_patch)?;
        self.report
            .timings
            .insert("apply".into(), t.elapsed().as_secs_f64());
        let t = Instant::now();
        let (log, timed_out) = self.run_tests(&test_command(spec, manifest))?;
        self.report
            .timings
            .insert("tests".into(), t.elapsed().as_secs_f64());
        self.report.log_tail = tail(&log, self.opts.log_tail_bytes);
        let statuses = spec.log_parser.parse(&log);
        fill_statuses(self.report, &statuses);
        if self.opts.keep_log_bytes > 0 {
            self.report.test_log = cap_log(&log, self.opts.keep_log_bytes);
            self.report.statuses = statuses.clone();
        }
        if timed_out {
            return Err(Stop::Graded(format!(
                "test run timed out after {} s",
                self.opts.test_timeout.as_secs_f64()
            )));
        }
        let listed: Vec<&String> = task.fail_to_pass.iter().chain(&task.pass_to_pass).collect();
        if let Some(problem) = envcheck::log_problem(&log, &listed, &statuses) {
            return Err(Stop::TestsMissing(problem));
        }
        let (resolved, reason) = verdict(self.report);
        self.report.resolved = resolved;
        self.report.reason = reason;
        Ok(())
    }

    /// `cd` into the repository, then `command`, with the step timeout.
    fn exec_in_repo(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<swerl_sandbox::ExecOutput, Stop> {
        let full = format!("cd {} && {command}", shell_quote(self.sb.workdir()));
        Ok(self.sb.exec(&full, Some(timeout))?)
    }

    fn scratch(&self, name: &str) -> String {
        format!("{}/{name}", self.opts.scratch_dir.trim_end_matches('/'))
    }

    /// SWE-bench's order: `git apply --verbose`, then `patch --batch --fuzz=5 -p1`. A patch
    /// that applies with neither is a graded failure.
    fn apply_model_patch(&mut self, patch: &str) -> Result<(), Stop> {
        if patch.trim().is_empty() {
            return Ok(());
        }
        let file = self.scratch("swerl-model.patch");
        self.sb
            .write_file(&file, with_final_newline(patch).as_bytes())?;
        let q = shell_quote(&file);
        let mut errors = Vec::new();
        for cmd in [
            format!("git apply --verbose {q}"),
            format!("patch --batch --fuzz=5 -p1 -i {q}"),
        ] {
            let out = self.exec_in_repo(&cmd, self.opts.step_timeout)?;
            if out.exit_code == Some(0) {
                return Ok(());
            }
            errors.push(format!("`{cmd}`: {}", out.output.trim()));
            if cmd.starts_with("patch") {
                // A failed `patch` may leave partial hunks and .rej files: the repository is no
                // longer the base, but nothing is graded from it, so no cleanup is needed.
                break;
            }
        }
        Err(Stop::Graded(format!(
            "patch does not apply: {}",
            tail(&errors.join("; "), 1500)
        )))
    }

    /// Puts every file the test_patch touches back to its base version (or removes it when
    /// it does not exist at base), so model edits to tests cannot change the verdict.
    fn restore_test_files(&mut self, files: &[String]) -> Result<(), Stop> {
        if files.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = files.iter().map(|f| shell_quote(f)).collect();
        let script = format!(
            "for f in {}; do if git cat-file -e \"HEAD:$f\" 2>/dev/null; then git checkout -q HEAD -- \"$f\"; \
             else rm -rf -- \"$f\"; fi; done",
            list.join(" ")
        );
        let out = self.exec_in_repo(&script, self.opts.step_timeout)?;
        if out.exit_code != Some(0) {
            return Err(Stop::Infra(format!(
                "could not restore the test files: {}",
                out.output.trim()
            )));
        }
        Ok(())
    }

    /// The test_patch must apply on restored test files; if it does not, the task is broken.
    fn apply_test_patch(&mut self, patch: &str) -> Result<(), Stop> {
        if patch.trim().is_empty() {
            return Ok(());
        }
        let file = self.scratch("swerl-test.patch");
        self.sb
            .write_file(&file, with_final_newline(patch).as_bytes())?;
        let out = self.exec_in_repo(
            &format!("git apply --verbose {}", shell_quote(&file)),
            self.opts.step_timeout,
        )?;
        if out.exit_code != Some(0) {
            return Err(Stop::Infra(format!(
                "the task's test_patch does not apply: {}",
                tail(out.output.trim(), 1500)
            )));
        }
        Ok(())
    }

    /// Runs the test command with its output sent to a file (so the sandbox's output cap
    /// cannot cut the log the parser needs) and returns (log, timed out).
    fn run_tests(&mut self, test_cmd: &str) -> Result<(String, bool), Stop> {
        let log_file = self.scratch("swerl-test.log");
        let cmd = format!("( {test_cmd} ) > {} 2>&1", shell_quote(&log_file));
        let out = self.exec_in_repo(&cmd, self.opts.test_timeout)?;
        let log = self.sb.read_file(&log_file)?;
        Ok((String::from_utf8_lossy(&log).into_owned(), out.timed_out))
    }
}

/// The test command with the environment's `eval_commands` before it (SWE-bench runs them
/// first in its eval script).
fn test_command(spec: &TestSpec, manifest: Option<&Manifest>) -> String {
    let mut lines: Vec<&str> = manifest
        .map(|m| m.eval_commands.iter().map(String::as_str).collect())
        .unwrap_or_default();
    lines.push(&spec.test_cmd);
    lines.join("\n")
}

/// The log cut to `max` bytes: its first and last halves with a marker between them.
fn cap_log(log: &str, max: usize) -> String {
    if log.len() <= max {
        return log.to_string();
    }
    let mut head = max / 2;
    while !log.is_char_boundary(head) {
        head -= 1;
    }
    let tail_part = tail(log, max - head);
    let omitted = log.len() - head - tail_part.len();
    format!(
        "{}\n[... {omitted} bytes of the test log omitted ...]\n{tail_part}",
        &log[..head]
    )
}

/// Records the parsed status of every FAIL_TO_PASS and PASS_TO_PASS test (None = missing).
fn fill_statuses(report: &mut GradeReport, statuses: &BTreeMap<String, TestStatus>) {
    for (id, status) in report
        .fail_to_pass
        .iter_mut()
        .chain(report.pass_to_pass.iter_mut())
    {
        *status = statuses.get(id).copied();
    }
}

/// Resolved iff every listed test passes; otherwise a reason naming counts and a first
/// failing test of each kind.
fn verdict(report: &GradeReport) -> (bool, String) {
    let problems: Vec<String> = [
        ("FAIL_TO_PASS", &report.fail_to_pass),
        ("PASS_TO_PASS", &report.pass_to_pass),
    ]
    .into_iter()
    .filter_map(|(kind, tests)| failing_summary(kind, tests))
    .collect();
    if problems.is_empty() {
        (true, "resolved".into())
    } else {
        (false, problems.join("; "))
    }
}

fn failing_summary(kind: &str, tests: &BTreeMap<String, Option<TestStatus>>) -> Option<String> {
    let failing: Vec<(&String, &Option<TestStatus>)> = tests
        .iter()
        .filter(|(_, s)| !s.is_some_and(TestStatus::is_pass))
        .collect();
    let (first, status) = failing.first()?;
    let status = status.map_or("missing from the log".to_string(), |s| {
        format!("{s:?}").to_uppercase()
    });
    Some(format!(
        "{} of {} {kind} tests did not pass (e.g. {first}: {status})",
        failing.len(),
        tests.len()
    ))
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

fn with_final_newline(patch: &str) -> String {
    if patch.ends_with('\n') {
        patch.to_string()
    } else {
        format!("{patch}\n")
    }
}

/// Quotes a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_counts_missing_and_skipped_as_not_passing() {
        let mut r = empty_report(&Task::from_json(serde_json::json!({
            "instance_id": "a-1", "repo": "o/r", "problem_statement": "", "patch": "", "test_patch": "",
            "FAIL_TO_PASS": ["f1", "f2"], "PASS_TO_PASS": ["p1"]})).unwrap());
        let statuses: BTreeMap<String, TestStatus> = [
            ("f1".to_string(), TestStatus::Xfail),
            ("p1".to_string(), TestStatus::Skipped),
        ]
        .into();
        fill_statuses(&mut r, &statuses);
        let (resolved, reason) = verdict(&r);
        assert!(!resolved);
        assert_eq!(
            reason,
            "1 of 2 FAIL_TO_PASS tests did not pass (e.g. f2: missing from the log); \
             1 of 1 PASS_TO_PASS tests did not pass (e.g. p1: SKIPPED)"
        );
        r.fail_to_pass.insert("f2".into(), Some(TestStatus::Passed));
        r.pass_to_pass.insert("p1".into(), Some(TestStatus::Passed));
        assert_eq!(verdict(&r), (true, "resolved".to_string()));
    }

    #[test]
    fn capped_logs_keep_both_ends_and_say_what_was_cut() {
        let log = format!("head{}tail", "x".repeat(100));
        let capped = cap_log(&log, 20);
        assert!(capped.starts_with("headxxxxxx"), "{capped}");
        assert!(capped.ends_with("xxxxxxtail"), "{capped}");
        assert!(
            capped.contains("[... 88 bytes of the test log omitted ...]"),
            "{capped}"
        );
        assert_eq!(cap_log("short", 20), "short");
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
