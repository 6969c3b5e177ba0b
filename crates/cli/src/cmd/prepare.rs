//! `swerl prepare`: builds each task's environment for the local sandbox (see
//! `swerl_env::envbuild` for the layout and ENV_LAYOUT_HELP below for users).

use crate::common::{par_map, progress_bar, write_json, TaskArgs};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use swerl_env::envbuild::{prepare_task, BuildOptions, PrepareReport};
use swerl_env::prepare::repo_source;
use swerl_env::python::PythonSources;
use swerl_sandbox::LocalFactory;

/// The environment layout, for `prepare`'s help (the README says the same).
pub const ENV_LAYOUT_HELP: &str = "\
What a prepared task looks like inside the local sandbox:
  /testbed          the repository at base_commit (one commit), installed in editable mode
  /env/venv         the task's virtual environment, active in every agent command and test
                    (PATH starts with /env/venv/bin, VIRTUAL_ENV=/env/venv)
  /env/python       the interpreter, when the host's is not under /usr (pyenv, uv, --python)
/env is copy-on-write: an agent's `pip install` stays in its own sandbox. On the host:
  <env-root>/envs/<key>/   shared by every task with the same interpreter and packages
                           (SWE-bench: same repo, version and environment_setup_commit)
  <env-root>/<id>/         the task's source: repo/, its install layer, swerl-env.json
The spec comes from the row's install_config (SWE-rebench), else SWE-bench's table for
(repo, version), shipped in crates/env/data/swebench-env-specs.json. Only the build has
network access; episodes and grading never do. Commands of a spec that install system
packages (apt-get) are skipped and listed in swerl-env.json.
Interpreters: --python X.Y=PATH, else pyenv's and uv's installs, $SWERL_PYTHONS, ./.venv/pythons
(scripts/setup puts Debian's Python 3.9 there), then pythonX.Y on PATH.";

#[derive(Debug, clap::Args)]
#[command(after_help = ENV_LAYOUT_HELP)]
pub struct Args {
    #[command(flatten)]
    pub tasks: TaskArgs,
    /// An interpreter for a Python version: `3.9=/path/to/python3.9` (or its install
    /// prefix). Repeatable.
    #[arg(long = "python", value_name = "X.Y=PATH")]
    pub pythons: Vec<String>,
    /// An environment variable for build commands only, e.g.
    /// `PIP_INDEX_URL=http://mirror/simple`. Repeatable.
    #[arg(long = "build-env", value_name = "KEY=VALUE")]
    pub build_env: Vec<String>,
    /// Wall-clock limit of one build step (the shared environment, or one task's install), seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub build_timeout: u64,
    /// Where to write the JSON report (per task: environment key, cache hits, seconds).
    #[arg(long, value_name = "OUT", default_value = "runs/prepare.json")]
    pub json: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tasks = args.tasks.load()?;
    let opts = BuildOptions {
        env_root: absolute(&args.tasks.env_root)?,
        pythons: python_sources(&args.pythons)?,
        build_env: pairs(&args.build_env, "--build-env")?,
        timeout: Duration::from_secs(args.build_timeout),
    };
    let sources = args.tasks.env_sources();
    // Scratch next to the environments, so a build's changes move into place by rename.
    let scratch = opts.env_root.join(".scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let factory =
        LocalFactory::with_scratch_root(scratch).context("starting the local sandbox backend")?;
    let started = Instant::now();
    let bar = progress_bar(tasks.len(), "preparing");
    let results = par_map(&tasks, args.tasks.jobs(), |task| {
        let result = sources
            .repo_dir(task)
            .and_then(|dir| prepare_task(task, repo_source(task, &dir), &factory, &opts))
            .map_err(|e| e.to_string());
        bar.inc(1);
        result
    });
    bar.finish_and_clear();
    let summary = summarise(&tasks, &results, started.elapsed().as_secs_f64());
    write_json(&args.json, &summary)?;
    print_summary(&summary, &args.json);
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

/// Where interpreters are looked for (module docs of `swerl_env::python`).
fn python_sources(explicit: &[String]) -> anyhow::Result<PythonSources> {
    let mut sources = PythonSources::default();
    for (version, path) in pairs(explicit, "--python")? {
        sources.explicit.insert(version, PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".pyenv")));
    sources
        .install_dirs
        .extend(pyenv.map(|p| p.join("versions")));
    let uv = std::env::var_os("UV_PYTHON_INSTALL_DIR")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".local/share/uv/python")));
    sources.install_dirs.extend(uv);
    if let Some(dirs) = std::env::var_os("SWERL_PYTHONS") {
        sources.install_dirs.extend(std::env::split_paths(&dirs));
    }
    sources.install_dirs.push(PathBuf::from(".venv/pythons"));
    if let Some(path) = std::env::var_os("PATH") {
        sources.path.extend(std::env::split_paths(&path));
    }
    Ok(sources)
}

/// `KEY=VALUE` arguments.
fn pairs(items: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{flag} {item}: expected KEY=VALUE"),
        })
        .collect()
}

#[derive(Debug, serde::Serialize)]
struct Summary {
    total: usize,
    failed: usize,
    /// Distinct shared environments the tasks use, and how many were already built.
    environments: usize,
    environments_cached: usize,
    /// Tasks whose shared environment was found built (the rest built it or failed).
    env_cache_hits: usize,
    wall_seconds: f64,
    /// Build seconds of each environment built in this run.
    env_build_seconds: BTreeMap<String, f64>,
    tasks: Vec<TaskLine>,
}

#[derive(Debug, serde::Serialize)]
struct TaskLine {
    instance_id: String,
    #[serde(flatten)]
    report: Option<PrepareReport>,
    error: Option<String>,
}

fn summarise(
    tasks: &[swerl_env::task::Task],
    results: &[Result<PrepareReport, String>],
    wall_seconds: f64,
) -> Summary {
    let mut envs: BTreeMap<String, bool> = BTreeMap::new();
    let mut builds = BTreeMap::new();
    for r in results.iter().flatten() {
        if let Some(key) = &r.env_key {
            let cached = envs.entry(key.clone()).or_insert(true);
            *cached &= r.env_cached;
            if !r.env_cached {
                builds.insert(key.clone(), r.env_seconds);
            }
        }
    }
    let lines: Vec<TaskLine> = tasks
        .iter()
        .zip(results)
        .map(|(t, r)| TaskLine {
            instance_id: t.instance_id.clone(),
            report: r.as_ref().ok().cloned(),
            error: r.as_ref().err().cloned(),
        })
        .collect();
    Summary {
        total: tasks.len(),
        failed: results.iter().filter(|r| r.is_err()).count(),
        environments: envs.len(),
        environments_cached: envs.values().filter(|c| **c).count(),
        env_cache_hits: results
            .iter()
            .flatten()
            .filter(|r| r.env_key.is_some() && r.env_cached)
            .count(),
        wall_seconds,
        env_build_seconds: builds,
        tasks: lines,
    }
}

fn print_summary(summary: &Summary, out: &std::path::Path) {
    for line in &summary.tasks {
        match (&line.report, &line.error) {
            (Some(r), _) => println!(
                "{}  env {}  {}  install {:.1} s{}",
                line.instance_id,
                r.env_key.as_deref().unwrap_or("(system python)"),
                if r.env_cached {
                    "cached".to_string()
                } else {
                    format!("built in {:.1} s", r.env_seconds)
                },
                r.install_seconds,
                if r.source_cached {
                    " (source cached)"
                } else {
                    ""
                }
            ),
            (None, Some(e)) => println!("{}  FAILED: {e}", line.instance_id),
            (None, None) => {}
        }
    }
    println!(
        "{} of {} tasks prepared; {} environment(s), {} built now; {} of the tasks found theirs built; {:.1} s; report: {}",
        summary.total - summary.failed,
        summary.total,
        summary.environments,
        summary.environments - summary.environments_cached,
        summary.env_cache_hits,
        summary.wall_seconds,
        out.display()
    );
}
