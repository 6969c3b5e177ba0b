//! `swerl eval`: k runs per task (run r = sample index r), then Pass@1 (mean over runs +-
//! SEM), Pass@k, the share of episodes ending in submit, mean turns and a per-task table;
//! writes `<dir>/summary.json` and SWE-bench prediction files (`model_patch`).
//! `swerl eval --from DIR` only summarises the trajectories already in DIR.

use super::rollout::{execute, RunArgs, CONFIG, TRAJECTORIES};
use crate::common::write_json;
use anyhow::{bail, Context};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use swerl_rollout::eval_stats::render;
use swerl_rollout::predictions::write_predictions;
use swerl_rollout::{read_trajectories, summarize, EpisodeOutcome, EvalSummary};
use swerl_trajectory::Trajectory;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "To run an evaluation first: swerl eval --tasks FILE --runs K --policy SPEC \
--out DIR [any option of `swerl rollout` except --samples]; `swerl eval --tasks x --help` lists them."
)]
pub struct Args {
    /// Summarise the trajectories of an existing run directory instead of running.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Without --from: the run's options (`--tasks FILE --runs K --policy SPEC --out DIR ...`).
    // Parsed separately (EvalRun): clap cannot make a flattened group with required options
    // optional as a whole, and --from needs none of them.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN OPTIONS"
    )]
    pub run: Vec<String>,
}

/// The options of an evaluation that runs its episodes.
#[derive(Debug, clap::Parser)]
#[command(name = "swerl eval", max_term_width = 100)]
struct EvalRun {
    #[command(flatten)]
    run: RunArgs,
    /// Runs per task (k); Pass@k is reported for this k.
    #[arg(long, value_name = "K", default_value_t = 1)]
    runs: u32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (dir, k) = match (&args.from, args.run.is_empty()) {
        (Some(_), false) => bail!("--from summarises an existing run; give either --from DIR or the run's options, not both"),
        (Some(dir), true) => (dir.clone(), None),
        (None, true) => bail!("give --tasks FILE --runs K --policy SPEC --out DIR to run an evaluation, or --from DIR"),
        (None, false) => {
            let argv = std::iter::once("swerl eval".to_string()).chain(args.run);
            let eval = <EvalRun as clap::Parser>::try_parse_from(argv).unwrap_or_else(|e| e.exit());
            execute(&eval.run, eval.runs)?;
            (eval.run.out.clone(), Some(eval.runs as usize))
        }
    };
    summarise(&dir, k)?;
    Ok(ExitCode::SUCCESS)
}

/// Summarises `<dir>/trajectories.jsonl`; `k` defaults to the number of runs found.
fn summarise(dir: &Path, k: Option<usize>) -> anyhow::Result<EvalSummary> {
    let path = dir.join(TRAJECTORIES);
    if !path.is_file() {
        bail!(
            "{} does not exist; run `swerl eval --tasks ... --out {}` first",
            path.display(),
            dir.display()
        );
    }
    let trajectories = read_trajectories(&path)?;
    if trajectories.is_empty() {
        bail!("{} holds no complete trajectory", path.display());
    }
    let runs: BTreeSet<u32> = trajectories.iter().map(|t| t.sample_index).collect();
    let outcomes: Vec<EpisodeOutcome> = trajectories.iter().map(EpisodeOutcome::from).collect();
    let summary = summarize(&outcomes, k.unwrap_or(runs.len()).max(1));
    print!("{}", render(&summary));
    write_json(&dir.join("summary.json"), &summary)?;
    export_predictions(dir, &trajectories, &runs)?;
    Ok(summary)
}

/// `predictions.jsonl` for run 0 and, with several runs, `predictions-run<r>.jsonl` for each.
fn export_predictions(
    dir: &Path,
    trajectories: &[Trajectory],
    runs: &BTreeSet<u32>,
) -> anyhow::Result<()> {
    let model = model_name(dir);
    for &run in runs {
        let name = if run == 0 {
            "predictions.jsonl".to_string()
        } else {
            format!("predictions-run{run}.jsonl")
        };
        let path = dir.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let report = write_predictions(trajectories, run, &model, &mut out)
            .and_then(|r| std::io::Write::flush(&mut out).map(|()| r))
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{}: {} predictions ({} infrastructure failures left out)",
            path.display(),
            report.written,
            report.skipped_infra
        );
    }
    Ok(())
}

/// The name in `model_name_or_path`: the run's policy from its config.json, else "swerl".
fn model_name(dir: &Path) -> String {
    let config: Option<serde_json::Value> = std::fs::read_to_string(dir.join(CONFIG))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let run = config.as_ref().and_then(|c| c.get("run"));
    let named = run
        .and_then(|r| r.get("model_name"))
        .and_then(|v| v.as_str());
    let policy = run.and_then(|r| r.get("policy")).and_then(|v| v.as_str());
    format!("swerl-{}", named.or(policy).unwrap_or("unknown"))
}
