//! `swerl validate`: checks that tasks are well-formed benchmarks: with the test patch alone
//! every FAIL_TO_PASS test fails (and so the empty patch does not resolve), and the gold
//! patch resolves. Also home of the helpers `swerl grade` shares (task loading, environment
//! sources, the parallel map).

use anyhow::{bail, Context};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use swerl_env::grade::{grade, GradeOptions};
use swerl_env::prepare::EnvSources;
use swerl_env::task::{load_tasks, Task};
use swerl_sandbox::{LocalFactory, SandboxFactory};
use swerl_trajectory::grade::{GradeOutcome, GradeReport};

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

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_HELP)]
pub struct Args {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// Where to write the JSON report.
    #[arg(long, value_name = "OUT", default_value = "runs/validate.json")]
    pub json: PathBuf,
    /// Also write the valid tasks to this JSONL file (rows as read, with the image a
    /// template gave them), and succeed when at least one is valid: filtering a dataset.
    #[arg(long, value_name = "FILE")]
    pub write_valid: Option<PathBuf>,
}

/// The validation of one task.
#[derive(Debug, Serialize)]
struct Validation {
    instance_id: String,
    valid: bool,
    /// Why the task is invalid (empty when valid).
    problems: Vec<String>,
    /// Grade of the empty patch (test patch alone).
    before: Option<GradeReport>,
    /// Grade of the gold patch.
    gold: Option<GradeReport>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tasks = args.tasks.load()?;
    let factory = args.tasks.factory()?;
    let (sources, opts) = (args.tasks.env_sources(), args.tasks.grade_options());
    let bar = progress_bar(tasks.len(), "validating");
    let results = par_map(&tasks, args.tasks.jobs(), |task| {
        let v = validate_task(task, factory.as_ref(), &sources, &opts);
        bar.inc(1);
        v
    });
    bar.finish_and_clear();
    print_table(&results);
    write_json(&args.json, &results)?;
    let invalid = results.iter().filter(|v| !v.valid).count();
    println!(
        "{} of {} tasks valid; report: {}",
        results.len() - invalid,
        results.len(),
        args.json.display()
    );
    if let Some(path) = &args.write_valid {
        let valid: Vec<&Task> = tasks
            .iter()
            .zip(&results)
            .filter(|(_, v)| v.valid)
            .map(|(t, _)| t)
            .collect();
        super::write_atomic(
            path,
            swerl_env::task::to_jsonl(valid.iter().copied())?.as_bytes(),
        )?;
        println!("{} valid tasks written to {}", valid.len(), path.display());
        return Ok(if valid.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn validate_task(
    task: &Task,
    factory: &dyn SandboxFactory,
    sources: &EnvSources,
    opts: &GradeOptions,
) -> Validation {
    let mut v = Validation {
        instance_id: task.instance_id.clone(),
        valid: false,
        problems: vec![],
        before: None,
        gold: None,
    };
    let env = match sources.source_for(task) {
        Ok(env) => env,
        Err(e) => {
            v.problems.push(format!("environment: {e}"));
            return v;
        }
    };
    if task.fail_to_pass.is_empty() {
        v.problems.push("FAIL_TO_PASS is empty".into());
    }
    let before = grade(task, "", factory, &env, opts);
    let gold = grade(task, &task.patch, factory, &env, opts);
    v.problems.extend(before_problems(&before));
    v.problems.extend(gold_problems(&gold));
    v.valid = v.problems.is_empty();
    (v.before, v.gold) = (Some(before), Some(gold));
    v
}

/// With the test patch alone, every FAIL_TO_PASS test must fail (SWE-bench's definition of
/// FAIL_TO_PASS) and so the empty patch must not resolve.
fn before_problems(before: &GradeReport) -> Vec<String> {
    if let GradeOutcome::InfraError { message } = &before.outcome {
        return vec![format!("empty patch: grading failed: {message}")];
    }
    let passing: Vec<&String> = before
        .fail_to_pass
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| s.is_pass()))
        .map(|(id, _)| id)
        .collect();
    let mut problems: Vec<String> = passing
        .iter()
        .map(|id| format!("FAIL_TO_PASS test {id} already passes with the test patch alone"))
        .collect();
    if before.resolved {
        problems.push("the empty patch resolves the task".into());
    }
    problems
}

fn gold_problems(gold: &GradeReport) -> Vec<String> {
    match &gold.outcome {
        GradeOutcome::InfraError { message } => {
            vec![format!("gold patch: grading failed: {message}")]
        }
        GradeOutcome::Graded if !gold.resolved => {
            vec![format!("gold patch does not resolve: {}", gold.reason)]
        }
        GradeOutcome::Graded => vec![],
    }
}

fn print_table(results: &[Validation]) {
    let width = results
        .iter()
        .map(|v| v.instance_id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{:<width$}  {:<14}  {:<10}  RESULT",
        "INSTANCE", "F2P BEFORE", "GOLD"
    );
    for v in results {
        let before = v.before.as_ref().map_or("-".to_string(), |r| {
            let failing = r
                .fail_to_pass
                .values()
                .filter(|s| !s.is_some_and(|s| s.is_pass()))
                .count();
            format!("{failing}/{} fail", r.fail_to_pass.len())
        });
        let gold = v
            .gold
            .as_ref()
            .map_or("-", |r| match (&r.outcome, r.resolved) {
                (GradeOutcome::InfraError { .. }, _) => "infra-error",
                (_, true) => "resolved",
                (_, false) => "unresolved",
            });
        println!(
            "{:<width$}  {before:<14}  {gold:<10}  {}",
            v.instance_id,
            if v.valid { "ok" } else { "INVALID" }
        );
        for problem in &v.problems {
            println!("{:<width$}    - {problem}", "");
        }
    }
}

/// Writes a JSON value to `path`, creating its directory.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what.to_string());
    bar
}

/// Maps `f` over `items` on `jobs` threads; results keep the input order.
pub fn par_map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_order_with_many_threads() {
        let items: Vec<u32> = (0..100).collect();
        assert_eq!(
            par_map(&items, 7, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert_eq!(par_map(&[] as &[u32], 4, |x| *x), Vec::<u32>::new());
    }
}
