//! What the `swerl` binary's tests share: running the binary (or a recipe script that runs
//! it), reading its output, and making a task image without a registry.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use swerl_container::{ContainerConfig, ContainerFactory};
use swerl_env::prepare::EnvSources;
use swerl_env::task::Task;
use swerl_sandbox::{Limits, Sandbox, SandboxSpec};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled task folder.
pub fn bundled() -> PathBuf {
    root().join("tasks/bundled")
}

// Only the sandbox crate may spawn processes (clippy disallowed-methods); these tests must,
// because what they check is the binary itself: argument parsing, files written, exit codes.
#[allow(clippy::disallowed_methods)]
fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// Runs the built `swerl` binary from the repository root.
pub fn swerl(args: &[&str]) -> Output {
    command(Path::new(env!("CARGO_BIN_EXE_swerl")))
        .args(args)
        .output()
        .expect("the swerl binary runs")
}

/// Starts `swerl ARGS` in the background with stderr piped (a server).
pub fn spawn_swerl(args: &[&str]) -> std::process::Child {
    command(Path::new(env!("CARGO_BIN_EXE_swerl")))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the swerl binary starts")
}

/// Runs a recipe script of configs/recipes with `env` (SWERL points at the built binary).
pub fn recipe(name: &str, env: &[(&str, String)]) -> Output {
    let script = root().join("configs/recipes").join(name);
    let mut cmd = command(Path::new("/bin/bash"));
    cmd.arg(&script)
        .env("SWERL", env!("CARGO_BIN_EXE_swerl"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.output().expect("bash runs the recipe")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails (never skips) without the local sandbox: a skipped check must not read as a pass.
pub fn require_sandbox() {
    if let Err(e) = swerl_sandbox::LocalFactory::new() {
        panic!("local sandbox unavailable ({e}); run scripts/setup as root");
    }
}

/// A bundled task by instance id.
pub fn bundled_task(id: &str) -> Task {
    let loaded = swerl_env::task::load_tasks(&bundled().join("tasks.jsonl")).unwrap();
    loaded
        .tasks
        .into_iter()
        .find(|t| t.instance_id == id)
        .unwrap_or_else(|| panic!("no bundled task {id}"))
}

fn exec(sb: &mut dyn Sandbox, cmd: &str) -> String {
    let out = sb.exec(cmd, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(out.exit_code, Some(0), "`{cmd}`: {}", out.output);
    out.output
}

/// Saves `image`, made as SWE-bench makes theirs: `task`'s repository at /testbed, at base,
/// with the gold patch as a later commit on branch `upstream`. Needs podman's service (run
/// scripts/setup-containers).
pub fn make_task_image(task: &Task, image: &str, scratch: &Path) {
    let sources = EnvSources {
        env_root: scratch.join("image-envs"),
        repos: Some(bundled().join("repos")),
        repos_in_image: false,
    };
    let source = sources
        .source_for(task)
        .expect("prepare the bundled source");
    let factory = ContainerFactory::new(ContainerConfig {
        copy_repo: true,
        workdir: Some("/swerl/repo".into()),
        ..ContainerConfig::default()
    })
    .unwrap_or_else(|e| panic!("run scripts/setup-containers as root first ({e})"));
    let spec = SandboxSpec {
        env_source: source,
        workdir: "/swerl/repo".into(),
        limits: Limits::default(),
        env: Vec::new(),
        image: None,
        ..Default::default()
    };
    let mut sb = factory.create_container(&spec).unwrap();
    sb.write_file("/tmp/gold.patch", task.patch.as_bytes())
        .unwrap();
    exec(
        &mut sb,
        "rm -rf /testbed && cp -a /swerl/repo /testbed && cd /testbed && \
         git config user.name up && git config user.email up@up && \
         git apply /tmp/gold.patch && git commit -qam 'upstream fix' && \
         git branch upstream && git reset -q --hard HEAD~1 && rm -rf /swerl /tmp/gold.patch",
    );
    sb.save_as_image(image).unwrap();
    sb.teardown().unwrap();
}
