//! `swerl bench prefix-cache`: the same evaluation run twice with the embedded engine, once
//! without its prefix cache and once with it, on the same model, tasks and seeds: the wall
//! time of each and how many episodes came out token for token identical.
//!
//! Each run is a real `swerl eval` run (sandboxes, grading, trajectories written); nothing
//! is asserted (no thresholds in tests), the figures are printed and recorded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use swerl_rollout::read_trajectories;

use crate::cmd::rollout::{execute, RunArgs, TRAJECTORIES};

/// The knobs of `swerl bench prefix-cache`.
#[derive(Debug, Clone)]
pub struct PrefixBench {
    pub model: PathBuf,
    pub tasks: PathBuf,
    pub instances: Vec<String>,
    pub runs: u32,
    pub concurrency: usize,
    pub max_turns: usize,
    pub max_new_tokens: usize,
    pub window_lines: usize,
}

/// One timed run.
#[derive(Debug)]
struct Timed {
    cache_mib: usize,
    seconds: f64,
    episodes: usize,
    tokens: HashMap<(String, u32), Vec<Vec<u32>>>,
}

pub fn bench_prefix_cache(b: &PrefixBench) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let (off_args, on_args) = (run_args(b, 0, dir.path())?, run_args(b, 1024, dir.path())?);
    prepare_sources(&off_args)?;
    let off = timed_run(b, &off_args)?;
    let on = timed_run(b, &on_args)?;
    let identical = off
        .tokens
        .iter()
        .filter(|(key, turns)| on.tokens.get(*key) == Some(turns))
        .count();
    Ok(format!(
        "`swerl eval` of `{model}` ({runs} runs of {tasks} tasks, concurrency {c}, at most {t} \
         turns of {n} tokens, window {w} lines; same seeds), run twice in one process: the \
         embedded engine without and with its prefix cache (environment sources prepared \
         before either run is timed).\n\n\
         | prefix cache | episodes | wall s | speed-up |\n|---|---:|---:|---:|\n\
         | off (`--prefix-cache-mib 0`) | {} | {:.1} | 1.00 |\n\
         | on (`--prefix-cache-mib {}`) | {} | {:.1} | {:.2} |\n\n\
         Episodes with the same sampled tokens in every turn in both runs: {identical} of {} \
         (cached keys and values equal recomputed ones up to floating-point rounding, which can \
         flip a sampled token now and then; the trainer recomputes every log-prob anyway).\n",
        off.episodes,
        off.seconds,
        on.cache_mib,
        on.episodes,
        on.seconds,
        off.seconds / on.seconds.max(f64::MIN_POSITIVE),
        off.tokens.len(),
        model = b.model.display(),
        runs = b.runs,
        tasks = if b.instances.is_empty() {
            "all".to_string()
        } else {
            b.instances.len().to_string()
        },
        c = b.concurrency,
        t = b.max_turns,
        n = b.max_new_tokens,
        w = b.window_lines,
    ))
}

/// Prepares every selected task's environment source (the same tasks and sources both runs
/// use), so that neither timed run pays for it.
fn prepare_sources(args: &RunArgs) -> anyhow::Result<()> {
    let sources = args.tasks.env_sources();
    for task in args.tasks.load()? {
        sources.source_for(&task)?;
    }
    Ok(())
}

/// The evaluation's arguments, with the prefix cache at `cache_mib`, into `<dir>/cache-N`.
fn run_args(b: &PrefixBench, cache_mib: usize, dir: &Path) -> anyhow::Result<RunArgs> {
    let out = dir.join(format!("cache-{cache_mib}"));
    let mut argv = vec![
        "--tasks".to_string(),
        b.tasks.display().to_string(),
        "--env-root".into(),
        dir.join("envs").display().to_string(),
        "--policy".into(),
        format!("embedded:{}", b.model.display()),
        "--out".into(),
        out.display().to_string(),
        "--concurrency".into(),
        b.concurrency.to_string(),
        "--max-turns".into(),
        b.max_turns.to_string(),
        "--turn-threshold".into(),
        b.max_turns.saturating_sub(1).max(1).to_string(),
        "--max-new-tokens".into(),
        b.max_new_tokens.to_string(),
        "--window-lines".into(),
        b.window_lines.to_string(),
        "--prefix-cache-mib".into(),
        cache_mib.to_string(),
    ];
    for id in &b.instances {
        argv.extend(["--instance".to_string(), id.clone()]);
    }
    crate::cmd::demo::parse(&argv)
}

fn timed_run(b: &PrefixBench, args: &RunArgs) -> anyhow::Result<Timed> {
    let cache_mib = args.engine.prefix_cache_mib;
    eprintln!("prefix cache {cache_mib} MiB: {} runs", b.runs);
    let started = Instant::now();
    execute(args, b.runs)?;
    let seconds = started.elapsed().as_secs_f64();
    let trajectories = read_trajectories(&args.out.join(TRAJECTORIES))?;
    let tokens = trajectories
        .iter()
        .map(|t| {
            let turns = t
                .turns
                .iter()
                .map(|turn| turn.assistant_ids.clone())
                .collect();
            ((t.task_id.clone(), t.sample_index), turns)
        })
        .collect();
    Ok(Timed {
        cache_mib,
        seconds,
        episodes: trajectories.len(),
        tokens,
    })
}
