//! The `swerl` binary end to end: `swerl rollout --policy scripted` on two bundled tasks in
//! real sandboxes, a resuming rerun, then `swerl eval --from` over the run directory.
//! Where the local sandbox cannot start (it needs root and bubblewrap) the test says so on
//! stderr and returns.

mod common;
mod prepared_envs;

use common::{require_sandbox, swerl, text};
use std::path::PathBuf;

const TASKS: [&str; 2] = ["swerl-bundled__csvsniff-1", "swerl-bundled__jsonpointer-1"];

fn bundled() -> PathBuf {
    common::bundled().join("tasks.jsonl")
}

#[test]
fn rollout_scripted_then_eval_from_the_run_directory() {
    require_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (out, envs) = (dir.path().join("run"), dir.path().join("envs"));
    let tasks = bundled();
    let mut args = vec![
        "rollout",
        "--tasks",
        tasks.to_str().unwrap(),
        "--env-root",
        envs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--policy",
        "scripted",
        "--samples",
        "1",
        "--concurrency",
        "2",
    ];
    for id in TASKS {
        args.extend(["--instance", id]);
    }
    let first = swerl(&args);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("2 episodes run (0 already stored"),
        "{}",
        text(&first)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["run"]["policy"], "scripted");
    assert_eq!(config["run"]["samples"], 1);

    // Rerunning the same command resumes: nothing left to run, nothing duplicated.
    let again = swerl(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 episodes run (2 already stored"),
        "{}",
        text(&again)
    );
    let lines = std::fs::read_to_string(out.join("trajectories.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);

    // Another configuration in the same directory is refused.
    let mut other = args.clone();
    other[10] = "3"; // --samples
    let refused = swerl(&other);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("another configuration"));

    let eval = swerl(&["eval", "--from", out.to_str().unwrap()]);
    assert!(eval.status.success(), "{}", text(&eval));
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(stdout.contains("Pass@1 100.0%"), "{}", text(&eval));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (summary["pass_at_1"].as_f64(), summary["episodes"].as_u64()),
        (Some(1.0), Some(2))
    );
    let predictions = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = predictions
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["instance_id"], TASKS[0]);
    assert_eq!(rows[0]["model_name_or_path"], "swerl-scripted");
    assert!(rows[0]["model_patch"]
        .as_str()
        .unwrap()
        .contains("diff --git"));
}

#[test]
fn eval_from_a_missing_directory_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = swerl(&["eval", "--from", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist; run `swerl eval --tasks"),
        "{}",
        text(&out)
    );
}
