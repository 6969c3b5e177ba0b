//! `swerl validate`: checks that tasks are well-formed benchmarks: with the test patch alone
//! every FAIL_TO_PASS test fails (and so the empty patch does not resolve), and the gold
//! patch resolves.

use serde::Serialize;
use std::path::PathBuf;
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
    #[arg(long, value_name = "FILE")]
    pub write_valid: Option<PathBuf>,
}

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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tasks = args.tasks.load()?;
    let factory = args.tasks.factory()?;
    let (sources, opts) = (args.tasks.env_sources(), args.tasks.grade_options());
    let bar = progress_bar(tasks.len(), "validating");
    let results = par_map(&tasks, args.tasks.jobs(), |task| {
        let v = validate_task(task, factory.as_ref(), &sources, &opts);
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
        println!("{} valid tasks written to {}", valid.len(), path.display());
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

fn validate_task(
    task: &Task,
    factory: &dyn SandboxFactory,
    sources: &EnvSources,
    opts: &GradeOptions,
) -> Validation {
    let mut v = Validation {
        instance_id: task.instance_id.clone(),
        valid: false,
        problems: vec![],
        before: None,
        gold: None,
    };
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
    v.valid = v.problems.is_empty();
    (v.before, v.gold) = (Some(before), Some(gold));
    v
}

/// With the test patch alone, every FAIL_TO_PASS test must fail (SWE-bench's definition of
/// FAIL_TO_PASS) and so the empty patch must not resolve.
fn before_problems(before: &GradeReport) -> Vec<String> {
    if let GradeOutcome::InfraError { message } = &before.outcome {
        return vec![format!("empty patch: grading failed: {message}")];
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
        GradeOutcome::InfraError { message } => {
            vec![format!("gold patch: grading failed: {message}")]
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
