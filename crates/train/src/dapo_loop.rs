//! The synchronous, on-policy multi-turn DAPO loop (docs/method.md section 6).
//!
//! One iteration, as named steps:
//! 1. [`choose_problems`]: P problems, a pure function of `(seed, iteration)`;
//! 2. `collect`: G rollouts each through the [`RolloutBackend`] (episodes, grading, reward);
//!    with DAPO's dynamic sampling, [`DapoRun::dynamic_sampling`] keeps the groups with
//!    0 < #resolved < G and refills from the rest of the pool;
//! 3. [`prepare_sequences`]: advantages per task group, zero-advantage and infrastructure
//!    samples dropped, truncation to the context limit counted;
//! 4. [`train_epoch`]: old log-probs recomputed by the trainer, then one epoch of mini-batch
//!    clipped policy steps;
//! 5. checkpoint (atomic, with optimizer state and data cursor), then `sync` the weights into
//!    the policy backend;
//! 6. every `eval_every` iterations, evaluate on the fixed task subset;
//! 7. one metrics row (JSONL + a plot per metric).
//!
//! The loop never runs an episode itself: the backend is a trait object, so tests drive it
//! with a fake environment and the CLI with real sandboxes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use swerl_rl::filter::{self, SampleFilter};
use swerl_rl::loss::PolicyLossConfig;
use swerl_rl::metrics as m;
use swerl_trajectory::Trajectory;

use crate::batch::{truncate, Sequence, Truncation};
use crate::checkpoint::{self, CheckpointError, TrainState};
use crate::config::DapoConfig;
use crate::dapo::{policy_step, recompute_logprobs, PolicyStepStats};
use crate::dapo_metrics::{iteration_row, TrainSummary};
use crate::data::{dapo_sequences, Selection};
use crate::learner::Learner;
use crate::metrics_log::{MetricsLog, MetricsRow};
use crate::sampling::{sample, SplitMix64};
use crate::sft::StepConfig;

/// Errors of a backend (rollouts, weight sync), boxed: the loop only reports them.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// The trajectories of one collection and where its wall time went.
#[derive(Debug, Clone, Default)]
pub struct Rollouts {
    pub trajectories: Vec<Trajectory>,
    /// Seconds spent sampling tokens.
    pub generation_s: f64,
    /// Seconds spent in the environment (sandbox setup and tool calls).
    pub env_s: f64,
    /// Seconds spent grading final patches.
    pub grading_s: f64,
}

/// Where trajectories come from and where new weights go.
pub trait RolloutBackend {
    /// `group_size` rollouts of every task in `tasks` with the current policy. Seeds must be
    /// derived from `iteration` (and task, sample index) for a reproducible run.
    fn collect(
        &mut self,
        iteration: u64,
        tasks: &[String],
        group_size: usize,
    ) -> Result<Rollouts, BackendError>;

    /// Makes the policy use `learner`'s weights: copied in memory (embedded engine), or
    /// reloaded from `checkpoint` (the policy folder just written: the Hugging Face-layout
    /// model, or the PEFT adapter when only an adapter trains).
    fn sync(&mut self, learner: &Learner, checkpoint: &Path) -> Result<(), BackendError>;

    /// One rollout per task for the periodic evaluation; by default a collection with G = 1.
    fn evaluate(&mut self, iteration: u64, tasks: &[String]) -> Result<Rollouts, BackendError> {
        self.collect(iteration, tasks, 1)
    }

    /// More rollouts within `iteration` for dynamic sampling (refill `round`, from 1), of
    /// other tasks than `collect` got. Returns only the new trajectories; a backend that
    /// stores episodes per iteration must keep them apart (the default just collects).
    fn refill(
        &mut self,
        iteration: u64,
        _round: u32,
        tasks: &[String],
        group_size: usize,
    ) -> Result<Rollouts, BackendError> {
        self.collect(iteration, tasks, group_size)
    }
}

impl Rollouts {
    /// Adds `more`'s trajectories and times (a refill of the same iteration).
    fn extend(&mut self, more: Rollouts) {
        self.trajectories.extend(more.trajectories);
        self.generation_s += more.generation_s;
        self.env_s += more.env_s;
        self.grading_s += more.grading_s;
    }
}

/// What dynamic sampling did in one iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refill {
    /// Problems sampled beyond P.
    pub problems: usize,
    /// Samples of the groups dropped as all resolved or all unresolved.
    pub dropped_samples: usize,
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("iteration {iteration}: {step} failed: {error}")]
    Backend {
        iteration: u64,
        step: &'static str,
        error: BackendError,
    },
    #[error("iteration {iteration}: {error}")]
    Advantage {
        iteration: u64,
        error: swerl_rl::advantage::AdvantageError,
    },
    #[error("iteration {iteration}: policy loss: {error}")]
    Loss {
        iteration: u64,
        error: swerl_rl::loss::LossError,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("run directory {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("task pool is empty: give the run at least one training task")]
    EmptyPool,
    #[error("--resume: no complete checkpoint under {0}; start the run without --resume")]
    NothingToResume(String),
}

/// A DAPO run in `run_dir`: the config, the learner, the task pool and its fixed eval subset.
#[derive(Debug)]
pub struct DapoRun {
    pub config: DapoConfig,
    pub learner: Learner,
    pub run_dir: PathBuf,
    pub pool: Vec<String>,
    pub eval_tasks: Vec<String>,
    /// Files copied into every checkpoint's `model/` (the initial model's tokenizer files).
    pub model_files: Vec<PathBuf>,
}

/// Stream ids of the run's independent random draws (see [`crate::sampling`]).
const EVAL_SUBSET_STREAM: u64 = u64::MAX;
const SHUFFLE_STREAM_BASE: u64 = 1 << 40;
const REFILL_STREAM_BASE: u64 = 1 << 41;

impl DapoRun {
    /// A run over `pool`; the evaluation subset is a seeded draw of `config.eval_tasks` tasks.
    pub fn new(
        config: DapoConfig,
        learner: Learner,
        run_dir: &Path,
        pool: Vec<String>,
    ) -> Result<Self, LoopError> {
        if pool.is_empty() {
            return Err(LoopError::EmptyPool);
        }
        let eval_tasks = sample(&pool, config.eval_tasks, config.seed, EVAL_SUBSET_STREAM);
        Ok(DapoRun {
            config,
            learner,
            run_dir: run_dir.to_path_buf(),
            pool,
            eval_tasks,
            model_files: Vec::new(),
        })
    }

    fn checkpoints(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
    }

    /// Runs iterations up to `config.iterations`; with `resume`, first restores the newest
    /// complete checkpoint and syncs its weights into the backend. `versions` go to
    /// `config.json` with the resolved config. Returns the metrics rows of this invocation.
    pub fn run(
        &mut self,
        backend: &mut dyn RolloutBackend,
        resume: bool,
        versions: &BTreeMap<String, String>,
    ) -> Result<Vec<MetricsRow>, LoopError> {
        self.write_run_info(versions)?;
        let start = if resume { self.restore(backend)? } else { 0 };
        let mut log = MetricsLog::open(&self.run_dir, start).map_err(io(&self.run_dir))?;
        let mut rows = Vec::new();
        for iteration in start..self.config.iterations {
            let row = self.iteration(backend, iteration)?;
            log_progress(&row);
            log.push(row.clone()).map_err(io(&self.run_dir))?;
            rows.push(row);
        }
        Ok(rows)
    }

    /// One iteration (module doc, steps 1-7).
    pub fn iteration(
        &mut self,
        backend: &mut dyn RolloutBackend,
        iteration: u64,
    ) -> Result<MetricsRow, LoopError> {
        let started = Instant::now();
        let tasks = choose_problems(&self.pool, &self.config, iteration);
        let mut rollouts = backend
            .collect(iteration, &tasks, self.config.group_size)
            .map_err(backend_err(iteration, "collect"))?;
        let (kept, refill) = match self.config.sample_filter {
            SampleFilter::ZeroAdvantage => (None, None),
            SampleFilter::DynamicSampling => {
                let (kept, refill) =
                    self.dynamic_sampling(backend, iteration, &tasks, &mut rollouts)?;
                (Some(kept), Some(refill))
            }
        };
        self.save_rollouts(iteration, &rollouts.trajectories)?;
        let training = kept.as_deref().unwrap_or(&rollouts.trajectories);
        let (seqs, selection, truncation) = prepare_sequences(training, &self.config, iteration)?;
        let train_started = Instant::now();
        let mut train = train_epoch(&mut self.learner, &seqs, &self.config)
            .map_err(|error| LoopError::Loss { iteration, error })?;
        train.seconds = train_started.elapsed().as_secs_f64();
        let sync_started = Instant::now();
        let ckpt = self.save_checkpoint(iteration)?;
        backend
            .sync(&self.learner, &checkpoint::policy_dir(&ckpt, &self.learner))
            .map_err(backend_err(iteration, "weight sync"))?;
        let sync_s = sync_started.elapsed().as_secs_f64();
        let eval = self.maybe_evaluate(backend, iteration)?;
        let mut row = iteration_row(iteration, &rollouts, &selection, &truncation, &train);
        if let Some(refill) = refill {
            row.set(m::REFILL_PROBLEMS, refill.problems as f64);
            row.set(m::DROPPED_GROUP_FILTER, refill.dropped_samples as f64);
        }
        row.set(swerl_rl::metrics::TIME_SYNC, sync_s);
        row.set(
            swerl_rl::metrics::TIME_ITERATION,
            started.elapsed().as_secs_f64(),
        );
        for (name, value) in eval {
            row.set(&name, value);
        }
        Ok(row)
    }

    /// DAPO's dynamic sampling: keeps the groups of `rollouts` with 0 < #resolved < G (a
    /// group all resolved or all unresolved teaches nothing) and, while fewer than P remain,
    /// collects more problems from the rest of the pool, at most `refill_rounds` times, each
    /// asking for `groups_to_request(needed, observed keep rate, refill_max_factor)`.
    /// Every collected trajectory stays in `rollouts` (the record and the reward metrics);
    /// the returned trajectories are those of the first P kept groups.
    pub fn dynamic_sampling(
        &self,
        backend: &mut dyn RolloutBackend,
        iteration: u64,
        first: &[String],
        rollouts: &mut Rollouts,
    ) -> Result<(Vec<Trajectory>, Refill), LoopError> {
        let target = self.config.problems_per_iteration;
        let mut chosen: Vec<String> = first.to_vec();
        let mut refill = Refill::default();
        let mut kept = keep_informative(&rollouts.trajectories);
        for round in 1..=self.config.refill_rounds {
            let needed = target.saturating_sub(kept.len());
            let rest: Vec<String> = self
                .pool
                .iter()
                .filter(|t| !chosen.contains(t))
                .cloned()
                .collect();
            if needed == 0 || rest.is_empty() {
                break;
            }
            let keep_rate = kept.len() as f64 / chosen.len().max(1) as f64;
            let count = filter::groups_to_request(needed, keep_rate, self.config.refill_max_factor);
            let stream = REFILL_STREAM_BASE + iteration * 64 + u64::from(round);
            let more = sample(&rest, count, self.config.seed, stream);
            let got = backend
                .refill(iteration, round, &more, self.config.group_size)
                .map_err(backend_err(iteration, "refill"))?;
            refill.problems += more.len();
            chosen.extend(more);
            rollouts.extend(got);
            kept = keep_informative(&rollouts.trajectories);
        }
        let graded = rollouts
            .trajectories
            .iter()
            .filter(|t| !t.is_infra_failure())
            .count();
        kept.truncate(target);
        let training: Vec<Trajectory> = kept.into_iter().flatten().cloned().collect();
        refill.dropped_samples = graded.saturating_sub(training.len());
        Ok((training, refill))
    }

    fn maybe_evaluate(
        &mut self,
        backend: &mut dyn RolloutBackend,
        iteration: u64,
    ) -> Result<Vec<(String, f64)>, LoopError> {
        let every = self.config.eval_every;
        if every == 0 || (iteration + 1) % every != 0 || self.eval_tasks.is_empty() {
            return Ok(Vec::new());
        }
        let r = backend
            .evaluate(iteration, &self.eval_tasks)
            .map_err(backend_err(iteration, "evaluation"))?;
        Ok(crate::dapo_metrics::eval_values(&r.trajectories))
    }

    /// Checkpoint after `iteration`: `iteration + 1` iterations are complete and the next
    /// problem draw is `iteration + 1` (the data cursor).
    fn save_checkpoint(&self, iteration: u64) -> Result<PathBuf, LoopError> {
        let state = TrainState {
            iteration: iteration + 1,
            optimizer_step: self.learner.trainable.step,
            data_cursor: iteration + 1,
            seed: self.config.seed,
            param_names: self.learner.trainable.names(),
        };
        let dir = checkpoint::save_with_files(
            &self.checkpoints(),
            &self.learner,
            &state,
            &self.model_files,
        )?;
        prune_checkpoints(&self.checkpoints(), self.config.keep_checkpoints, &dir)
            .map_err(io(&self.checkpoints()))?;
        Ok(dir)
    }

    /// Restores the newest checkpoint and returns the first iteration still to run.
    fn restore(&mut self, backend: &mut dyn RolloutBackend) -> Result<u64, LoopError> {
        let root = self.checkpoints();
        let dir = checkpoint::latest(&root)?
            .ok_or_else(|| LoopError::NothingToResume(root.display().to_string()))?;
        let state = checkpoint::load(&dir, &mut self.learner)?;
        backend
            .sync(&self.learner, &checkpoint::policy_dir(&dir, &self.learner))
            .map_err(backend_err(state.iteration, "weight sync on resume"))?;
        tracing::info!(
            "resumed from {} at iteration {}",
            dir.display(),
            state.iteration
        );
        Ok(state.data_cursor)
    }

    fn write_run_info(&self, versions: &BTreeMap<String, String>) -> Result<(), LoopError> {
        std::fs::create_dir_all(&self.run_dir).map_err(io(&self.run_dir))?;
        let info = serde_json::json!({
            "config": self.config,
            "versions": versions,
            "pool_size": self.pool.len(),
            "eval_tasks": self.eval_tasks,
        });
        let text = serde_json::to_string_pretty(&info).expect("run info serialises");
        let path = self.run_dir.join("config.json");
        checkpoint::write_atomic(&path, text.as_bytes())?;
        Ok(())
    }

    fn save_rollouts(&self, iteration: u64, trajs: &[Trajectory]) -> Result<(), LoopError> {
        let dir = self.run_dir.join("rollouts");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut text = String::new();
        for t in trajs {
            // A record the JSONL layer refuses (non-finite log-prob) is logged, not fatal:
            // the training data in memory is what this iteration uses.
            match swerl_trajectory::to_json_line(t) {
                Ok(line) => text.push_str(&line),
                Err(e) => tracing::warn!("iteration {iteration}: not saving {}: {e}", t.task_id),
            }
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
        }
        let path = dir.join(format!("iter-{iteration:06}.jsonl"));
        checkpoint::write_atomic(&path, text.as_bytes())?;
        Ok(())
    }
}

fn log_progress(row: &MetricsRow) {
    let v = |k: &str| row.values.get(k).copied().unwrap_or(f64::NAN);
    tracing::info!(
        "iteration {}: reward {:.3}, resolved {:.3}, trained {} samples, loss {:.4}, {:.1} s",
        row.step,
        v(swerl_rl::metrics::REWARD_MEAN),
        v(swerl_rl::metrics::RESOLVED_RATE),
        v(swerl_rl::metrics::SAMPLES_TRAINED),
        v(swerl_rl::metrics::LOSS),
        v(swerl_rl::metrics::TIME_ITERATION)
    );
}

/// The groups (by task, in order of first appearance) whose graded trajectories are neither
/// all resolved nor all unresolved; infrastructure failures belong to no group.
fn keep_informative(trajs: &[Trajectory]) -> Vec<Vec<&Trajectory>> {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<&Trajectory>> = BTreeMap::new();
    for t in trajs.iter().filter(|t| !t.is_infra_failure()) {
        if !groups.contains_key(t.task_id.as_str()) {
            order.push(&t.task_id);
        }
        groups.entry(&t.task_id).or_default().push(t);
    }
    let in_order: Vec<Vec<&Trajectory>> = order
        .into_iter()
        .map(|task| groups.remove(task).unwrap_or_default())
        .collect();
    filter::filter_groups(in_order, |t| t.resolved(), 0).kept
}

/// Step 1: the problems of `iteration`, drawn without replacement from the pool.
pub fn choose_problems(pool: &[String], config: &DapoConfig, iteration: u64) -> Vec<String> {
    sample(pool, config.problems_per_iteration, config.seed, iteration)
}

/// Step 3: advantages and drops (see [`dapo_sequences`]), truncation to `max_context`, and a
/// seeded shuffle so mini-batches mix task groups.
pub fn prepare_sequences(
    trajs: &[Trajectory],
    config: &DapoConfig,
    iteration: u64,
) -> Result<(Vec<Sequence>, Selection, Truncation), LoopError> {
    let (mut seqs, selection) = dapo_sequences(trajs, &config.advantage)
        .map_err(|error| LoopError::Advantage { iteration, error })?;
    let truncation = truncate(&mut seqs, config.max_context);
    SplitMix64::new(config.seed, SHUFFLE_STREAM_BASE + iteration).shuffle(&mut seqs);
    Ok((seqs, selection, truncation))
}

/// Step 4: old log-probs from the trainer, then one optimizer step per mini-batch of
/// `batch_trajectories` sequences.
pub fn train_epoch(
    learner: &mut Learner,
    seqs: &[Sequence],
    config: &DapoConfig,
) -> Result<TrainSummary, swerl_rl::loss::LossError> {
    let step_cfg = StepConfig {
        micro_batch_tokens: config.micro_batch_tokens,
        max_grad_norm: config.max_grad_norm,
        pass: config.pass,
    };
    let loss_cfg = PolicyLossConfig::new(config.clip);
    let old = recompute_logprobs(&learner.model, seqs, &step_cfg);
    let mut steps: Vec<PolicyStepStats> = Vec::new();
    for start in (0..seqs.len()).step_by(config.batch_trajectories) {
        let end = (start + config.batch_trajectories).min(seqs.len());
        let range = start..end;
        let stats = policy_step(
            learner,
            &seqs[range.clone()],
            &old[range],
            config.lr,
            &step_cfg,
            &loss_cfg,
        )?;
        steps.push(stats);
    }
    Ok(TrainSummary {
        steps,
        trained_tokens: seqs.iter().map(|s| s.trained_tokens()).sum(),
        seconds: 0.0,
    })
}

/// Keeps the newest `keep` checkpoint directories (and always `current`).
fn prune_checkpoints(root: &Path, keep: usize, current: &Path) -> std::io::Result<()> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.extension().is_none())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("iter-"))
        })
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep.max(1));
    for old in dirs.into_iter().take(excess).filter(|d| d != current) {
        std::fs::remove_dir_all(old)?;
    }
    Ok(())
}

fn backend_err(iteration: u64, step: &'static str) -> impl FnOnce(BackendError) -> LoopError {
    move |error| LoopError::Backend {
        iteration,
        step,
        error,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoopError + '_ {
    move |error| LoopError::Io {
        path: path.display().to_string(),
        error,
    }
}
