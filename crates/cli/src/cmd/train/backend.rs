//! The DAPO loop's [`RolloutBackend`] for `swerl train`: real episodes in sandboxes through
//! `swerl_rollout::SweRollout`, stored under `<out>/episodes/` (an interrupted collection
//! resumes where it stopped), with the policy and the weight sync of a [`Sampler`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use swerl_agent::Limits;
use swerl_env::task::Task;
use swerl_policy::EpisodeSeed;
use swerl_rollout::{
    jobs_for, read_trajectories, DynPolicy, Job, LengthShaping, RunConfig, SweRollout,
    TrajectoryStore, TurnPenalty,
};
use swerl_train::config::DapoConfig;
use swerl_train::dapo_loop::{BackendError, RolloutBackend, Rollouts};
use swerl_train::sampling::SplitMix64;
use swerl_train::Learner;
use swerl_trajectory::Trajectory;

use super::Args;

/// Where episodes get their policy and where the trainer's new weights go: the embedded
/// engine (in-memory copy) or OpenAI-compatible servers (checkpoint + reload call).
pub(super) trait Sampler: Send + Sync {
    /// The policy of one episode.
    fn policy(&self, seed: EpisodeSeed) -> DynPolicy;
    /// Makes every later episode sample from `learner`'s weights; `checkpoint` is the
    /// policy folder the loop has just written (the Hugging Face-layout model, or the PEFT
    /// adapter of a LoRA run).
    fn sync(&mut self, learner: &Learner, checkpoint: &Path) -> Result<(), BackendError>;
    /// Stops what the sampler started (the embedded engine's thread).
    fn shutdown(self: Box<Self>);
}

/// Real episodes with a [`Sampler`]'s policy.
pub(super) struct SweBackend {
    swe: SweRollout,
    pub(super) sampler: Box<dyn Sampler>,
    run_config: RunConfig,
    seed: u64,
    episodes: PathBuf,
}

impl SweBackend {
    pub(super) fn new(
        args: &Args,
        config: &DapoConfig,
        tasks: Vec<Task>,
        sampler: Box<dyn Sampler>,
    ) -> anyhow::Result<Self> {
        let options = args.tasks.swe_options();
        let factory = std::sync::Arc::new(args.tasks.factory()?);
        Ok(SweBackend {
            swe: SweRollout::new(tasks, args.tasks.env_sources(), factory, options),
            sampler,
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
        let sampler = &*self.sampler;
        let make = move |job: &Job, _: &Task| {
            let seed = EpisodeSeed::new(run_seed, job.task_id.clone(), u64::from(job.sample_index));
            Ok(sampler.policy(seed))
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

    /// Stored apart from the iteration's first collection (`iter-N-refill-R.jsonl`), whose
    /// file `collect` returns whole, with seeds of a stream of its own.
    fn refill(
        &mut self,
        iteration: u64,
        round: u32,
        tasks: &[String],
        g: usize,
    ) -> Result<Rollouts, BackendError> {
        let name = format!("iter-{iteration:06}-refill-{round}");
        self.episodes(
            &name,
            (1 << 62) | (u64::from(round) << 40) | iteration,
            tasks,
            g,
        )
    }

    fn sync(&mut self, learner: &Learner, checkpoint: &Path) -> Result<(), BackendError> {
        self.sampler.sync(learner, checkpoint)
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
pub(super) fn split_wall_time(trajectories: Vec<Trajectory>, wall_s: f64) -> Rollouts {
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
    let reward = match config.length_shaping {
        Some(shaping) => shaping,
        None => LengthShaping::TurnPenalty(
            TurnPenalty::new(config.turn_threshold, config.max_turns)
                .context("turn_threshold and max_turns of the config")?,
        ),
    };
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
        reward,
        versions: super::versions(args),
    })
}
