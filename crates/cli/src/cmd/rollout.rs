//! `swerl rollout`: runs G episodes per task in real sandboxes, grades each, and appends
//! one trajectory per episode to `<out>/trajectories.jsonl`. Re-running the same command
//! resumes: completed (task, sample) pairs are skipped and a torn last line is repaired.

use crate::common::{write_json, TaskArgs, ENV_HELP};
use anyhow::{bail, Context};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use swerl_agent::{Limits, PolicyFailure};
use swerl_env::task::Task;
use swerl_model::chat::ChatTokenizer;
use swerl_model::sampling::SamplingParams;
use swerl_policy::{
    server, EmbeddedPolicy, Engine, EpisodeSeed, HttpBackend, HttpConfig, HttpPolicy,
};
use swerl_rollout::{
    jobs_for, scripted_policy, DynPolicy, Job, LengthShaping, Progress, RunConfig, SweRollout,
    TrajectoryStore, TurnPenalty,
};

/// The store inside a run directory.
pub const TRAJECTORIES: &str = "trajectories.jsonl";
/// The resolved configuration inside a run directory.
pub const CONFIG: &str = "config.json";

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    #[command(flatten)]
    pub run: RunArgs,
    /// Episodes per task (the group size G).
    #[arg(long, value_name = "G", default_value_t = 1)]
    pub samples: u32,
}

/// What `swerl rollout` and `swerl eval` share: tasks, policy, limits, output directory.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// Policy: `scripted` (replays each task's demo_commands), `scripted:MODEL_DIR` (the same
    /// in that model's tokenizer and chat template: SFT demonstrations), `embedded:MODEL_DIR` or
    /// `http:URL[,URL...]` (with --model-name).
    #[arg(long, value_name = "SPEC", default_value = "scripted")]
    pub policy: String,
    /// Served model name for `http:` policies.
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Model directory with the tokenizer and chat template of an `http:` policy's model.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Compute device of an `embedded:` policy: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run directory: trajectories.jsonl, config.json (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only tasks of this split (the bundled tasks' `split` field: train or heldout).
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<String>,
    /// Episodes in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// T_max: turns per episode.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub max_turns: usize,
    /// Context limit in tokens (prompt, turns and observations together).
    #[arg(long, value_name = "TOKENS", default_value_t = 65_536)]
    pub max_context: usize,
    /// Sampled tokens per turn at most.
    #[arg(long, value_name = "TOKENS", default_value_t = 4_096)]
    pub max_new_tokens: usize,
    /// Wall-clock limit of one episode, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3_600)]
    pub episode_timeout: u64,
    /// L_thr of the turn penalty: shorter episodes are not penalised.
    #[arg(long, value_name = "TURNS", default_value_t = 10)]
    pub turn_threshold: u32,
    /// Attempts per episode while it ends in an infrastructure failure.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub attempts: u32,
    /// Run seed (each request's seed derives from it, the task, the sample and the turn).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub engine: crate::common::EngineArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let progress = execute(&args.run, args.samples)?;
    Ok(exit_code(&progress))
}

/// Failing episodes are data, not errors: the exit code is 0 unless nothing could run.
pub fn exit_code(p: &Progress) -> ExitCode {
    if p.done > 0 && p.infra_failures == p.done {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `samples` episodes per selected task into `args.out`, resuming what is there.
pub fn execute(args: &RunArgs, samples: u32) -> anyhow::Result<Progress> {
    let tasks = select_tasks(args)?;
    let config = run_config(args)?;
    let policy = PolicySpec::parse(&args.policy, args.model_name.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the run directory {}", args.out.display()))?;
    write_config(args, samples, &tasks, &config)?;
    let ids: Vec<&str> = tasks.iter().map(|t| t.instance_id.as_str()).collect();
    let jobs = jobs_for(&ids, samples);
    let factory = Arc::new(args.tasks.factory()?);
    let options = args.tasks.swe_options();
    let swe = SweRollout::new(tasks, args.tasks.env_sources(), factory, options);
    let path = args.out.join(TRAJECTORIES);
    let (mut store, report) = TrajectoryStore::open(&path)?;
    if let Some((saved, bytes)) = &report.repaired {
        eprintln!(
            "repaired a torn last line of {} ({bytes} bytes kept in {})",
            path.display(),
            saved.display()
        );
    }
    let backend = policy.backend(args)?;
    let bar = Bar::new(jobs.len() - store.completed().len().min(jobs.len()));
    let result = swe.run(&jobs, &config, &*backend.make, &mut store, &|p| {
        bar.update(p)
    });
    bar.finish();
    backend.shutdown();
    let progress = result?;
    print_outcome(&progress, &path);
    Ok(progress)
}

/// Loads the tasks and keeps the requested split.
fn select_tasks(args: &RunArgs) -> anyhow::Result<Vec<Task>> {
    let mut tasks = args.tasks.load()?;
    if let Some(split) = &args.split {
        tasks.retain(|t| t.extra_str("split") == Some(split.as_str()));
        if tasks.is_empty() {
            bail!(
                "no task of split `{split}` in {} (the split comes from each task's `split` field)",
                args.tasks.tasks.display()
            );
        }
    }
    if tasks.is_empty() {
        bail!("no tasks selected from {}", args.tasks.tasks.display());
    }
    Ok(tasks)
}

fn run_config(args: &RunArgs) -> anyhow::Result<RunConfig> {
    let penalty = TurnPenalty::new(args.turn_threshold, args.max_turns as u32)
        .context("--turn-threshold and --max-turns")?;
    let versions = BTreeMap::from([
        ("swerl".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("tasks".to_string(), args.tasks.tasks.display().to_string()),
        ("policy".to_string(), args.policy.clone()),
        args.tasks.sandbox_limits_record(),
    ]);
    Ok(RunConfig {
        concurrency: args.concurrency.max(1),
        max_attempts: args.attempts.max(1),
        limits: Limits {
            max_turns: args.max_turns,
            max_context_tokens: args.max_context,
            max_new_tokens: args.max_new_tokens,
            wall_time: Duration::from_secs(args.episode_timeout),
            ..Limits::default()
        },
        reward: LengthShaping::TurnPenalty(penalty),
        versions,
    })
}

/// Writes `<out>/config.json`. A run directory belongs to one configuration: resuming
/// with a different policy, task file or sample count would mix incomparable episodes.
fn write_config(
    args: &RunArgs,
    samples: u32,
    tasks: &[Task],
    config: &RunConfig,
) -> anyhow::Result<()> {
    let identity = json!({
        "tasks_file": args.tasks.tasks.display().to_string(),
        "task_ids": tasks.iter().map(|t| t.instance_id.as_str()).collect::<Vec<_>>(),
        "samples": samples,
        "policy": args.policy,
        "model_name": args.model_name,
        "seed": args.seed,
        "max_turns": config.limits.max_turns,
        "max_context_tokens": config.limits.max_context_tokens,
        "max_new_tokens": config.limits.max_new_tokens,
        "window_lines": args.tasks.window_lines,
        "reward": config.reward,
    });
    let path = args.out.join(CONFIG);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let old: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        if old.get("run") != Some(&identity) {
            bail!(
                "{} holds a run with another configuration (policy, tasks, samples, limits or seed differ); \
                 resume with the same arguments or choose a new --out",
                path.display()
            );
        }
        return Ok(());
    }
    let full = json!({
        "run": identity,
        "concurrency": config.concurrency,
        "attempts": config.max_attempts,
        "episode_timeout_s": config.limits.wall_time.as_secs_f64(),
        "env_root": args.tasks.env_root.display().to_string(),
        "versions": config.versions,
    });
    write_json(&path, &full)
}

/// Where each episode's policy comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// Replays each task's `demo_commands`.
    Scripted,
    /// Replays each task's `demo_commands` in a model's own tokenizer and chat template
    /// (demonstrations for supervised fine-tuning of that model).
    ScriptedChat(PathBuf),
    /// The in-process model from a Hugging Face model directory.
    Embedded(PathBuf),
    /// OpenAI-compatible servers, by base URL, serving `model`.
    Http { urls: Vec<String>, model: String },
}

/// Makes each episode's policy.
type PolicyFactory = dyn Fn(&Job, &Task) -> Result<DynPolicy, PolicyFailure> + Sync;

impl PolicySpec {
    /// Parses `scripted`, `embedded:DIR` or `http:URL[,URL...]`.
    pub fn parse(spec: &str, model_name: Option<&str>) -> anyhow::Result<PolicySpec> {
        if spec == "scripted" {
            return Ok(PolicySpec::Scripted);
        }
        if let Some(dir) = spec.strip_prefix("scripted:") {
            return Ok(PolicySpec::ScriptedChat(PathBuf::from(dir)));
        }
        if let Some(dir) = spec.strip_prefix("embedded:") {
            return Ok(PolicySpec::Embedded(PathBuf::from(dir)));
        }
        if let Some(urls) = spec.strip_prefix("http:") {
            let urls: Vec<String> = urls
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect();
            let Some(model) = model_name else {
                bail!("--policy http:... needs --model-name (the served model's name)");
            };
            return Ok(PolicySpec::Http {
                urls,
                model: model.to_string(),
            });
        }
        bail!("unknown --policy `{spec}`; use scripted, scripted:MODEL_DIR, embedded:MODEL_DIR or http:URL[,URL...]")
    }

    /// The backend: each episode's policy factory, and the engine to shut down afterwards.
    fn backend(&self, args: &RunArgs) -> anyhow::Result<Backend> {
        let seed = args.seed;
        match self {
            PolicySpec::Scripted => Ok(Backend {
                make: Box::new(|_: &Job, task: &Task| {
                    scripted_policy(task).map(|p| DynPolicy(Box::new(p)))
                }),
                engine: None,
            }),
            PolicySpec::ScriptedChat(dir) => {
                let chat =
                    Arc::new(ChatTokenizer::from_dir(dir).with_context(|| {
                        format!("loading the tokenizer from {}", dir.display())
                    })?);
                let make = move |_: &Job, task: &Task| {
                    let commands = swerl_rollout::demo_commands(task)?;
                    let p =
                        swerl_policy::ScriptedChatPolicy::from_commands(chat.clone(), &commands);
                    Ok(DynPolicy(Box::new(p)))
                };
                Ok(Backend {
                    make: Box::new(make),
                    engine: None,
                })
            }
            PolicySpec::Embedded(dir) => {
                let device = swerl_model::device::resolve_device(&args.device)?;
                let config = args.engine.config(args.concurrency);
                let (engine, state) = server::load_model_dir(dir, device, config, None, seed)
                    .with_context(|| format!("loading the policy model from {}", dir.display()))?;
                let sampling = SamplingParams::rollout_default();
                let make = move |job: &Job, _: &Task| {
                    let seed =
                        EpisodeSeed::new(seed, job.task_id.clone(), u64::from(job.sample_index));
                    let p = EmbeddedPolicy::new(
                        state.engine.clone(),
                        state.chat.clone(),
                        sampling.clone(),
                        seed,
                        state.model_name.clone(),
                    );
                    Ok(DynPolicy(Box::new(p)))
                };
                Ok(Backend {
                    make: Box::new(make),
                    engine: Some(engine),
                })
            }
            PolicySpec::Http { urls, model } => {
                let Some(dir) = &args.tokenizer else {
                    bail!("--policy http:... needs --tokenizer MODEL_DIR (the served model's tokenizer and chat template)");
                };
                let chat =
                    Arc::new(ChatTokenizer::from_dir(dir).with_context(|| {
                        format!("loading the tokenizer from {}", dir.display())
                    })?);
                let mut config = HttpConfig::new(urls.clone(), model.clone());
                config.max_concurrency = args.concurrency.max(1);
                let backend = Arc::new(HttpBackend::new(config)?);
                let make = move |job: &Job, _: &Task| {
                    let seed =
                        EpisodeSeed::new(seed, job.task_id.clone(), u64::from(job.sample_index));
                    Ok(DynPolicy(Box::new(HttpPolicy::new(
                        backend.clone(),
                        chat.clone(),
                        seed,
                    ))))
                };
                Ok(Backend {
                    make: Box::new(make),
                    engine: None,
                })
            }
        }
    }
}

/// A policy backend for one run.
struct Backend {
    make: Box<PolicyFactory>,
    /// The embedded engine, shut down when the run ends.
    engine: Option<Engine>,
}

impl Backend {
    fn shutdown(self) {
        if let Some(engine) = self.engine {
            engine.shutdown();
        }
    }
}

/// The progress bar: episodes done, resolved so far, tokens/s, ETA.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(pending: usize) -> Bar {
        let bar = indicatif::ProgressBar::new(pending as u64);
        let style = indicatif::ProgressStyle::with_template(
            "rollout [{bar:30}] {pos}/{len} {msg} elapsed {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        Bar(bar)
    }

    fn update(&self, p: &Progress) {
        self.0.set_length(p.total as u64);
        self.0.set_position(p.done as u64);
        self.0.set_message(format!(
            "resolved {} | {:.0} tok/s | infra failures {}",
            p.resolved,
            p.tokens_per_s(),
            p.infra_failures
        ));
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn print_outcome(p: &Progress, path: &Path) {
    println!(
        "{} episodes run ({} already stored, skipped): {} resolved, {} infrastructure failures \
         ({} retries), {} sampled tokens in {:.1} s -> {}",
        p.done,
        p.skipped,
        p.resolved,
        p.infra_failures,
        p.retries,
        p.sampled_tokens,
        p.elapsed.as_secs_f64(),
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_specs_parse() {
        assert_eq!(
            PolicySpec::parse("scripted", None).unwrap(),
            PolicySpec::Scripted
        );
        assert_eq!(
            PolicySpec::parse("embedded:/m/qwen", None).unwrap(),
            PolicySpec::Embedded("/m/qwen".into())
        );
        assert_eq!(
            PolicySpec::parse("http:http://a:1,http://b:2", Some("q")).unwrap(),
            PolicySpec::Http {
                urls: vec!["http://a:1".into(), "http://b:2".into()],
                model: "q".into()
            }
        );
        assert!(PolicySpec::parse("http:http://a:1", None)
            .unwrap_err()
            .to_string()
            .contains("--model-name"));
        assert!(PolicySpec::parse("gpt", None)
            .unwrap_err()
            .to_string()
            .contains("unknown --policy"));
    }
}
