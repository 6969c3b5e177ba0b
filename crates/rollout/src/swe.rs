//! The real pipeline of one SWE episode, wired for [`run_episodes`]:
//! task -> prepared environment source (built on demand) -> sandbox from the factory ->
//! [`SweEpisode`] -> scaffold with the episode's policy -> final patch -> grade in a fresh
//! sandbox -> trajectory with reward.
//!
//! Every sandbox is torn down: the agent's when its [`SweEnv`] is dropped (also when the
//! episode panics or fails), the grader's inside `swerl_env::grade::grade`.

use crate::runner::{run_episodes, Job, Progress, RunConfig, RunError};
use crate::store::TrajectoryStore;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use swerl_agent::{EnvFailure, Environment, Policy, PolicyFailure, ScriptedPolicy, Step};
use swerl_env::aci::AciConfig;
use swerl_env::episode::SweEpisode;
use swerl_env::grade::{grade, GradeOptions};
use swerl_env::prepare::EnvSources;
use swerl_env::task::Task;
use swerl_sandbox::{Limits, SandboxFactory, SandboxSpec};
use swerl_trajectory::{GradeOutcome, GradeReport};

/// How the agent's sandbox, tools and grader are set up.
#[derive(Debug, Clone)]
pub struct SweOptions {
    /// Where the repository appears in the agent's sandbox (SWE-bench: `/testbed`).
    pub workdir: String,
    /// Resource limits of the agent's sandbox.
    pub sandbox_limits: Limits,
    /// Extra environment variables of the agent's shell.
    pub env: Vec<(String, String)>,
    pub aci: AciConfig,
    pub grade: GradeOptions,
}

impl Default for SweOptions {
    fn default() -> Self {
        let grade = GradeOptions::default();
        SweOptions {
            workdir: grade.workdir.clone(),
            sandbox_limits: grade.limits.clone(),
            env: Vec::new(),
            aci: AciConfig::default(),
            grade,
        }
    }
}

/// Everything a SWE rollout needs besides the policy: the tasks, where their environment
/// sources are, and the sandbox backend.
pub struct SweRollout {
    tasks: HashMap<String, Task>,
    sources: EnvSources,
    factory: Arc<dyn SandboxFactory>,
    options: SweOptions,
    /// Prepared sources by instance id, so each is looked up (or built) once per run.
    prepared: Mutex<HashMap<String, PathBuf>>,
}

impl std::fmt::Debug for SweRollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweRollout")
            .field("tasks", &self.tasks.len())
            .field("sources", &self.sources)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SweRollout {
    /// A rollout over `tasks` (by instance id; a later duplicate replaces an earlier one).
    pub fn new(
        tasks: Vec<Task>,
        sources: EnvSources,
        factory: Arc<dyn SandboxFactory>,
        options: SweOptions,
    ) -> SweRollout {
        let tasks = tasks
            .into_iter()
            .map(|t| (t.instance_id.clone(), t))
            .collect();
        SweRollout {
            tasks,
            sources,
            factory,
            options,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// The task with this instance id.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// The prepared environment source of `task`, built on first use (building is
    /// idempotent and safe against concurrent builders, so the lock is not held meanwhile).
    pub fn env_source(&self, task: &Task) -> Result<PathBuf, EnvFailure> {
        let cached = self.prepared.lock().expect("prepared lock");
        if let Some(path) = cached.get(&task.instance_id) {
            return Ok(path.clone());
        }
        drop(cached);
        let path = self
            .sources
            .source_for(task)
            .map_err(|e| EnvFailure(e.to_string()))?;
        self.prepared
            .lock()
            .expect("prepared lock")
            .insert(task.instance_id.clone(), path.clone());
        Ok(path)
    }

    /// A live environment for `job`: a fresh sandbox over the task's source with the ACI.
    pub fn make_env(&self, job: &Job) -> Result<SweEnv, EnvFailure> {
        let task = self.known_task(&job.task_id)?;
        let mut spec = SandboxSpec {
            env_source: self.env_source(task)?,
            workdir: self.options.workdir.clone(),
            limits: self.options.sandbox_limits.clone(),
            env: self.options.env.clone(),
            image: task.environment_image().map(str::to_string),
            ..Default::default()
        };
        // The task's prepared Python environment, active in the agent's shell as in grading.
        swerl_env::envbuild::apply_environment(&mut spec)
            .map_err(|e| EnvFailure(format!("{}: {e}", job.task_id)))?;
        let sandbox = self
            .factory
            .create(&spec)
            .map_err(|e| EnvFailure(format!("{}: sandbox could not start: {e}", job.task_id)))?;
        // On failure `new` drops the sandbox, which tears it down.
        let episode = SweEpisode::new(sandbox, &task.problem_statement, self.options.aci.clone())?;
        Ok(SweEnv { episode })
    }

    /// Grades `patch` for the job's task in a fresh sandbox. A task or source that cannot be
    /// found is an infrastructure error of the grade (never an unresolved grade).
    pub fn grade(&self, job: &Job, patch: &str) -> GradeReport {
        let task = match self.known_task(&job.task_id) {
            Ok(task) => task,
            Err(e) => return infra_grade(&job.task_id, e.0),
        };
        match self.env_source(task) {
            Ok(source) => grade(task, patch, &*self.factory, &source, &self.options.grade),
            Err(e) => infra_grade(&job.task_id, e.0),
        }
    }

    fn known_task(&self, id: &str) -> Result<&Task, EnvFailure> {
        self.task(id).ok_or_else(|| {
            EnvFailure(format!(
                "task `{id}` is not in the loaded task file; check the job list against --tasks"
            ))
        })
    }

    /// Runs every job not yet in `store` with the policy `make_policy` gives each episode.
    pub fn run<P: Policy>(
        &self,
        jobs: &[Job],
        config: &RunConfig,
        make_policy: &(dyn Fn(&Job, &Task) -> Result<P, PolicyFailure> + Sync),
        store: &mut TrajectoryStore,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Progress, RunError> {
        let policy = |job: &Job| {
            let task = self
                .known_task(&job.task_id)
                .map_err(|e| PolicyFailure(e.0))?;
            make_policy(job, task)
        };
        let env = |job: &Job| self.make_env(job);
        let grader = |job: &Job, patch: &str| self.grade(job, patch);
        run_episodes(jobs, config, &env, &policy, &grader, store, progress)
    }
}

/// A grade report for a grade that could not be computed.
fn infra_grade(instance_id: &str, message: String) -> GradeReport {
    GradeReport {
        instance_id: instance_id.to_string(),
        outcome: GradeOutcome::InfraError {
            message: message.clone(),
        },
        resolved: false,
        reason: format!("infrastructure error: {message}"),
        patch_applied: false,
        fail_to_pass: Default::default(),
        pass_to_pass: Default::default(),
        timings: Default::default(),
        log_tail: String::new(),
        test_log: String::new(),
        statuses: Default::default(),
    }
}

/// A [`SweEpisode`] that tears its sandbox down when dropped.
#[derive(Debug)]
pub struct SweEnv {
    episode: SweEpisode,
}

impl SweEnv {
    /// The episode inside (tool state, sandbox).
    pub fn episode_mut(&mut self) -> &mut SweEpisode {
        &mut self.episode
    }
}

impl Drop for SweEnv {
    fn drop(&mut self) {
        if let Err(e) = self.episode.sandbox_mut().teardown() {
            tracing::warn!(error = %e, "agent sandbox teardown failed");
        }
    }
}

impl Environment for SweEnv {
    fn problem_statement(&self) -> String {
        self.episode.problem_statement()
    }

    fn step(&mut self, command: &str) -> Result<Step, EnvFailure> {
        self.episode.step(command)
    }

    fn diff(&mut self) -> Result<String, EnvFailure> {
        self.episode.diff()
    }

    fn system_prompt(&self) -> String {
        swerl_agent::prompts::system_prompt(self.episode.aci().config().window_lines)
    }
}

/// The scripted policy of a task: replays its `demo_commands` (the bundled tasks carry
/// them). A task without them is a policy failure naming the task.
pub fn scripted_policy(task: &Task) -> Result<ScriptedPolicy, PolicyFailure> {
    Ok(ScriptedPolicy::from_commands(&demo_commands(task)?))
}

/// The task's `demo_commands`: the commands a scripted solver issues, in order.
pub fn demo_commands(task: &Task) -> Result<Vec<String>, PolicyFailure> {
    task.extra
        .get("demo_commands")
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .ok_or_else(|| {
            PolicyFailure(format!(
                "task `{}` has no `demo_commands` list of strings, so the scripted policy cannot \
                 replay it; use a task file with demo_commands (tasks/bundled/tasks.jsonl) or a \
                 model policy",
                task.instance_id
            ))
        })
}

/// A policy of any backend behind one type, so one run can choose its backend at run time.
pub struct DynPolicy(pub Box<dyn Policy + Send>);

impl std::fmt::Debug for DynPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynPolicy({})", self.0.describe())
    }
}

impl Policy for DynPolicy {
    fn prompt(&mut self, system: &str, user: &str) -> Result<Vec<u32>, PolicyFailure> {
        self.0.prompt(system, user)
    }

    fn generate(
        &mut self,
        context: &[u32],
        max_new_tokens: usize,
    ) -> Result<swerl_agent::Generation, PolicyFailure> {
        self.0.generate(context, max_new_tokens)
    }

    fn observation_delta(
        &mut self,
        context: &[u32],
        last: &swerl_agent::Generation,
        observation: &str,
    ) -> Result<Vec<u32>, PolicyFailure> {
        self.0.observation_delta(context, last, observation)
    }

    fn describe(&self) -> serde_json::Value {
        self.0.describe()
    }
}
