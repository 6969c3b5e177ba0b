//! The task arguments every command that runs episodes or grades shares: where tasks come
//! from, where their environments are prepared, and which sandbox backend runs them.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;
use swerl_env::grade::GradeOptions;
use swerl_env::prepare::EnvSources;
use swerl_env::task::{load_tasks, Task};
use swerl_sandbox::{LocalFactory, SandboxFactory};

/// Where tasks come from and where their environments are prepared.
///
/// Environment sources: `--env-root DIR` holds prepared sources `DIR/<instance_id>/repo`
/// (a repository at base_commit with a single commit). A missing one is prepared from
/// `--repos DIR` (default: the `repos/` folder next to the tasks file, as for the bundled
/// tasks): the folder named by the task's `env_repo` field, its instance_id, `owner__name` or
/// `name`; a git checkout there is exported at base_commit, a plain folder is taken as is.
#[derive(Debug, clap::Args)]
pub struct TaskArgs {
    /// Task file: .json (array), .jsonl or .parquet in SWE-bench / SWE-rebench form.
    #[arg(long, value_name = "FILE")]
    pub tasks: PathBuf,
    /// Prepared environment sources, one `<instance_id>/repo` per task (created on demand).
    #[arg(long, value_name = "DIR", default_value = "runs/envs")]
    pub env_root: PathBuf,
    /// Repositories to prepare missing sources from [default: <tasks dir>/repos].
    #[arg(long, value_name = "DIR")]
    pub repos: Option<PathBuf>,
    /// Only these instance ids (repeatable).
    #[arg(long = "instance", value_name = "ID")]
    pub instances: Vec<String>,
    /// Load the good rows of a task file with malformed rows instead of failing.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Tasks graded at once [default: number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Wall-clock limit of one test run, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Sandbox backend: `local` (bubblewrap over the prepared source) or `container`
    /// (Docker Engine API; see --image and --copy-repo).
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    pub backend: Backend,
    /// Container image for `--backend container`, for tasks that name none (a task's own
    /// `docker_image` / `image_name`, or --image-template, wins).
    #[arg(long, value_name = "IMAGE", default_value = swerl_container::TEST_IMAGE)]
    pub image: String,
    /// The image of each task that names none, for `--backend container`: `{instance_id}`,
    /// or `{swebench_id}` (SWE-bench's Docker Hub form), e.g.
    /// `swebench/sweb.eval.x86_64.{swebench_id}:latest`.
    #[arg(long, value_name = "TEMPLATE")]
    pub image_template: Option<String>,
    /// With `--backend container`: pull missing images from their registry (otherwise a
    /// missing image is an error naming it).
    #[arg(long)]
    pub pull: bool,
    /// With `--backend container` and the repository from the image: keep the image's git
    /// history. By default it is replaced by one commit, since SWE-bench images hold the
    /// upstream history with the fix in it.
    #[arg(long)]
    pub keep_history: bool,
    /// Docker Engine API socket for `--backend container`.
    #[arg(long, value_name = "URL", default_value = swerl_container::DEFAULT_SOCKET)]
    pub socket: String,
    /// With `--backend container`: copy the prepared repository into a generic image (the
    /// bundled tasks) instead of using the repository the image carries (SWE-bench images).
    #[arg(long)]
    pub copy_repo: bool,
    /// Lines the agent's file window shows (`open`, `goto`, after `edit`; SWE-agent: 100).
    /// The system prompt states it. Used by agent episodes (rollout, eval, train), not grading.
    #[arg(long, value_name = "LINES", default_value_t = swerl_agent::prompts::DEFAULT_WINDOW_LINES)]
    pub window_lines: usize,
}

/// Which sandbox backend runs the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Local,
    Container,
}

impl TaskArgs {
    /// Loads the tasks (printing row errors) and keeps the selected ones.
    pub fn load(&self) -> anyhow::Result<Vec<Task>> {
        let loaded = load_tasks(&self.tasks)?;
        for error in &loaded.errors {
            eprintln!("error: {error}");
        }
        if !loaded.errors.is_empty() && !self.skip_bad_rows {
            bail!(
                "{} malformed row(s) in {}; fix them or pass --skip-bad-rows",
                loaded.errors.len(),
                self.tasks.display()
            );
        }
        let mut tasks = loaded.tasks;
        if let Some(template) = &self.image_template {
            let template = swerl_env::task::ImageTemplate::new(template)
                .map_err(|e| anyhow::anyhow!("--image-template: {e}"))?;
            template.apply(&mut tasks);
        }
        if !self.instances.is_empty() {
            tasks.retain(|t| self.instances.contains(&t.instance_id));
            for id in &self.instances {
                if !tasks.iter().any(|t| &t.instance_id == id) {
                    bail!("instance {id} is not in {}", self.tasks.display());
                }
            }
        }
        Ok(tasks)
    }

    /// How agent episodes are set up: the grader's options and the ACI's file window.
    pub fn swe_options(&self) -> swerl_rollout::SweOptions {
        let mut options = swerl_rollout::SweOptions {
            grade: self.grade_options(),
            ..swerl_rollout::SweOptions::default()
        };
        options.aci.window_lines = self.window_lines.max(1);
        options
    }

    /// The agent sandbox's limits as one JSON string, recorded in every trajectory (under
    /// `versions`), so each episode says which memory, process, disk and file-size limits
    /// it ran under.
    pub fn sandbox_limits_record(&self) -> (String, String) {
        let limits = self.swe_options().sandbox_limits;
        let json = serde_json::to_string(&limits).unwrap_or_else(|e| format!("unrecorded: {e}"));
        ("sandbox_limits".to_string(), json)
    }

    pub fn env_sources(&self) -> EnvSources {
        EnvSources {
            env_root: self.env_root.clone(),
            repos: self
                .repos
                .clone()
                .or_else(|| bundled_repos(&self.tasks).filter(|p| p.is_dir())),
            repos_in_image: self.backend == Backend::Container && !self.copy_repo,
        }
    }

    pub fn jobs(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    pub fn grade_options(&self) -> GradeOptions {
        GradeOptions {
            test_timeout: Duration::from_secs(self.timeout),
            ..GradeOptions::default()
        }
    }

    pub fn factory(&self) -> anyhow::Result<Box<dyn SandboxFactory>> {
        match self.backend {
            Backend::Local => Ok(Box::new(
                LocalFactory::new().context("starting the local sandbox backend")?,
            )),
            Backend::Container => {
                let config = swerl_container::ContainerConfig {
                    socket: self.socket.clone(),
                    image: self.image.clone(),
                    copy_repo: self.copy_repo,
                    squash_history: !self.keep_history,
                    pull: self.pull,
                    // A copied repository goes to a fresh directory, so nothing the image
                    // keeps at /testbed mixes into it (or into the agent's diff).
                    workdir: Some(
                        if self.copy_repo {
                            "/swerl/repo"
                        } else {
                            "/testbed"
                        }
                        .into(),
                    ),
                    ..Default::default()
                };
                let factory = swerl_container::ContainerFactory::new(config)
                    .context("starting the container backend (run scripts/setup-containers?)")?;
                Ok(Box::new(factory))
            }
        }
    }
}

/// The repositories of a task file that keeps them beside it, as tasks/bundled does:
/// `<tasks dir>/repos` (whether or not it exists).
pub fn bundled_repos(tasks_file: &Path) -> Option<PathBuf> {
    tasks_file.parent().map(|p| p.join("repos"))
}

/// How environment sources are found, for the subcommands' help.
pub const ENV_HELP: &str = "\
Environment sources: every task is graded in a fresh sandbox made from the prepared source
<env-root>/<instance_id>/repo (the repository at base_commit, git history reduced to one
commit). A missing source is prepared from --repos (default: the repos/ folder next to the
tasks file, as for tasks/bundled): the folder named by the task's `env_repo` field, its
instance_id, `owner__name` or `name`; a git checkout there is exported at base_commit, a plain
folder is taken as is. Tasks outside SWE-bench's known repositories need `test_cmd` and
`log_parser` fields.

With --backend container and no --copy-repo, nothing is prepared: each task's repository comes
from its image at /testbed (SWE-bench / SWE-rebench images), its history replaced by one commit
unless --keep-history. A task's image is its `docker_image` or `image_name` field, else
--image-template, else --image.";
