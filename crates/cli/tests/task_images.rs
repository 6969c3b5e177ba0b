//! Tasks whose environment is their own image, as SWE-bench / SWE-rebench ship them: the
//! repository at /testbed with upstream history (the fix is a later commit), no repository on
//! the host. `swerl validate` and `swerl rollout` with `--backend container` and no
//! `--copy-repo` must take each task's image (its `docker_image` field), prepare nothing,
//! and grade and resolve as with a prepared source.
//!
//! The image is made here from a bundled task (no registry can be reached). Runs for real
//! against the podman service of scripts/setup-containers and fails (never skips) without it.

mod common;

use common::{bundled_task, make_task_image, swerl, text};
use swerl_env::task::write_jsonl;

const TASK: &str = "swerl-bundled__csvsniff-1";
const IMAGE: &str = "swerl-test-task:csvsniff";

#[test]
fn tasks_with_their_own_images_validate_and_resolve_without_host_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = bundled_task(TASK);
    make_task_image(&task, IMAGE, dir.path());
    task.docker_image = Some(IMAGE.into());
    // Nothing on the host to prepare from: the repository must come from the image.
    task.extra.remove("env_repo");
    let tasks = dir.path().join("tasks.jsonl");
    write_jsonl(&tasks, std::slice::from_ref(&task)).unwrap();
    let envs = dir.path().join("no-envs");
    let report = dir.path().join("validate.json");
    let valid = dir.path().join("valid.jsonl");
    let common = [
        "--tasks",
        tasks.to_str().unwrap(),
        "--env-root",
        envs.to_str().unwrap(),
        "--backend",
        "container",
    ];

    let mut validate = vec![
        "validate",
        "--json",
        report.to_str().unwrap(),
        "--write-valid",
        valid.to_str().unwrap(),
    ];
    validate.extend(common);
    let out = swerl(&validate);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report[0]["valid"], true, "{report:#}");
    let kept = swerl_env::task::load_tasks(&valid).unwrap().tasks;
    assert_eq!(kept, vec![task.clone()], "the valid row is written as read");

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
