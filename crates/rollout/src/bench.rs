//! Rollout benchmarks (wired as `swerl bench rollout`):
//!
//! - orchestration overhead per turn: the episode's wall time minus the time spent inside
//!   the policy's and the environment's methods (sampling, tokenising deltas, running
//!   commands, taking the diff), divided by its turns: what the scaffold, the token tape and
//!   the trajectory bookkeeping cost;
//! - many concurrent scripted episodes in real sandboxes, reporting every failure.
//!
//! Both run through [`run_episodes`], so the store (with its fsync per record) is included
//! in the run's wall time but not in the per-turn overhead (it happens after the episode).

use crate::runner::{jobs_for, run_episodes, Job, RunConfig, RunError};
use crate::store::{read_trajectories, TrajectoryStore};
use crate::swe::{scripted_policy, SweRollout};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use swerl_agent::{
    EnvFailure, Environment, Generation, MemoryEnv, Policy, PolicyFailure, ScriptedPolicy, Step,
};
use swerl_trajectory::Trajectory;

/// What a benchmark run measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RolloutBenchReport {
    pub episodes: usize,
    pub concurrency: usize,
    pub resolved: usize,
    /// `task #sample: status: error` of every episode that did not end in `submit` or whose
    /// grade was not a resolve.
    pub failures: Vec<String>,
    pub turns: usize,
    pub wall_s: f64,
    pub episodes_per_s: f64,
    /// Orchestration overhead per turn over episodes (microseconds): p50, p90, max.
    pub overhead_us_p50: f64,
    pub overhead_us_p90: f64,
    pub overhead_us_max: f64,
}

/// Nanoseconds spent inside policy and environment calls, per episode.
#[derive(Debug, Default)]
struct Inside(Mutex<HashMap<(String, u32), Arc<AtomicU64>>>);

impl Inside {
    fn counter(&self, job: &Job) -> Arc<AtomicU64> {
        let mut map = self.0.lock().expect("inside lock");
        let key = (job.task_id.clone(), job.sample_index);
        map.entry(key).or_default().clone()
    }

    fn seconds(&self, t: &Trajectory) -> f64 {
        let map = self.0.lock().expect("inside lock");
        let key = (t.task_id.clone(), t.sample_index);
        map.get(&key)
            .map_or(0.0, |c| c.load(Ordering::Relaxed) as f64 * 1e-9)
    }
}

/// Adds the time of each call of `f` to `counter`.
fn timed<R>(counter: &AtomicU64, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    counter.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}

/// A policy or environment whose calls are timed.
struct Timed<T> {
    inner: T,
    inside: Arc<AtomicU64>,
}

impl<P: Policy> Policy for Timed<P> {
    fn prompt(&mut self, system: &str, user: &str) -> Result<Vec<u32>, PolicyFailure> {
        timed(&self.inside, || self.inner.prompt(system, user))
    }
    fn generate(&mut self, context: &[u32], max: usize) -> Result<Generation, PolicyFailure> {
        timed(&self.inside, || self.inner.generate(context, max))
    }
    fn observation_delta(
        &mut self,
        context: &[u32],
        last: &Generation,
        observation: &str,
    ) -> Result<Vec<u32>, PolicyFailure> {
        let inner = &mut self.inner;
        timed(&self.inside, || {
            inner.observation_delta(context, last, observation)
        })
    }
    fn describe(&self) -> serde_json::Value {
        self.inner.describe()
    }
}

impl<E: Environment> Environment for Timed<E> {
    fn problem_statement(&self) -> String {
        timed(&self.inside, || self.inner.problem_statement())
    }
    fn step(&mut self, command: &str) -> Result<Step, EnvFailure> {
        timed(&self.inside, || self.inner.step(command))
    }
    fn diff(&mut self) -> Result<String, EnvFailure> {
        timed(&self.inside, || self.inner.diff())
    }
}

/// Runs `jobs` with timed policies and environments into a store at `store_path` (which
/// must not exist yet) and measures them.
fn measure<E: Environment, P: Policy>(
    jobs: &[Job],
    config: &RunConfig,
    make_env: &(dyn Fn(&Job) -> Result<E, EnvFailure> + Sync),
    make_policy: &(dyn Fn(&Job) -> Result<P, PolicyFailure> + Sync),
    grade: &(dyn Fn(&Job, &str) -> swerl_trajectory::GradeReport + Sync),
    store_path: &Path,
) -> Result<RolloutBenchReport, RunError> {
    let inside = Inside::default();
    let env = |job: &Job| {
        let inner = make_env(job)?;
        Ok(Timed {
            inner,
            inside: inside.counter(job),
        })
    };
    let policy = |job: &Job| {
        let inner = make_policy(job)?;
        Ok(Timed {
            inner,
            inside: inside.counter(job),
        })
    };
    let (mut store, _) = TrajectoryStore::open(store_path)?;
    let start = Instant::now();
    run_episodes(jobs, config, &env, &policy, grade, &mut store, &|_| {})?;
    let wall_s = start.elapsed().as_secs_f64();
    let trajectories = read_trajectories(store_path)?;
    Ok(report(&trajectories, &inside, config.concurrency, wall_s))
}

fn report(
    ts: &[Trajectory],
    inside: &Inside,
    concurrency: usize,
    wall_s: f64,
) -> RolloutBenchReport {
    let mut overheads: Vec<f64> = ts
        .iter()
        .filter(|t| !t.turns.is_empty())
        .map(|t| 1e6 * (t.timings.episode_s - inside.seconds(t)).max(0.0) / t.turns.len() as f64)
        .collect();
    overheads.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let i = ((overheads.len() as f64 - 1.0) * q).round() as usize;
        overheads.get(i).copied().unwrap_or(f64::NAN)
    };
    RolloutBenchReport {
        episodes: ts.len(),
        concurrency,
        resolved: ts.iter().filter(|t| t.resolved()).count(),
        failures: ts
            .iter()
            .filter(|t| !t.resolved())
            .map(describe_failure)
            .collect(),
        turns: ts.iter().map(|t| t.turns.len()).sum(),
        wall_s,
        episodes_per_s: ts.len() as f64 / wall_s.max(1e-9),
        overhead_us_p50: quantile(0.5),
        overhead_us_p90: quantile(0.9),
        overhead_us_max: overheads.last().copied().unwrap_or(f64::NAN),
    }
}

fn describe_failure(t: &Trajectory) -> String {
    let why = t
        .error
        .clone()
        .or_else(|| t.grade.as_ref().map(|g| g.reason.clone()))
        .unwrap_or_default();
    format!("{} #{}: {}: {why}", t.task_id, t.sample_index, t.status)
}

/// The scaffold's own cost per turn, without any sandbox: `episodes` scripted episodes of
/// `turns` commands each in the in-memory environment, graded as resolved when they submit.
pub fn bench_overhead_in_memory(
    episodes: u32,
    turns: usize,
    config: &RunConfig,
    store_path: &Path,
) -> Result<RolloutBenchReport, RunError> {
    let jobs = jobs_for(&["memory"], episodes);
    let make_env = |_: &Job| Ok(MemoryEnv::new("Fix main.py.", &[("main.py", "x = 1\n")]));
    let make_policy = |_: &Job| {
        let mut commands: Vec<String> = (1..turns).map(|i| format!("echo {i} > main.py")).collect();
        commands.push("submit".into());
        Ok(ScriptedPolicy::from_commands(&commands))
    };
    let grade = |job: &Job, patch: &str| memory_grade(&job.task_id, !patch.is_empty());
    measure(&jobs, config, &make_env, &make_policy, &grade, store_path)
}

fn memory_grade(id: &str, resolved: bool) -> swerl_trajectory::GradeReport {
    swerl_trajectory::GradeReport {
        instance_id: id.to_string(),
        outcome: swerl_trajectory::GradeOutcome::Graded,
        resolved,
        reason: String::new(),
        patch_applied: true,
        fail_to_pass: Default::default(),
        pass_to_pass: Default::default(),
        timings: Default::default(),
        log_tail: String::new(),
        test_log: String::new(),
        statuses: Default::default(),
    }
}

/// `samples` scripted episodes of each of `task_ids` (with `demo_commands`) in real
/// sandboxes, `config.concurrency` at once, each graded in a fresh sandbox.
pub fn bench_scripted_swe(
    swe: &SweRollout,
    task_ids: &[String],
    samples: u32,
    config: &RunConfig,
    store_path: &Path,
) -> Result<RolloutBenchReport, RunError> {
    let jobs = jobs_for(task_ids, samples);
    let make_env = |job: &Job| swe.make_env(job);
    let make_policy = |job: &Job| {
        let task = swe
            .task(&job.task_id)
            .ok_or_else(|| PolicyFailure(format!("unknown task {}", job.task_id)))?;
        scripted_policy(task)
    };
    let grade = |job: &Job, patch: &str| swe.grade(job, patch);
    measure(&jobs, config, &make_env, &make_policy, &grade, store_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swerl_agent::Limits;

    #[test]
    fn in_memory_bench_runs_every_episode_and_measures_overhead() {
        let dir = tempfile::tempdir().unwrap();
        let config = RunConfig {
            concurrency: 4,
            max_attempts: 1,
            limits: Limits::default(),
            reward: Default::default(),
            versions: Default::default(),
        };
        let r = bench_overhead_in_memory(8, 5, &config, &dir.path().join("t.jsonl")).unwrap();
        assert_eq!((r.episodes, r.resolved, r.turns), (8, 8, 40));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert!(r.overhead_us_p50.is_finite() && r.overhead_us_p50 >= 0.0);
        assert!(r.overhead_us_p50 <= r.overhead_us_p90 && r.overhead_us_p90 <= r.overhead_us_max);
    }
}
