//! `swerl validate`: checks that tasks are well-formed benchmarks: with the test patch alone
//! every FAIL_TO_PASS test fails (and so the empty patch does not resolve), and the gold
//! patch resolves.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use swerl_env::grade::{grade, GradeOptions};
use swerl_env::prepare::EnvSources;
use swerl_env::task::Task;
use swerl_sandbox::SandboxFactory;
use swerl_trajectory::grade::{GradeOutcome, GradeReport};

use crate::common::{par_map, progress_bar, write_json, TaskArgs, ENV_HELP};

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// Where to write the JSON report.
    #[arg(long, value_name = "OUT", default_value = "runs/validate.json")]
    pub json: PathBuf,
    /// Also write the valid tasks to this JSONL file (rows as read, with the image a
    /// template gave them), and succeed when at least one is valid: filtering a dataset.
    /// The rejected rows' ids and reasons go to `<FILE>.rejected.jsonl`.
    #[arg(long, value_name = "FILE")]
    pub write_valid: Option<PathBuf>,
    /// Run the gold patch this many times; a task whose listed tests do not give the same
    /// result every time is flaky and rejected (the paper's curation reruns tests too).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub reruns: usize,
    /// Reject tasks whose gold patch touches more files than this (the paper: 7).
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub max_gold_files: usize,
    /// Reject tasks whose gold patch changes this many lines or more, added plus removed
    /// (the paper: fewer than 500).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub max_gold_lines: usize,
}

/// Reports keep each run's test log up to this size (head and tail, with a marker).
pub const REPORT_LOG_BYTES: usize = 1 << 20;

/// The validation of one task.
#[derive(Debug, Serialize)]
struct Validation {
    instance_id: String,
    valid: bool,
    /// Why the task is invalid (empty when valid).
    problems: Vec<String>,
    /// Grade of the empty patch (test patch alone).
    before: Option<GradeReport>,
    /// Grade of the gold patch.
    gold: Option<GradeReport>,
    /// Further gold runs (`--reruns`), for the flakiness check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gold_reruns: Vec<GradeReport>,
}

/// The curation limits of one validation run.
#[derive(Debug, Clone, Copy)]
struct Curation {
    reruns: usize,
    max_gold_files: usize,
    max_gold_lines: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tasks = args.tasks.load()?;
    let factory = args.tasks.factory()?;
    let (sources, mut opts) = (args.tasks.env_sources(), args.tasks.grade_options());
    opts.keep_log_bytes = REPORT_LOG_BYTES;
    let curation = Curation {
        reruns: args.reruns.max(1),
        max_gold_files: args.max_gold_files,
        max_gold_lines: args.max_gold_lines,
    };
    let bar = progress_bar(tasks.len(), "validating");
    let results = par_map(&tasks, args.tasks.jobs(), |task| {
        let v = validate_task(task, factory.as_ref(), &sources, &opts, curation);
        bar.inc(1);
        v
    });
    bar.finish_and_clear();
    print_table(&results);
    write_json(&args.json, &results)?;
    let invalid = results.iter().filter(|v| !v.valid).count();
    println!(
        "{} of {} tasks valid; report: {}",
        results.len() - invalid,
        results.len(),
        args.json.display()
    );
    if let Some(path) = &args.write_valid {
        let valid: Vec<&Task> = tasks
            .iter()
            .zip(&results)
            .filter(|(_, v)| v.valid)
            .map(|(t, _)| t)
            .collect();
        crate::common::write_atomic(
            path,
            swerl_env::task::to_jsonl(valid.iter().copied())?.as_bytes(),
        )?;
        let rejected_path = rejected_file(path);
        crate::common::write_atomic(&rejected_path, rejected_rows(&results).as_bytes())?;
        println!(
            "{} valid tasks written to {}; {} rejected, with reasons, to {}",
            valid.len(),
            path.display(),
            invalid,
            rejected_path.display()
        );
        return Ok(if valid.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `<FILE>.rejected.jsonl` next to the valid rows.
fn rejected_file(valid: &Path) -> PathBuf {
    let mut name = valid.file_name().unwrap_or_default().to_os_string();
    name.push(".rejected.jsonl");
    valid.with_file_name(name)
}

/// One JSON line per rejected task: its id and every reason.
fn rejected_rows(results: &[Validation]) -> String {
    results
        .iter()
        .filter(|v| !v.valid)
        .map(|v| {
            serde_json::json!({"instance_id": v.instance_id, "reasons": v.problems}).to_string()
                + "\n"
        })
        .collect()
}

/// The paper's patch-size filter on the gold patch: at most `max_files` files and fewer
/// than `max_lines` changed lines (added plus removed).
fn gold_size_problems(task: &Task, curation: Curation) -> Vec<String> {
    let files = swerl_env::spec::patch_files(&task.patch).len();
    let lines = task
        .patch
        .lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count();
    let mut problems = Vec::new();
    if files > curation.max_gold_files {
        problems.push(format!(
            "gold patch touches {files} files (at most {} allowed)",
            curation.max_gold_files
        ));
    }
    if lines >= curation.max_gold_lines {
        problems.push(format!(
            "gold patch changes {lines} lines (fewer than {} allowed)",
            curation.max_gold_lines
        ));
    }
    problems
}

/// Listed tests whose result differs between gold runs.
fn flaky_problems(runs: &[&GradeReport]) -> Vec<String> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let passes = |r: &GradeReport, id: &str| {
        r.fail_to_pass
            .get(id)
            .or_else(|| r.pass_to_pass.get(id))
            .is_some_and(|s| s.is_some_and(|s| s.is_pass()))
    };
    first
        .fail_to_pass
        .keys()
        .chain(first.pass_to_pass.keys())
        .filter_map(|id| {
            let passed = runs.iter().filter(|r| passes(r, id)).count();
            (passed != 0 && passed != runs.len())
                .then(|| format!("flaky: {id} passed in {passed} of {} gold runs", runs.len()))
        })
        .collect()
}

fn validate_task(
    task: &Task,
    factory: &dyn SandboxFactory,
    sources: &EnvSources,
    opts: &GradeOptions,
    curation: Curation,
) -> Validation {
    let mut v = Validation {
        instance_id: task.instance_id.clone(),
        valid: false,
        problems: gold_size_problems(task, curation),
        before: None,
        gold: None,
        gold_reruns: Vec::new(),
    };
    if !v.problems.is_empty() {
        return v;
    }
    let env = match sources.source_for(task) {
        Ok(env) => env,
        Err(e) => {
            v.problems.push(format!("environment: {e}"));
            return v;
        }
    };
    if task.fail_to_pass.is_empty() {
        v.problems.push("FAIL_TO_PASS is empty".into());
    }
    let before = grade(task, "", factory, &env, opts);
    let gold = grade(task, &task.patch, factory, &env, opts);
    v.problems.extend(before_problems(&before));
    v.problems.extend(gold_problems(&gold));
    if gold.outcome == GradeOutcome::Graded {
        v.gold_reruns = (1..curation.reruns)
            .map(|_| grade(task, &task.patch, factory, &env, opts))
            .collect();
        let runs: Vec<&GradeReport> = std::iter::once(&gold).chain(&v.gold_reruns).collect();
        v.problems.extend(flaky_problems(&runs));
        for rerun in v.gold_reruns.iter().filter(|r| r.outcome.is_unknown()) {
            v.problems
                .push(format!("gold rerun: grading failed: {}", rerun.reason));
        }
    }
    v.valid = v.problems.is_empty();
    (v.before, v.gold) = (Some(before), Some(gold));
    v
}

/// With the test patch alone, every FAIL_TO_PASS test must fail (SWE-bench's definition of
/// FAIL_TO_PASS) and so the empty patch must not resolve.
fn before_problems(before: &GradeReport) -> Vec<String> {
    if before.outcome.is_unknown() {
        return vec![format!("empty patch: {}", before.reason)];
    }
    let passing: Vec<&String> = before
        .fail_to_pass
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| s.is_pass()))
        .map(|(id, _)| id)
        .collect();
    let mut problems: Vec<String> = passing
        .iter()
        .map(|id| format!("FAIL_TO_PASS test {id} already passes with the test patch alone"))
        .collect();
    if before.resolved {
        problems.push("the empty patch resolves the task".into());
    }
    problems
}

fn gold_problems(gold: &GradeReport) -> Vec<String> {
    match &gold.outcome {
        GradeOutcome::InfraError { .. } | GradeOutcome::EnvironmentError { .. } => {
            vec![format!("gold patch: {}", gold.reason)]
        }
        GradeOutcome::Graded if !gold.resolved => {
            vec![format!("gold patch does not resolve: {}", gold.reason)]
        }
        GradeOutcome::Graded => vec![],
    }
}

fn print_table(results: &[Validation]) {
    let width = results
        .iter()
        .map(|v| v.instance_id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<width$}  {:<14}  {:<10}  RESULT",
        "INSTANCE", "F2P BEFORE", "GOLD"
    );
    for v in results {
        let before = v.before.as_ref().map_or("-".to_string(), |r| {
            let failing = r
                .fail_to_pass
                .values()
                .filter(|s| !s.is_some_and(|s| s.is_pass()))
                .count();
            format!("{failing}/{} fail", r.fail_to_pass.len())
        });
        let gold = v
            .gold
            .as_ref()
            .map_or("-", |r| match (&r.outcome, r.resolved) {
                (GradeOutcome::InfraError { .. }, _) => "infra-error",
                (GradeOutcome::EnvironmentError { .. }, _) => "env-error",
                (_, true) => "resolved",
                (_, false) => "unresolved",
            });
        println!(
            "{:<width$}  {before:<14}  {gold:<10}  {}",
            v.instance_id,
            if v.valid { "ok" } else { "INVALID" }
        );
        for problem in &v.problems {
            println!("{:<width$}    - {problem}", "");
        }
    }
}
