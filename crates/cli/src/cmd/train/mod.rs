//! `swerl train`: multi-turn DAPO (METHOD.md section 6) with the embedded policy engine.
//! The DAPO hyper-parameters come from `--config` (JSON; defaults are the paper's stage 1,
//! `"stage": 2` for stage 2); tasks, model, device and rollout limits from the flags.
//! Each iteration's episodes run in real sandboxes through `swerl_rollout::SweRollout` and
//! are stored under `<out>/episodes/`, so an interrupted collection resumes where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use swerl_agent::Limits;
use swerl_env::task::Task;
use swerl_model::sampling::SamplingParams;
use swerl_policy::server::{self, ServerState};
use swerl_policy::{EmbeddedPolicy, Engine, EngineConfig, EpisodeSeed};
use swerl_rollout::{
    jobs_for, read_trajectories, DynPolicy, Job, LengthShaping, RunConfig, SweOptions, SweRollout,
    TrajectoryStore, TurnPenalty,
};
use swerl_train::config::DapoConfig;
use swerl_train::dapo_loop::{BackendError, DapoRun, RolloutBackend, Rollouts};
use swerl_train::metrics_log::MetricsRow;
use swerl_train::sampling::{filter_pool, SplitMix64};
use swerl_train::Learner;
use swerl_trajectory::Trajectory;

use super::validate::{TaskArgs, ENV_HELP};

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    /// DAPO config (JSON, unknown fields rejected); `{}` is the paper's stage 1.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Continue from the newest complete checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// The initial policy (e.g. the RFT output): a Hugging Face model directory.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Run directory: config.json, metrics.jsonl, plots/, checkpoints/, rollouts/, episodes/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    tasks: TaskArgs,
    /// Only tasks of this split (the tasks' `split` field).
    #[arg(long, value_name = "SPLIT")]
    split: Option<String>,
    /// Stage-1 trajectories (file or directory): drop tasks solved in >= 2/3 of their graded
    /// attempts and tasks never solved before training (the pool filter between stages).
    #[arg(long, value_name = "DIR_OR_FILE")]
    pool_from: Option<PathBuf>,
    /// Compute device of trainer and engine: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Episodes in flight at once (also the engine's batch size).
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Sampled tokens per turn at most.
    #[arg(long, value_name = "TOKENS", default_value_t = 4_096)]
    max_new_tokens: usize,
    /// Wall-clock limit of one episode, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3_600)]
    episode_timeout: u64,
    /// Attempts per episode while it ends in an infrastructure failure.
    #[arg(long, value_name = "N", default_value_t = 3)]
    attempts: u32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = read_config(&args.config)?;
    let tasks = select_tasks(&args)?;
    let pool = training_pool(&args, &tasks)?;
    let learner = super::rft::load_learner(&args.model, &args.device, None)?;
    let mut backend = SweBackend::start(&args, &config, tasks)?;
    let mut run = DapoRun::new(config, learner, &args.out, pool)?;
    let result = run.run(&mut backend, args.resume, &versions(&args));
    backend.engine.shutdown();
    let rows = result?;
    print_summary(&rows, &args.out);
    Ok(ExitCode::SUCCESS)
}

/// Parses and validates the config once, before any model is loaded.
fn read_config(path: &Path) -> anyhow::Result<DapoConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(DapoConfig::from_json_str(
        &text,
        &path.display().to_string(),
    )?)
}

fn select_tasks(args: &Args) -> anyhow::Result<Vec<Task>> {
    let mut tasks = args.tasks.load()?;
    if let Some(split) = &args.split {
        tasks.retain(|t| t.extra_str("split") == Some(split.as_str()));
    }
    if tasks.is_empty() {
        bail!(
            "no training tasks selected from {}",
            args.tasks.tasks.display()
        );
    }
    Ok(tasks)
}

/// The task ids to sample from, after the optional pool filter (reported on stdout).
fn training_pool(args: &Args, tasks: &[Task]) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = tasks.iter().map(|t| t.instance_id.clone()).collect();
    let Some(from) = &args.pool_from else {
        return Ok(ids);
    };
    let trajs = super::rft::read_all(from)?;
    let f = filter_pool(&ids, &trajs, 2.0 / 3.0);
    println!(
        "pool filter from {}: kept {} (of which {} never observed), dropped {} solved in >= 2/3 of attempts, {} never solved",
        from.display(),
        f.kept.len(),
        f.unobserved.len(),
        f.dropped_easy.len(),
        f.dropped_never_solved.len()
    );
    if f.kept.is_empty() {
        bail!("the pool filter left no task to train on");
    }
    Ok(f.kept)
}

fn versions(args: &Args) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("swerl".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "git".into(),
            option_env!("SWERL_GIT_DESCRIBE")
                .unwrap_or("unknown")
                .into(),
        ),
        ("libtorch".into(), libtorch_version()),
        ("initial_model".into(), args.model.display().to_string()),
        ("tasks".into(), args.tasks.tasks.display().to_string()),
    ])
}

/// The libtorch build this binary was linked against: its `build-version` file (C++
/// distribution) or `__version__` in `version.py` (a PyTorch wheel), else its path.
fn libtorch_version() -> String {
    let Some(root) = option_env!("LIBTORCH") else {
        return "unknown".into();
    };
    let root = Path::new(root);
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return v.trim().to_string();
    }
    let py = std::fs::read_to_string(root.join("version.py")).unwrap_or_default();
    py.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map_or_else(
            || root.display().to_string(),
            |v| v.trim_matches(['\'', '"']).to_string(),
        )
}

/// Real episodes with the embedded engine; weights sync in memory.
struct SweBackend {
    swe: SweRollout,
    engine: Engine,
    state: Arc<ServerState>,
    run_config: RunConfig,
    seed: u64,
    episodes: PathBuf,
}

impl SweBackend {
    fn start(args: &Args, config: &DapoConfig, tasks: Vec<Task>) -> anyhow::Result<Self> {
        let device = swerl_model::device::resolve_device(&args.device)?;
        let engine_config = EngineConfig {
            max_batch: args.concurrency.max(1),
            ..EngineConfig::default()
        };
        let (engine, state) =
            server::load_model_dir(&args.model, device, engine_config, None, config.seed)
                .with_context(|| format!("loading the policy from {}", args.model.display()))?;
        let options = SweOptions {
            grade: args.tasks.grade_options(),
            ..SweOptions::default()
        };
        let factory = Arc::new(args.tasks.factory()?);
        Ok(SweBackend {
            swe: SweRollout::new(tasks, args.tasks.env_sources(), factory, options),
            engine,
            state,
            run_config: run_config(args, config)?,
            seed: config.seed,
            episodes: args.out.join("episodes"),
        })
    }

    /// Runs `g` episodes per task into `<episodes>/<name>.jsonl` (resuming what is there).
    fn episodes(
        &self,
        name: &str,
        stream: u64,
        tasks: &[String],
        g: usize,
    ) -> Result<Rollouts, BackendError> {
        std::fs::create_dir_all(&self.episodes)?;
        let path = self.episodes.join(format!("{name}.jsonl"));
        let (mut store, _) = TrajectoryStore::open(&path)?;
        let jobs = jobs_for(tasks, g as u32);
        let run_seed = SplitMix64::new(self.seed, stream).next_u64();
        let (state, sampling) = (self.state.clone(), SamplingParams::rollout_default());
        let make = move |job: &Job, _: &Task| {
            let seed = EpisodeSeed::new(run_seed, job.task_id.clone(), u64::from(job.sample_index));
            let p = EmbeddedPolicy::new(
                state.engine.clone(),
                state.chat.clone(),
                sampling.clone(),
                seed,
                state.model_name.clone(),
            );
            Ok(DynPolicy(Box::new(p)))
        };
        let started = Instant::now();
        self.swe
            .run(&jobs, &self.run_config, &make, &mut store, &|_| {})?;
        let trajectories = read_trajectories(&path)?;
        Ok(split_wall_time(
            trajectories,
            started.elapsed().as_secs_f64(),
        ))
    }
}

impl RolloutBackend for SweBackend {
    fn collect(
        &mut self,
        iteration: u64,
        tasks: &[String],
        g: usize,
    ) -> Result<Rollouts, BackendError> {
        self.episodes(&format!("iter-{iteration:06}"), iteration, tasks, g)
    }

    fn sync(&mut self, learner: &Learner, _checkpoint: &Path) -> Result<(), BackendError> {
        let tensors = learner.model.vs.variables().into_iter().collect();
        Ok(self.state.engine.load_named_tensors(tensors)?)
    }

    fn evaluate(&mut self, iteration: u64, tasks: &[String]) -> Result<Rollouts, BackendError> {
        self.episodes(
            &format!("eval-{iteration:06}"),
            (1 << 63) | iteration,
            tasks,
            1,
        )
    }
}

/// Splits the collection's wall time into generation / environment / grading in proportion
/// to the episodes' own (concurrent, hence overlapping) timings.
fn split_wall_time(trajectories: Vec<Trajectory>, wall_s: f64) -> Rollouts {
    let turns = || trajectories.iter().flat_map(|t| &t.turns);
    let generation: f64 = turns().map(|t| t.timings.generate_s).sum();
    let env: f64 = turns().map(|t| t.timings.env_s).sum();
    let grading: f64 = trajectories.iter().map(|t| t.timings.grade_s).sum();
    let total = (generation + env + grading).max(f64::MIN_POSITIVE);
    // `+ 0.0`: an empty f64 sum is -0.0, which would print as a negative time.
    Rollouts {
        generation_s: wall_s * generation / total + 0.0,
        env_s: wall_s * env / total + 0.0,
        grading_s: wall_s * grading / total + 0.0,
        trajectories,
    }
}

fn run_config(args: &Args, config: &DapoConfig) -> anyhow::Result<RunConfig> {
    let penalty = TurnPenalty::new(config.turn_threshold, config.max_turns)
        .context("turn_threshold and max_turns of the config")?;
    Ok(RunConfig {
        concurrency: args.concurrency.max(1),
        max_attempts: args.attempts.max(1),
        limits: Limits {
            max_turns: config.max_turns as usize,
            max_context_tokens: config.max_context,
            max_new_tokens: args.max_new_tokens,
            wall_time: Duration::from_secs(args.episode_timeout),
            ..Limits::default()
        },
        reward: LengthShaping::TurnPenalty(penalty),
        versions: versions(args),
    })
}

fn print_summary(rows: &[MetricsRow], out: &Path) {
    for r in rows {
        let v = |k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
        println!(
            "iteration {}: reward {:.3} resolved {:.3} trained {} dropped zero-adv {} infra {} ({:.0} s)",
            r.step,
            v("reward/mean"),
            v("resolved_rate"),
            v("samples/trained"),
            v("dropped/zero_adv"),
            v("dropped/infra"),
            v("time/iteration")
        );
    }
    println!("metrics, plots and checkpoints in {}", out.display());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    /// A random tiny Qwen2 whose vocabulary is exactly the fixture tokenizer's, with room for
    /// the bundled tasks' prompts.
    fn tiny_policy_dir(dir: &Path) -> PathBuf {
        let tok = fixture("../model/tests/fixtures/tokenizer");
        let chat = swerl_model::chat::ChatTokenizer::from_dir(&tok).unwrap();
        let config = swerl_model::config::Qwen2Config {
            vocab_size: chat.tokenizer().vocab_size(),
            max_position_embeddings: 8192,
            ..swerl_model::config::Qwen2Config::tiny()
        };
        tch::manual_seed(3);
        let model = swerl_model::qwen2::Qwen2::new(config, tch::Device::Cpu, tch::Kind::Float);
        let out = dir.join("model");
        swerl_model::weights::save_model(&model, &out, 1 << 30).unwrap();
        swerl_train::rft::copy_tokenizer_files(&tok, &out).unwrap();
        out
    }

    fn train(dir: &Path, model: &Path, iterations: u64, resume: bool) -> anyhow::Result<ExitCode> {
        let config = dir.join(format!("config-{iterations}.json"));
        let json = serde_json::json!({
            "iterations": iterations, "problems_per_iteration": 1, "group_size": 2,
            "batch_trajectories": 4, "max_context": 4096, "max_turns": 2, "turn_threshold": 1,
            "micro_batch_tokens": 8192, "eval_every": 2, "eval_tasks": 1
        });
        std::fs::write(&config, json.to_string()).unwrap();
        let tasks = fixture("../../tasks/bundled/tasks.jsonl");
        let (out, envs) = (dir.join("run"), dir.join("envs"));
        let mut argv = vec![
            "train",
            "--config",
            config.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--tasks",
            tasks.to_str().unwrap(),
            "--env-root",
            envs.to_str().unwrap(),
            "--instance",
            "swerl-bundled__csvsniff-1",
            "--max-new-tokens",
            "16",
            "--concurrency",
            "2",
        ];
        if resume {
            argv.push("--resume");
        }
        run(Cli::parse_from(argv).args)
    }

    /// Real episodes in sandboxes through the whole loop, then a resume; where the local
    /// sandbox cannot start (it needs root and bubblewrap) the test says so and returns.
    #[test]
    fn train_runs_real_episodes_and_resumes() {
        if let Err(e) = swerl_sandbox::LocalFactory::new() {
            eprintln!("SKIPPED: local sandbox unavailable here: {e}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_policy_dir(dir.path());
        train(dir.path(), &model, 1, false).unwrap();
        train(dir.path(), &model, 2, true).unwrap();
        let run = dir.path().join("run");
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["rollouts"], 2.0);
        assert!(rows[1].get("eval/reward_mean").is_some(), "{}", rows[1]);
        assert!(run
            .join("checkpoints/iter-000002/model/config.json")
            .is_file());
        assert!(run.join("episodes/iter-000001.jsonl").is_file());
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(info["config"]["group_size"], 2);
        assert!(info["versions"]["swerl"].is_string());
    }

    #[test]
    fn bad_config_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"clip": {"eps_low": 2.0, "eps_high": 0.3}}"#).unwrap();
        let err = read_config(&path).unwrap_err().to_string();
        assert!(
            err.contains("clip.eps_low") && err.contains("c.json"),
            "{err}"
        );
    }

    #[test]
    fn wall_time_is_split_in_proportion() {
        let r = split_wall_time(Vec::new(), 10.0);
        assert_eq!((r.generation_s, r.env_s, r.grading_s), (0.0, 0.0, 0.0));
        assert!(r.generation_s.is_sign_positive());
    }
}
