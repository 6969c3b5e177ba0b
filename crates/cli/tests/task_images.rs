//! Tasks whose environment is their own image, as SWE-bench / SWE-rebench ship them: the
//! repository at /testbed with upstream history (the fix is a later commit), no repository on
//! the host. `swerl validate` and `swerl rollout` with `--backend container` and no
//! `--copy-repo` must take each task's image (its `docker_image` field), prepare nothing,
//! and grade and resolve as with a prepared source.
//!
//! The image is made here from a bundled task (no registry can be reached): a sandbox of the
//! test image gets the prepared repository at /testbed, the gold patch committed on a branch
//! and the work tree reset to the base, and is saved as an image. Runs for real against the
//! podman service of scripts/setup-containers and fails (never skips) without it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use swerl_container::{ContainerConfig, ContainerFactory};
use swerl_env::prepare::EnvSources;
use swerl_env::task::{load_tasks, write_jsonl, Task};
use swerl_sandbox::{Limits, Sandbox, SandboxSpec};

const TASK: &str = "swerl-bundled__csvsniff-1";
const IMAGE: &str = "swerl-test-task:csvsniff";

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tasks/bundled")
}

// Only the sandbox crate may spawn processes (clippy disallowed-methods); this test must,
// because what it checks is the binary itself: argument parsing, files written, exit codes.
#[allow(clippy::disallowed_methods)]
fn swerl(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_swerl"))
        .args(args)
        .output()
        .expect("the swerl binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn exec(sb: &mut dyn Sandbox, cmd: &str) -> String {
    let out = sb.exec(cmd, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(out.exit_code, Some(0), "`{cmd}`: {}", out.output);
    out.output
}

/// Saves IMAGE: the task's repository at /testbed, at base, with the gold patch as a later
/// commit on branch `upstream`.
fn make_task_image(task: &Task, scratch: &Path) {
    let sources = EnvSources {
        env_root: scratch.join("envs"),
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
    sb.save_as_image(IMAGE).unwrap();
    sb.teardown().unwrap();
}

#[test]
fn tasks_with_their_own_images_validate_and_resolve_without_host_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_tasks(&bundled().join("tasks.jsonl")).unwrap();
    let mut task = loaded
        .tasks
        .into_iter()
        .find(|t| t.instance_id == TASK)
        .expect("the bundled task");
    make_task_image(&task, dir.path());
    task.docker_image = Some(IMAGE.into());
    // Nothing on the host to prepare from: the repository must come from the image.
    task.extra.remove("env_repo");
    let tasks = dir.path().join("tasks.jsonl");
    write_jsonl(&tasks, std::slice::from_ref(&task)).unwrap();
    let envs = dir.path().join("no-envs");
    let report = dir.path().join("validate.json");
    let common = [
        "--tasks",
        tasks.to_str().unwrap(),
        "--env-root",
        envs.to_str().unwrap(),
        "--backend",
        "container",
    ];

    let mut validate = vec!["validate", "--json", report.to_str().unwrap()];
    validate.extend(common);
    let out = swerl(&validate);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report[0]["valid"], true, "{report:#}");

    let run = dir.path().join("run");
    let mut rollout = vec![
        "rollout",
        "--policy",
        "scripted",
        "--out",
        run.to_str().unwrap(),
    ];
    rollout.extend(common);
    let out = swerl(&rollout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 resolved"),
        "{}",
        text(&out)
    );
    assert!(!envs.exists(), "no environment source is prepared");
}
