//! `swerl grade`: grades SWE-bench prediction files (`instance_id`, `model_name_or_path`,
//! `model_patch`; JSONL or a JSON array) in parallel, each in a fresh sandbox.

use crate::common::{par_map, progress_bar, write_json, TaskArgs, ENV_HELP};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use swerl_env::grade::grade;
use swerl_trajectory::grade::{GradeOutcome, GradeReport};

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// Predictions: JSONL (or a JSON array) of {instance_id, model_name_or_path, model_patch}.
    #[arg(long, value_name = "PREDS")]
    pub predictions: PathBuf,
    /// Where to write the per-task reports (JSON).
    #[arg(long, value_name = "REPORT", default_value = "runs/grade-report.json")]
    pub out: PathBuf,
}

/// One SWE-bench prediction.
#[derive(Debug, Clone, Deserialize)]
struct Prediction {
    instance_id: String,
    #[serde(default)]
    model_name_or_path: Option<String>,
    /// `null` means no patch (graded as the empty patch).
    #[serde(default)]
    model_patch: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    predictions: String,
    total: usize,
    resolved: usize,
    infra_errors: usize,
    /// Of the infrastructure errors, those where the environment decided the test run
    /// (`environment error:` reasons): fix the environment, then grade them again.
    environment_errors: usize,
    reports: Vec<PredictionReport>,
}

#[derive(Debug, Serialize)]
struct PredictionReport {
    model_name_or_path: Option<String>,
    #[serde(flatten)]
    report: GradeReport,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tasks = args.tasks.load()?;
    let by_id: HashMap<&str, &swerl_env::task::Task> =
        tasks.iter().map(|t| (t.instance_id.as_str(), t)).collect();
    let predictions = read_predictions(&args.predictions)?;
    for p in &predictions {
        if !by_id.contains_key(p.instance_id.as_str()) {
            bail!(
                "prediction for {} has no task in {}",
                p.instance_id,
                args.tasks.tasks.display()
            );
        }
    }
    let factory = args.tasks.factory()?;
    let (sources, mut opts) = (args.tasks.env_sources(), args.tasks.grade_options());
    opts.keep_log_bytes = super::validate::REPORT_LOG_BYTES;
    let bar = progress_bar(predictions.len(), "grading");
    let reports = par_map(&predictions, args.tasks.jobs(), |p| {
        let task = by_id[p.instance_id.as_str()];
        let patch = p.model_patch.as_deref().unwrap_or("");
        let report = match sources.source_for(task) {
            Ok(env) => grade(task, patch, factory.as_ref(), &env, &opts),
            Err(e) => infra_report(task, e.to_string()),
        };
        bar.inc(1);
        PredictionReport {
            model_name_or_path: p.model_name_or_path.clone(),
            report,
        }
    });
    bar.finish_and_clear();
    let summary = summarise(&args.predictions, reports);
    write_json(&args.out, &summary)?;
    print_summary(&summary, &args.out);
    Ok(if summary.infra_errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Predictions from JSONL (one object per line) or a JSON array; each instance at most once.
fn read_predictions(path: &Path) -> anyhow::Result<Vec<Prediction>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading predictions {}", path.display()))?;
    let predictions: Vec<Prediction> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: expected a JSON array of predictions", path.display()))?
    } else {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        lines
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| {
                    format!(
                        "{} line {}: expected {{instance_id, model_name_or_path, model_patch}}",
                        path.display(),
                        i + 1
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut seen = std::collections::HashSet::new();
    for p in &predictions {
        if !seen.insert(p.instance_id.as_str()) {
            bail!(
                "{}: more than one prediction for {}",
                path.display(),
                p.instance_id
            );
        }
    }
    Ok(predictions)
}

/// A report for a task whose environment could not be prepared: the grade is unknown.
fn infra_report(task: &swerl_env::task::Task, message: String) -> GradeReport {
    let none = |ids: &[String]| ids.iter().map(|id| (id.clone(), None)).collect();
    GradeReport {
        instance_id: task.instance_id.clone(),
        outcome: GradeOutcome::InfraError {
            message: message.clone(),
        },
        resolved: false,
        reason: format!("infrastructure error: {message}"),
        patch_applied: false,
        fail_to_pass: none(&task.fail_to_pass),
        pass_to_pass: none(&task.pass_to_pass),
        timings: Default::default(),
        log_tail: String::new(),
        test_log: String::new(),
        statuses: Default::default(),
    }
}

fn summarise(predictions: &Path, reports: Vec<PredictionReport>) -> Summary {
    let resolved = reports.iter().filter(|r| r.report.resolved).count();
    let infra_errors = reports
        .iter()
        .filter(|r| r.report.outcome.is_unknown())
        .count();
    let environment_errors = reports
        .iter()
        .filter(|r| matches!(r.report.outcome, GradeOutcome::EnvironmentError { .. }))
        .count();
    Summary {
        predictions: predictions.display().to_string(),
        total: reports.len(),
        resolved,
        infra_errors,
        environment_errors,
        reports,
    }
}

fn print_summary(summary: &Summary, out: &Path) {
    for r in summary.reports.iter().filter(|r| !r.report.resolved) {
        println!("{}: {}", r.report.instance_id, r.report.reason);
    }
    println!(
        "resolved {}/{} ({} infrastructure error(s), {} of them environment errors, not counted as graded); report: {}",
        summary.resolved,
        summary.total,
        summary.infra_errors,
        summary.environment_errors,
        out.display()
    );
}
